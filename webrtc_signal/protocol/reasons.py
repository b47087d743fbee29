"""Every close code and reason the server sends: the one table to read or change.

Godot clients show these strings to players and tests compare them byte for
byte, so the texts (typos included) are part of the wire contract in
PROTOCOL.md. A message over the size limit is closed by Autobahn itself with
1009 and its own reason text.
"""

from enum import Enum


class CloseReason(Enum):
    NO_LOBBY = (4000, "Have not joined lobby yet")
    HOST_DISCONNECTED = (4000, "Room host has disconnected")
    ONLY_HOST_CAN_SEAL = (4000, "Only host can seal the lobby")
    SEAL_COMPLETE = (1000, "Seal complete")
    TOO_MANY_LOBBIES = (4000, "Too many lobbies open, disconnecting")
    ALREADY_IN_LOBBY = (4000, "Already in a lobby")
    LOBBY_DOES_NOT_EXIST = (4000, "Lobby does not exists")
    LOBBY_IS_SEALED = (4000, "Lobby is sealed")
    INVALID_FORMAT = (4000, "Invalid message format")
    NEED_LOBBY = (4000, "Invalid message when not in a lobby")
    INVALID_DESTINATION = (4000, "Invalid destination")
    INVALID_COMMAND = (4000, "Invalid command")
    TOO_MANY_PEERS = (4000, "Too many peers connected")
    INVALID_TRANSFER_MODE = (4000, "Invalid transfer mode, must be text")
    # Not in the reference servers: sent to everyone when the service stops.
    SHUTDOWN = (1001, "Server shutting down")
    # Issue 11: limits against abuse (docs/security.md).
    TOO_MANY_LOBBIES_FROM_ADDRESS = (4000, "Too many lobbies from your address")
    TOO_MANY_MESSAGES = (4000, "Too many messages")
    LOBBY_EXPIRED = (4000, "Lobby expired")
    PING_FLOOD = (1008, "Too many pings")
    FRAGMENT_FLOOD = (1008, "Too many fragments")
    INTERNAL_ERROR = (1011, "Internal server error")

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
