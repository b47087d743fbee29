"""The events a game server can observe (``SignalingService.add_observer``).

Defined in the pure core (`webrtc_signal.protocol.events`, which says in what
order they come); this is their public home.
"""

from .protocol.events import (
    ConnectionRefused,
    Event,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
    PeerLeft,
)

__all__ = [
    "ConnectionRefused",
    "Event",
    "LobbyClosed",
    "LobbyCreated",
    "LobbySealed",
    "PeerConnected",
    "PeerDisconnected",
    "PeerJoined",
    "PeerLeft",
]
