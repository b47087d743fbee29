"""WebRTC signaling server for games, wire-compatible with Godot's webrtc_signaling demo.

Layers: `webrtc_signal.protocol` is the pure core (no Twisted or Autobahn
import); `webrtc_signal.server` the engine that runs it, the WebSocket and
web adapters; `webrtc_signal.cluster` a node sharing lobbies through Redis;
`webrtc_signal.client` and `webrtc_signal.rtc` the Python clients. At the top,
`config` (`SignalingConfig`), `service` (`SignalingService`) and `app` (the
twistd plugin) put the layers together. The public names are listed in
``__all__``; the Twisted-facing ones load on first use, so that importing the
pure names stays free of Twisted.
"""

from importlib import import_module
from typing import Any

from .config import SignalingConfig
from .protocol.core import Signaling
from .protocol.hooks import ConnectionRequest, LobbyInfo, PeerInfo, Refused
from .protocol.reasons import CloseReason
from .protocol.settings import InvalidSetting
from .protocol.version import VERSION

__version__ = VERSION

_TWISTED_NAMES = {
    "SignalingServerFactory": ".server.websocket",
    "SignalingServerProtocol": ".server.websocket",
    "SignalingService": ".service",
    # No Twisted in it, but PyJWT: loaded when asked for, like the above.
    "TokenAuth": ".server.tokens",
}

__all__ = [
    "CloseReason",
    "ConnectionRequest",
    "InvalidSetting",
    "LobbyInfo",
    "PeerInfo",
    "Refused",
    "Signaling",
    "SignalingConfig",
    "SignalingServerFactory",
    "SignalingServerProtocol",
    "SignalingService",
    "TokenAuth",
]


def __getattr__(name: str) -> Any:
    module = _TWISTED_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
