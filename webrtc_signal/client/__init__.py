"""A signaling client over Twisted and Autobahn (`signaling`) and its command
line, ``webrtc-signal-client`` (`cli`). The client's public names are
re-exported here: ``from webrtc_signal.client import SignalingClient``.
"""

from .signaling import (
    AnswerReceived,
    CandidateReceived,
    CertificateRefused,
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
    client_tls,
    parse_candidate_data,
    with_token,
)

__all__ = [
    "AnswerReceived",
    "CandidateReceived",
    "CertificateRefused",
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
    "client_tls",
    "parse_candidate_data",
    "with_token",
]
