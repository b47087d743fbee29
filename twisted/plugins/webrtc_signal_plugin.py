"""Makes ``twistd webrtc-signal`` available. This directory must have no
__init__.py: it extends Twisted's own ``twisted.plugins`` package."""

from twisted.application.service import ServiceMaker

webrtc_signal = ServiceMaker(
    "webrtc-signal",
    "webrtc_signal.app",
    "WebRTC signaling server for games (Godot webrtc_signaling protocol)",
    "webrtc-signal",
)
