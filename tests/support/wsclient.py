"""A recording WebSocket client for protocol tests: every wait is time-bound."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure

WAIT = 5.0


def _reactor() -> Any:
    # Imported when used: conftest imports this module before pytest-twisted
    # installs the suite's reactor (asyncio).
    from twisted.internet import reactor

    return reactor


class RecordingClient(WebSocketClientProtocol):
    """Queues every message it receives (parsed as JSON unless the factory is
    ``raw``) and remembers how the server closed it."""

    factory: RecordingClientFactory
    answer_pings = True

    def __init__(self) -> None:
        super().__init__()
        self.pings_sent = 0
        self.pongs: dict[bytes, defer.Deferred[None]] = {}

    def onOpen(self) -> None:
        self.inbox: defer.DeferredQueue[Any] = defer.DeferredQueue()
        self.closed: defer.Deferred[tuple[int | None, str | None]] = defer.Deferred()
        self.pings = 0
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.inbox.put(payload if self.factory.raw else json.loads(payload))

    def onPong(self, payload: bytes) -> None:
        waiter = self.pongs.pop(payload, None)
        if waiter is not None:
            waiter.callback(None)

    async def round_trip(self) -> None:
        """Ping the server and wait for the pong (or the close): everything the
        server sent this client before it read the ping has then arrived."""
        self.pings_sent += 1
        payload = str(self.pings_sent).encode()
        self.pongs[payload] = defer.Deferred()
        waiter = self.pongs[payload]
        self.sendPing(payload)
        await with_timeout(waiter, WAIT)

    def onPing(self, payload: bytes) -> None:
        self.pings += 1
        if self.answer_pings:
            super().onPing(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        # A closed connection answers no more pings; nothing more will arrive.
        for waiter in self.pongs.values():
            waiter.callback(None)
        self.pongs.clear()
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed before open: {code} {reason}"))
            return
        self.closed.callback((code, reason))

    # -- helpers for tests ---------------------------------------------------

    def send(self, type_: int, id_: int = 0, data: str = "") -> None:
        self.sendMessage(json.dumps({"type": type_, "id": id_, "data": data}).encode())

    def send_raw(self, payload: bytes | str, binary: bool = False) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        self.sendMessage(payload, isBinary=binary)

    def next(self, timeout: float = WAIT) -> defer.Deferred[Any]:
        d = self.inbox.get()
        d.addTimeout(timeout, _reactor())
        return d

    async def expect(self, type_: int, id_: int | None = None, data: str | None = None) -> Any:
        message = await self.next()
        assert message["type"] == type_, message
        if id_ is not None:
            assert message["id"] == id_, message
        if data is not None:
            assert message["data"] == data, message
        return message

    async def wait_closed(self, timeout: float = WAIT) -> tuple[int | None, str | None]:
        return await with_timeout(self.closed, timeout)

    def pending(self) -> list[Any]:
        """Messages received but not yet taken."""
        return list(self.inbox.pending)


async def with_timeout(d: defer.Deferred[Any], timeout: float) -> Any:
    """Wait for ``d`` at most ``timeout`` seconds without cancelling it."""
    waiter: defer.Deferred[Any] = defer.Deferred()

    def relay(result: Any) -> Any:
        if not waiter.called:
            waiter.callback(result)
        # The waiter now carries a failure; leaving it on ``d`` too would log
        # it again as unhandled when ``d`` is collected.
        return None if isinstance(result, Failure) else result

    d.addBoth(relay)
    waiter.addTimeout(timeout, _reactor())
    return await waiter


class RecordingClientFactory(WebSocketClientFactory):
    protocol = RecordingClient

    def __init__(self, url: str, raw: bool = False, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.raw = raw
        self.opened: defer.Deferred[RecordingClient] = defer.Deferred()
        self.setProtocolOptions(failByDrop=False)


async def connect(
    url: str,
    raw: bool = False,
    tls: IOpenSSLClientConnectionCreator | None = None,
) -> RecordingClient:
    """Open a WebSocket to ``url`` (``ws://`` or, with ``tls``, ``wss://``)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    endpoint: Any = endpoints.TCP4ClientEndpoint(
        _reactor(), parts.hostname, parts.port, timeout=WAIT
    )
    if parts.scheme == "wss":
        assert tls is not None, "wss:// needs client TLS options"
        endpoint = endpoints.wrapClientTLS(tls, endpoint)
    factory = RecordingClientFactory(url, raw=raw)
    connecting = endpoint.connect(factory)
    connecting.addErrback(lambda failure: factory.opened.called or factory.opened.errback(failure))
    return await with_timeout(factory.opened, WAIT)


async def host_and_guest(url: str) -> tuple[RecordingClient, str, RecordingClient, int]:
    """A host that created a mesh lobby at ``url`` and a guest that joined
    it, each told of the other: (host, lobby, guest, guest's id)."""
    join, identity, peer_connect = 0, 1, 2
    host = await connect(url)
    host.send(join, 0, "")
    await host.expect(identity, 1, "true")
    lobby = str((await host.expect(join, 0))["data"])
    guest = await connect(url)
    guest.send(join, 0, lobby)
    guest_id = int((await guest.expect(identity))["id"])
    await guest.expect(peer_connect, 1)
    await guest.expect(join, 0, lobby)
    await host.expect(peer_connect, guest_id)
    return host, lobby, guest, guest_id
