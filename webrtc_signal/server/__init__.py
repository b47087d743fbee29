"""The Twisted side: the engine that runs the core (`engine`, with its
control API, observers, keepalive and drain), the WebSocket adapter
(`websocket`, its frame fast path `frames`), the standalone port's front door
(`front`) and web resources (`web`), metrics, logs and token auth. Another
library's private internals are used in `_internals` only.
"""
