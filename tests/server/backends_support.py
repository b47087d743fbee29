"""Real HTTP receivers (twisted.web on loopback, port 0) and waits for the
backend tests: webhooks, the auth callback and the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, endpoints, task
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ..support.wsclient import with_timeout

WAIT = 10.0


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@dataclass
class Received:
    """One request a receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    request: Request
    # Set when the receiver holds it (answered later with `Receiver.answer`).
    held: bool = False


class Receiver(Resource):
    """Answers every request with ``status`` and ``body``, or holds it
    unanswered (``hold``) until the test answers it; records each one."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.body = b"{}"
        self.hold = False
        # Called with each request; may return (status, body) to answer it.
        self.answerer: Callable[[Received], tuple[int, bytes] | None] | None = None
        self.received: list[Received] = []
        self.arrivals: defer.DeferredQueue[Received] = defer.DeferredQueue()
        self.content_type = b"application/json"

    def render(self, request: Request) -> bytes | int:
        assert request.content is not None
        headers = {
            name.decode().lower(): b", ".join(values).decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        got = Received(
            method=request.method.decode(),
            path=request.path.decode(),
            headers=headers,
            body=request.content.read(),
            request=request,
        )
        self.received.append(got)
        # Told to the test on the next turn of the reactor, once this request
        # is answered or held: a waiting test would otherwise resume in the
        # middle of this method.
        _reactor().callLater(0, self.arrivals.put, got)
        answer = self.answerer(got) if self.answerer is not None else None
        if answer is None and self.hold:
            got.held = True
            return NOT_DONE_YET
        status, body = answer if answer is not None else (self.status, self.body)
        request.setResponseCode(status)
        request.setHeader(b"content-type", self.content_type)
        return body

    def answer(self, got: Received, status: int = 200, body: bytes = b"{}") -> None:
        """Answer a held request (if its client is still there)."""
        got.held = False
        request = got.request
        if request.finished or request.channel is None:
            return
        request.setResponseCode(status)
        request.setHeader(b"content-type", self.content_type)
        request.write(body)
        request.finish()

    def release_all(self, status: int = 200) -> None:
        for got in self.received:
            if got.held:
                self.answer(got, status)

    async def next(self, timeout: float = WAIT) -> Received:
        got: Received = await with_timeout(self.arrivals.get(), timeout)
        return got


class _Drop(Protocol):
    """A receiver that is down: every connection is reset at once."""

    def connectionMade(self) -> None:
        factory: SwitchableFactory = self.factory  # type: ignore[assignment]
        factory.dropped += 1
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]


class SwitchableFactory(Factory):
    """A receiver's port that stays bound while the receiver is "down":
    connections are then reset (the port is never released for another
    program to take); "up", they reach the site."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.down = False
        self.dropped = 0

    def buildProtocol(self, addr: Any) -> Protocol | None:
        if self.down:
            protocol = _Drop()
            protocol.factory = self
            return protocol
        built: Protocol | None = self.site.buildProtocol(addr)
        return built

    def startFactory(self) -> None:
        self.site.doStart()

    def stopFactory(self) -> None:
        self.site.doStop()


@dataclass
class RunningReceiver:
    receiver: Receiver
    factory: SwitchableFactory
    port: IListeningPort
    url: str
    extra: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        self.receiver.release_all(503)
        await with_timeout(defer.maybeDeferred(self.port.stopListening), WAIT)


async def start_receiver(
    path: str = "/hook", tls: tuple[str, str] | None = None, resource: Resource | None = None
) -> RunningReceiver:
    """A receiver on 127.0.0.1, port 0; ``tls``: (cert file, key file) for https."""
    receiver = Receiver()
    site = Site(resource if resource is not None else receiver)
    site.noisy = False
    factory = SwitchableFactory(site)
    factory.noisy = False
    reactor = _reactor()
    if tls is None:
        endpoint: Any = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        scheme, host = "http", "127.0.0.1"
    else:
        cert, key = tls
        endpoint = endpoints.serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        )
        scheme, host = "https", "localhost"
    port = await with_timeout(endpoint.listen(factory), WAIT)
    return RunningReceiver(
        receiver, factory, port, f"{scheme}://{host}:{port.getHost().port}{path}"
    )


async def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Wait until ``condition()`` is true, looking every 10 ms, for at most
    ``timeout`` seconds of wall time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(_reactor(), 0.01, lambda: None)


# -- WebSocket upgrades --------------------------------------------------------------

UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


class RawUpgrade(Protocol):
    """A bare WebSocket upgrade request; ``status_line`` fires with the first
    line of the answer (the connection is then closed)."""

    def __init__(self, path: str, headers: str) -> None:
        self.path = path
        self.headers = headers
        self.buffer = b""
        self.status_line: defer.Deferred[str] = defer.Deferred()

    def connectionMade(self) -> None:
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{UPGRADE_HEADERS}{self.headers}\r\n"
        )
        assert self.transport is not None
        self.transport.write(request.encode())

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n" in self.buffer and not self.status_line.called:
            self.status_line.callback(self.buffer.split(b"\r\n", 1)[0].decode())
            assert self.transport is not None
            self.transport.loseConnection()


async def start_upgrade(url: str, path: str = "/", headers: str = "") -> RawUpgrade:
    """Send an upgrade request to the server at ``url`` (ws://127.0.0.1:port)."""
    port = int(url.rsplit(":", 1)[1])
    protocol = RawUpgrade(path, headers)
    endpoint = endpoints.TCP4ClientEndpoint(_reactor(), "127.0.0.1", port, timeout=WAIT)
    await with_timeout(endpoints.connectProtocol(endpoint, protocol), WAIT)
    return protocol


async def upgrade_status(url: str, path: str = "/", headers: str = "") -> str:
    """The status line the server answers an upgrade request with."""
    upgrade = await start_upgrade(url, path, headers)
    status: str = await with_timeout(upgrade.status_line, WAIT)
    return status
