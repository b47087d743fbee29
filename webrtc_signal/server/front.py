"""The standalone port's front door: the first protocol of every connection.

At the TCP accept it counts the connection against its address's
unfinished handshakes (`HandshakeLimits`: one over the limit is closed at
once, before anything is read) and starts the handshake deadline. It reads
the request head (at most `MAX_REQUEST_HEAD` bytes, else 431), then hands
the connection over: a WebSocket upgrade to the signaling protocol, which
ends the count when the upgrade completes; any other request to the web
site (`web`), where the count lasts as long as the connection and the
site's idle timeout bounds it. From then on the front door only passes
input and the connection's end on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..protocol.reasons import UpgradeRefusal
from .admission import HandshakeLimits
from .web import SignalingSite
from .websocket import SignalingServerFactory

# Largest request head (request line and headers) read; the reference
# server's HTTP parser stops at the same size.
MAX_REQUEST_HEAD = 16 * 1024

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
_HEAD_UPGRADE = (
    b"HTTP/1.1 405 HEAD cannot open a WebSocket\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)


class FrontDoor(Protocol):
    factory: FrontDoorFactory
    # A TCP or TLS transport (abortConnection is not in ITransport).
    transport: Any
    # The connection's count against its address's unfinished handshakes
    # ("" = not counted), while it lasts.
    key = ""
    deadline: IDelayedCall | None = None
    # The protocol the connection was handed to, once it was.
    inner: Protocol | None = None
    # The request head read so far, and how much of it was searched for its end.
    head = b""
    scanned = 0
    # Refused: nothing more is read.
    refusing = False

    def connectionMade(self) -> None:
        limits = self.factory.handshakes
        key = limits.accept(str(getattr(self.transport.getPeer(), "host", "")))
        if key is None:
            self.refusing = True
            self.transport.abortConnection()
            return
        self.key = key
        if limits.timeout:
            self.deadline = self.factory.clock.callLater(limits.timeout, self._too_slow)

    def dataReceived(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.dataReceived(data)
            return
        if self.refusing:
            return
        head = self.head + data
        end = head.find(b"\r\n\r\n", max(0, self.scanned - 3))
        if end < 0:
            self.head, self.scanned = head, len(head)
            if len(head) > MAX_REQUEST_HEAD:
                self._answer(_TOO_LARGE, UpgradeRefusal.REQUEST_TOO_LARGE)
            return
        if end + 4 > MAX_REQUEST_HEAD:
            self._answer(_TOO_LARGE, UpgradeRefusal.REQUEST_TOO_LARGE)
            return
        self.head = b""
        self._hand_over(head, head[:end].lower())

    def _hand_over(self, data: bytes, head: bytes) -> None:
        factory = self.factory
        address = self.transport.getPeer()
        if b"\r\nupgrade:" in head and b"websocket" in head:
            if head.startswith(b"head "):
                self._answer(_HEAD_UPGRADE, UpgradeRefusal.HEAD_UPGRADE)
                return
            websocket: Any = factory.websocket.buildProtocol(address)
            websocket.front = self
            inner: Any = websocket
        else:
            # Plain HTTP: the site's idle timeout takes over from the deadline.
            self._cancel_deadline()
            inner = factory.site.buildProtocol(address)  # type: ignore[no-untyped-call]
        self.inner = inner
        inner.makeConnection(self.transport)
        inner.dataReceived(data)

    def upgraded(self) -> None:
        """The WebSocket upgrade completed: the connection is a player's now."""
        self._cancel_deadline()
        self._finish()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        self._finish()
        if self.inner is not None:
            self.inner.connectionLost(reason)

    def _finish(self) -> None:
        key = self.key
        if key:
            self.key = ""
            self.factory.handshakes.finished(key)

    def _cancel_deadline(self) -> None:
        deadline = self.deadline
        if deadline is not None:
            self.deadline = None
            if deadline.active():
                deadline.cancel()

    def _too_slow(self) -> None:
        self.deadline = None
        limits = self.factory.handshakes
        peer = str(getattr(self.transport.getPeer(), "host", ""))
        limits.refused(UpgradeRefusal.HANDSHAKE_TIMEOUT, peer, timeout=limits.timeout)
        self.transport.abortConnection()

    def _answer(self, response: bytes, refusal: UpgradeRefusal) -> None:
        """Refuse the request with ``response``, read nothing more, and close."""
        self.factory.handshakes.refused(refusal, str(getattr(self.transport.getPeer(), "host", "")))
        self.refusing = True
        self.head = b""
        self._cancel_deadline()
        self._finish()
        self.transport.write(response)
        self.transport.loseConnection()


@implementer(IProtocolNegotiationFactory)
class FrontDoorFactory(Factory):
    """The standalone port's factory (see `FrontDoor`)."""

    # The service logs where it listens; "Starting factory" lines add nothing.
    noisy = False

    def __init__(
        self,
        websocket: SignalingServerFactory,
        site: SignalingSite,
        handshakes: HandshakeLimits,
        clock: Any,
    ) -> None:
        self.websocket = websocket
        self.site = site
        self.handshakes = handshakes
        self.clock = clock

    def buildProtocol(self, addr: IAddress | None) -> FrontDoor:  # type: ignore[override]
        protocol = FrontDoor()
        protocol.factory = self
        return protocol

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN for wss://: see `SignalingServerFactory.acceptableProtocols`."""
        return [b"http/1.1"]

    def startFactory(self) -> None:
        self.websocket.doStart()  # type: ignore[no-untyped-call]
        self.site.doStart()  # type: ignore[no-untyped-call]

    def stopFactory(self) -> None:
        self.websocket.doStop()  # type: ignore[no-untyped-call]
        self.site.doStop()  # type: ignore[no-untyped-call]
