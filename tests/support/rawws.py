"""A WebSocket client written by hand over a plain TCP connection, for abuse
tests: it can bind a chosen loopback source address (127.0.0.2 plays "another
address"), send any request and any frame, prefix a PROXY protocol header,
and stop reading its socket like a client that hangs."""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Factory, Protocol

from .wsclient import WAIT, RecordingClient, RecordingClientFactory, with_timeout
from .wsframes import frame


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


# Clients still connected; `raw_cleanup` aborts them after each test.
OPEN_CLIENTS: list[RawWebSocket] = []


@pytest.fixture(autouse=True)
def raw_cleanup(make_server: object) -> Iterator[None]:
    """Import into a test module to abort its raw clients after each test, so
    the server's shutdown (after this, as it depends on ``make_server``) does
    not wait for them."""
    yield
    for client in list(OPEN_CLIENTS):
        client.transport.abortConnection()


def upgrade_request(port: int, extra_headers: str = "", path: str = "/") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    ).encode()


class RawWebSocket(Protocol):
    """Writes ``preamble`` (a PROXY header, a request) on connect, then reads
    the HTTP answer and the server's frames."""

    def __init__(self, preamble: bytes) -> None:
        self.preamble = preamble
        self.buffer = b""
        self.status: int | None = None
        self.response_head = ""
        self.answered: defer.Deferred[int] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.frames: defer.DeferredQueue[tuple[int, bytes]] = defer.DeferredQueue()
        self.close_code: int | None = None
        self.close_reason = ""
        self.connected_ = False

    def connectionMade(self) -> None:
        self.connected_ = True
        OPEN_CLIENTS.append(self)
        if self.preamble:
            self.transport.write(self.preamble)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.status is None:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.response_head = head.decode("latin-1")
            self.status = int(self.response_head.split()[1])
            self.buffer = rest
            self.answered.callback(self.status)
        while len(self.buffer) >= 2:
            opcode = self.buffer[0] & 0x0F
            size = self.buffer[1] & 0x7F
            at = 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                size = struct.unpack("!H", self.buffer[2:4])[0]
                at = 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                size = struct.unpack("!Q", self.buffer[2:10])[0]
                at = 10
            if len(self.buffer) < at + size:
                return
            payload = self.buffer[at : at + size]
            self.buffer = self.buffer[at + size :]
            if opcode == 8 and self.close_code is None:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.close_reason = payload[2:].decode("utf-8", "replace")
                # Answer as a well-behaved client would, then hang up.
                self.transport.write(frame(payload[:2], opcode=8, mask=os.urandom(4)))
                self.transport.loseConnection()
            self.frames.put((opcode, payload))

    def connectionLost(self, reason: object) -> None:
        if self in OPEN_CLIENTS:
            OPEN_CLIENTS.remove(self)
        if not self.answered.called:
            self.answered.callback(0)
        self.lost.callback(None)

    # -- for tests -------------------------------------------------------------

    def send(self, payload: bytes | str, opcode: int = 1, fin: bool = True) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        self.transport.write(frame(payload, opcode=opcode, fin=fin, mask=os.urandom(4)))

    def send_json(self, type_: int, id_: int = 0, data: str = "") -> None:
        self.send(json.dumps({"type": type_, "id": id_, "data": data}))

    async def next_frame(self, timeout: float = WAIT) -> tuple[int, bytes]:
        d = self.frames.get()
        d.addTimeout(timeout, _reactor())
        return await d

    async def next_json(self, timeout: float = WAIT) -> Any:
        while True:
            opcode, payload = await self.next_frame(timeout)
            if opcode == 1:
                return json.loads(payload)

    async def wait_lost(self, timeout: float = WAIT) -> None:
        await with_timeout(self.lost, timeout)

    async def wait_close(self, timeout: float = WAIT) -> tuple[int | None, str]:
        """The close frame's code and reason (None if the TCP went without one)."""
        await self.wait_lost(timeout)
        return self.close_code, self.close_reason


async def raw_connect(
    port: int,
    source: str = "127.0.0.1",
    request: bytes | None = None,
    headers: str = "",
    proxy_header: bytes = b"",
    wait_answer: bool = True,
) -> RawWebSocket:
    """Connect from ``source`` (a loopback address) and send ``proxy_header``
    then ``request`` (a valid upgrade by default, with ``headers`` added)."""
    if request is None:
        request = upgrade_request(port, headers)
    client = RawWebSocket(proxy_header + request)
    endpoint = endpoints.TCP4ClientEndpoint(
        _reactor(), "127.0.0.1", port, timeout=WAIT, bindAddress=(source, 0)
    )
    await with_timeout(endpoint.connect(Factory.forProtocol(lambda: client)), WAIT)
    if wait_answer:
        await with_timeout(client.answered, WAIT)
    return client


async def connect_from(url: str, source: str) -> RecordingClient:
    """`wsclient.connect`, from the loopback address ``source``."""
    port = int(url.rsplit(":", 1)[1])
    factory = RecordingClientFactory(url)
    endpoint = endpoints.TCP4ClientEndpoint(
        _reactor(), "127.0.0.1", port, timeout=WAIT, bindAddress=(source, 0)
    )
    connecting = endpoint.connect(factory)
    connecting.addErrback(lambda failure: factory.opened.called or factory.opened.errback(failure))
    return await with_timeout(factory.opened, WAIT)
