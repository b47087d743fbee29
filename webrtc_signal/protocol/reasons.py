"""Every close code and reason the server sends: the one table to read or change.

Godot clients show these strings to players and tests compare them byte for
byte, so the texts (typos included) are part of the wire contract in
PROTOCOL.md. A message over the size limit is closed by Autobahn itself with
1009 and its own reason text.
"""

from dataclasses import dataclass
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
    # Limits against abuse (docs/security.md).
    TOO_MANY_LOBBIES_FROM_ADDRESS = (4000, "Too many lobbies from your address")
    TOO_MANY_MESSAGES = (4000, "Too many messages")
    LOBBY_EXPIRED = (4000, "Lobby expired")
    PING_FLOOD = (1008, "Too many pings")
    FRAGMENT_FLOOD = (1008, "Too many fragments")
    INTERNAL_ERROR = (1011, "Internal server error")
    # Game-server integration: the size limit, token auth, and the
    # game server's own closes (their defaults; it may give other texts).
    LOBBY_FULL = (4000, "Lobby is full")
    NOT_ALLOWED = (4000, "Not allowed in this lobby")
    CLOSED_BY_SERVER = (4000, "Lobby closed by the server")
    KICKED = (4000, "Kicked by the server")
    # A cluster node (docs/cluster.md) that needs Redis for this and cannot
    # reach it: creating a lobby, or joining one another node runs.
    TRY_AGAIN_LATER = (1013, "Try again later")
    # A JOIN naming a lobby from a quick-match URL (/match/<pool>): the
    # server picks the lobby there.
    QUICK_MATCH_PICKS_LOBBY = (4000, "Quick-match picks the lobby")

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class CustomReason:
    """A close whose text is chosen at run time (a hook's refusal, a kick's
    reason); read like a `CloseReason` member: ``code`` and ``text``."""

    code: int
    text: str


Reason = CloseReason | CustomReason

# Never sent (a reserved lobby has no members): the reason its LobbyClosed
# event gives when nobody claimed it in time.
RESERVATION_EXPIRED = CustomReason(4000, "Lobby reservation expired")


class UpgradeRefusal(Enum):
    """The server's own refusals of a WebSocket upgrade: the HTTP status and
    reason phrase. A hook's refusals (``authenticate``, token auth) carry
    their own."""

    ORIGIN_NOT_ALLOWED = (403, "Origin not allowed")
    TOO_MANY_CONNECTIONS = (429, "Too many connections from your address")
    SERVER_FULL = (503, "Server full")
    DRAINING = (503, "Server draining")
    HEAD_UPGRADE = (405, "HEAD cannot open a WebSocket")
    # A bad quick-match pool or lobby parameter in the URL; the body names it.
    BAD_REQUEST = (400, "Bad Request")
    REQUEST_TOO_LARGE = (431, "Request Header Fields Too Large")
    # No HTTP answer: the TCP connection is closed before anything is read
    # (one address over its unfinished handshakes), or dropped (too slow).
    TOO_MANY_HANDSHAKES = (0, "Too many unfinished handshakes from your address")
    HANDSHAKE_TIMEOUT = (0, "Upgrade not complete in time")

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.text = text
