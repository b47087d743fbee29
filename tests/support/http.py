"""A bare HTTP/1.1 GET over a raw TCP connection: what a browser's first
request to the server looks like, with nothing added by a client library."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol

from .wsclient import with_timeout


async def http_request(port: int, method: str, path: str, headers: str = "") -> bytes:
    """The raw response to a bare ``method`` request for ``path`` on
    127.0.0.1:``port`` (``headers``: extra lines, each ending in CRLF)."""
    received: defer.Deferred[bytes] = defer.Deferred()

    class Fetch(Protocol):
        buffer = b""

        def connectionMade(self) -> None:
            request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n"
            self.transport.write(request.encode())

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data

        def connectionLost(self, reason: object) -> None:
            received.callback(self.buffer)

    reactor.connectTCP("127.0.0.1", port, ClientFactory.forProtocol(Fetch))
    return await with_timeout(received, 5)


async def http_get(port: int, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` from 127.0.0.1:``port``; returns status, headers, body."""
    response = await http_request(port, "GET", path, headers)
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body
