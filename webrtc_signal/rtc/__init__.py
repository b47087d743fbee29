"""WebRTC peers on aiortc (`peer`, ``pip install 'webrtc-signal[rtc]'``) and
their command line, ``webrtc-signal-peer`` (`cli`).

``from webrtc_signal.rtc import RtcPeer, run`` loads aiortc on first use, so
that the command line can explain a missing extra instead of failing to import.
"""

from importlib import import_module
from typing import Any

__all__ = ["CHAT_CHANNEL_ID", "CHAT_CHANNEL_LABEL", "RtcPeer", "asyncio_reactor", "run"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(".peer", __name__), name)
