"""The Twisted and Autobahn side: the WebSocket adapter around the core
(`adapter`), its frame fast path (`frames`), the service twistd runs or a game
server embeds (`service`), the twistd options (`tap`) and plain HTTP answers
(`http`). Another library's private internals are used in `_internals` only.
"""
