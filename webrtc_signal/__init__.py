"""WebRTC signaling server for games, wire-compatible with Godot's webrtc_signaling demo.

The pure core (`config`, `core`, `codec`, `messages`, `reasons`) imports neither
Twisted nor Autobahn; the Twisted-facing names below load on first use so that
importing the core stays free of them.
"""

from importlib import import_module, metadata
from typing import Any

from .config import InvalidSetting, SignalingConfig
from .core import Signaling
from .reasons import CloseReason

# setup.cfg is the one place the version is written; the installed package's
# metadata carries it here (an editable install included).
try:
    __version__ = metadata.version("webrtc-signal")
except metadata.PackageNotFoundError:  # a checkout on sys.path, never installed
    __version__ = "0+unknown"

_TWISTED_NAMES = {
    "SignalingServerFactory": "server",
    "SignalingServerProtocol": "server",
    "SignalingService": "service",
}

__all__ = ["CloseReason", "InvalidSetting", "Signaling", "SignalingConfig", *_TWISTED_NAMES]


def __getattr__(name: str) -> Any:
    module = _TWISTED_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
