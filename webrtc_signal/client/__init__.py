"""A signaling client over Twisted and Autobahn (`signaling`) and its command
line, ``webrtc-signal-client`` (`cli`). The client's public names are
re-exported here: ``from webrtc_signal.client import SignalingClient``.
"""

from .signaling import (
    AnswerReceived,
    CandidateReceived,
    Disconnected,
    Event,
    IdAssigned,
    Joined,
    LobbyJoined,
    LobbySealed,
    OfferReceived,
    PeerConnected,
    PeerDisconnected,
    ProtocolError,
    SignalingClient,
    SignalingClosed,
    candidate_data,
    parse_candidate_data,
)

__all__ = [
    "AnswerReceived",
    "CandidateReceived",
    "Disconnected",
    "Event",
    "IdAssigned",
    "Joined",
    "LobbyJoined",
    "LobbySealed",
    "OfferReceived",
    "PeerConnected",
    "PeerDisconnected",
    "ProtocolError",
    "SignalingClient",
    "SignalingClosed",
    "candidate_data",
    "parse_candidate_data",
]
