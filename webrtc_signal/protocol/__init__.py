"""The signaling protocol as plain Python: messages, close reasons, settings,
wire codecs and the lobby rules (`core`).

Sans-IO, in the style of h11 and wsproto: nothing in this package imports
Twisted or Autobahn, reads a clock or touches a socket (a test enforces it).
Events go in, actions come out; the adapters in `webrtc_signal.server` carry
them out.
"""
