"""A signaling client over Twisted and Autobahn (`signaling`) and its command
line, ``webrtc-signal-client`` (`cli`). The client's public names are
re-exported here: ``from webrtc_signal.client import SignalingClient``.
"""

from .signaling import *  # noqa: F403  (its __all__ is the list)
from .signaling import __all__ as __all__
