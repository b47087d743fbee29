"""WebRTC peers on aiortc (`peer`, ``pip install 'webrtc-signal[rtc]'``) and
their command line, ``webrtc-signal-peer`` (`cli`).

``from webrtc_signal.rtc import RtcPeer, run`` loads aiortc on first use, so
that the command line can explain a missing extra instead of failing to import.
"""

from importlib import import_module
from typing import Any

_PEER_NAMES = frozenset(
    {"RtcPeer", "run", "asyncio_reactor", "CHAT_CHANNEL_ID", "CHAT_CHANNEL_LABEL"}
)

__all__ = sorted(_PEER_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _PEER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(".peer", __name__), name)
