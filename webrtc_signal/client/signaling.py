"""A signaling client over Twisted and Autobahn: the raw protocol, as Godot's
``ws_webrtc_client.gd`` speaks it (JSON framing).

    client = SignalingClient("ws://localhost:9080")
    client.add_listener(print)              # every event, in order
    await client.connect()
    joined = await client.join()            # "" creates a lobby; a name joins it
    client.send_offer(peer_id, sdp)         # False once the connection is closing
    ...
    disconnected = await client.closed      # Disconnected(code, reason, ...)

Deferreds for the things a caller waits for (connected, joined, closed); a
listener callback for the stream of events. What the server sends is checked;
anything malformed becomes a `ProtocolError` event instead of an exception.

wss:// checks the server's certificate, chain and name, and refuses one it
cannot verify: `connect` then fails with `CertificateRefused`. To trust a
self-signed certificate, pass ``tls=client_tls(host, trusted=...)``; see
`SignalingClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from autobahn.exception import Disconnected as AutobahnDisconnected
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.codec import JSON_CODEC, FormatError
from ..protocol.messages import Identity, Join, Message, MessageType
from ..protocol.topology import CLIENT_SERVER, MESH
from .tls import CertificateRefused, client_tls, creator_for, refusal_from

_log = Logger(namespace="webrtc_signal.client")

# Seconds a close waits for the server's answer before giving up. Autobahn's
# default, one second, is less than a slow link's round trip plus a busy
# server's turn; giving up aborts the connection, and a server that had not
# yet read the close frame loses it with the reset and sees an unclean 1006
# instead of the 1000 that was sent.
CLOSE_HANDSHAKE_TIMEOUT = 3.0

# -- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdAssigned:
    """My id in the lobby (1 = I am the host) and whether the lobby is a mesh."""

    peer_id: int
    mesh: bool


@dataclass(frozen=True, slots=True)
class LobbyJoined:
    lobby: str


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A peer I should open a WebRTC connection to."""

    peer_id: int


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer_id: int


@dataclass(frozen=True, slots=True)
class OfferReceived:
    peer_id: int
    sdp: str


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    peer_id: int
    sdp: str


@dataclass(frozen=True, slots=True)
class CandidateReceived:
    peer_id: int
    mid: str
    index: int
    sdp: str


@dataclass(frozen=True, slots=True)
class LobbySealed:
    pass


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection is gone. ``code`` is the close code the server sent
    (1006 when there was no closing handshake) and ``reason`` its text."""

    code: int
    reason: str
    was_clean: bool


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The server sent something this client cannot read; it was ignored."""

    problem: str
    message: str


Event = (
    IdAssigned
    | LobbyJoined
    | PeerConnected
    | PeerDisconnected
    | OfferReceived
    | AnswerReceived
    | CandidateReceived
    | LobbySealed
    | Disconnected
    | ProtocolError
)


@dataclass(frozen=True, slots=True)
class Joined:
    """What `SignalingClient.join` fires with."""

    lobby: str
    peer_id: int
    mesh: bool
    peers: frozenset[int]


class SignalingClosed(Exception):
    """The server closed the connection before what was awaited happened."""

    def __init__(self, disconnected: Disconnected) -> None:
        super().__init__(f"{disconnected.code} {disconnected.reason}".strip())
        self.disconnected = disconnected


def candidate_data(mid: str, index: int, sdp: str) -> str:
    """A candidate as Godot clients carry it: ``"\\n<mid>\\n<index>\\n<sdp>"``."""
    return f"\n{mid}\n{index}\n{sdp}"


def with_token(url: str, token: str | None) -> str:
    """``url`` with ``token=<token>`` added to its query string (a server with
    token auth reads it there: WebSocket clients cannot set headers)."""
    if not token:
        return url
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}token={quote(token, safe='')}"
    return f"{joined}#{fragment}" if fragment else joined


def parse_candidate_data(data: str) -> tuple[str, int, str]:
    """Read ``"\\n<mid>\\n<index>\\n<sdp>"`` as the Godot client does (empty
    parts skipped); a `ValueError` says what is wrong."""
    parts = [part for part in data.split("\n") if part]
    if len(parts) != 3:
        raise ValueError(f"a candidate has 3 parts (mid, index, sdp), not {len(parts)}")
    mid, index, sdp = parts
    if not index.isascii() or not index.lstrip("-").isdigit():
        raise ValueError(f"a candidate's index is an integer, not {index!r}")
    return mid, int(index), sdp


# -- the client -----------------------------------------------------------------


class SignalingClient:
    """One connection to a signaling server, in the Godot 4 (JSON) framing.

    A wss:// connection checks the server's certificate: its chain must
    lead to one of the system's certificate authorities (OpenSSL's default
    paths, which the ``SSL_CERT_FILE`` environment variable replaces) and
    it must name the URL's host (or IP address). If it does not, nothing is
    sent and `connect` fails with `CertificateRefused`, whose text says
    why in a line. To trust one self-signed certificate instead::

        from twisted.internet import ssl

        with open("cert.pem", "rb") as pem:
            trusted = [ssl.Certificate.loadPEM(pem.read())]
        tls = client_tls("example.org", trusted=trusted)
        client = SignalingClient("wss://example.org:9443", tls=tls)

    The hostname given to `client_tls` is the one the certificate must
    name, normally the URL's. ``insecure=True`` checks no certificate at
    all (anyone on the path can then read and change the connection; a
    warning is logged). TLS options given as ``tls=`` win over
    ``insecure``, and do their own checking: `client_tls` makes ones that
    fail closed, while Twisted's ``optionsForClientTLS`` lets a
    certificate without subjectAltName through. ``connect_timeout`` bounds
    both the TCP connection and the WebSocket handshake.

    Sending (`send_offer`, `send_answer`, `send_candidate`, `seal`) is
    possible while `is_open` is true. Once the closing handshake has begun,
    from either side, a send does nothing and returns ``False``: a program
    racing the server's close needs no error handling for it. Sending before
    the connection has opened is a mistake and raises `RuntimeError`.
    """

    def __init__(
        self,
        url: str,
        *,
        tls: IOpenSSLClientConnectionCreator | None = None,
        reactor: Any = None,
        connect_timeout: float = 10.0,
        token: str | None = None,
        insecure: bool = False,
    ) -> None:
        # A token (for a server with token auth) rides in the URL.
        url = with_token(url, token)
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
        if reactor is None:
            from twisted.internet import reactor
        self.url = url
        self.reactor: IReactorTime = reactor
        self._tls = tls
        self._insecure = insecure
        self._connect_timeout = connect_timeout
        self._listeners: list[Callable[[Event], object]] = []
        self._protocol: _ClientProtocol | None = None
        # The TCP (and TLS) connection attempt, until it succeeds or fails,
        # then the protocol, until its WebSocket handshake is done: what
        # close() must stop when called before the connection is open.
        self._connecting: defer.Deferred[Any] | None = None
        self._handshaking: _ClientProtocol | None = None
        self._close_requested = False
        self._connected: defer.Deferred[None] | None = None
        self._joining: defer.Deferred[Joined] | None = None
        self._ending: Disconnected | None = None
        self._closed_waiters: list[defer.Deferred[Disconnected]] = []
        # What the server has told us so far.
        self.peer_id = 0
        self.mesh = True
        self.lobby = ""
        self.peers: set[int] = set()
        self.sealed = False

    # -- listening ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[Event], object]) -> None:
        """Call ``listener(event)`` for every event from now on, in order."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], object]) -> None:
        self._listeners.remove(listener)

    # -- doing -------------------------------------------------------------------

    def connect(self) -> defer.Deferred[None]:
        """Open the WebSocket; fires once it is open, fails if it cannot be:
        with `CertificateRefused` if the server's certificate is not
        trusted, with `SignalingClosed` if `close` is called first or the
        WebSocket handshake fails, else with the connection error."""
        if self._ending is not None:
            return defer.fail(SignalingClosed(self._ending))
        if self._protocol is not None:
            return defer.succeed(None)
        if self._connected is not None:
            return self._connected
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        endpoint: Any = endpoints.HostnameEndpoint(
            self.reactor, host.encode("idna"), port, timeout=self._connect_timeout
        )
        creator = creator_for(host, secure, self._tls, self._insecure)
        if creator is not None:
            if self._tls is None and self._insecure:
                _log.warn(
                    "not checking the TLS certificate of {url} (insecure): anyone on the "
                    "path can read and change this connection",
                    url=self.url.partition("?")[0],
                )
            endpoint = endpoints.wrapClientTLS(creator, endpoint)
        factory = WebSocketClientFactory(self.url)
        factory.protocol = _ClientProtocol
        factory.client = self  # type: ignore[attr-defined]
        factory.noisy = False
        factory.setProtocolOptions(
            failByDrop=False,
            openHandshakeTimeout=self._connect_timeout,
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
        )
        self._connected = defer.Deferred()
        connecting = self._connecting = endpoint.connect(factory)
        connecting.addCallbacks(self._tcp_connected, self._connect_failed)
        return self._connected

    def join(self, lobby: str = "", mesh: bool = True) -> defer.Deferred[Joined]:
        """Create a lobby (``lobby=""``; ``mesh`` picks its mode) or join one.
        Fires once the server confirms, with my id and the peers I was told
        about; fails with `SignalingClosed` if the server refuses, or if the
        connection is closing or closed."""
        if self._joining is not None:
            raise RuntimeError("join() was already called on this connection")
        sent = self._send(Join(lobby, MESH if mesh else CLIENT_SERVER))
        joining = self._joining = defer.Deferred()
        if not sent and self._ending is not None:
            joining.errback(SignalingClosed(self._ending))
        # Otherwise, if it was not sent, the connection is closing, and its
        # end fails the join (see _ended).
        return joining

    def seal(self) -> bool:
        """Seal my lobby (the server closes non-hosts that try). ``False``
        if the connection is closing or closed, and nothing was sent."""
        return self._send(Message(MessageType.SEAL, 0))

    def send_offer(self, peer_id: int, sdp: str) -> bool:
        """Send an offer to ``peer_id``; ``False`` (nothing sent) once closing."""
        return self._send(Message(MessageType.OFFER, peer_id, sdp))

    def send_answer(self, peer_id: int, sdp: str) -> bool:
        """Send an answer to ``peer_id``; ``False`` (nothing sent) once closing."""
        return self._send(Message(MessageType.ANSWER, peer_id, sdp))

    def send_candidate(self, peer_id: int, mid: str, index: int, sdp: str) -> bool:
        """Send an ICE candidate to ``peer_id``; ``False`` (nothing sent) once closing."""
        return self._send(Message(MessageType.CANDIDATE, peer_id, candidate_data(mid, index, sdp)))

    @property
    def is_open(self) -> bool:
        """Whether sending is possible: true from the moment the WebSocket
        opens until its closing handshake begins, from either side (`close`
        was called, or the server's close frame arrived) or the connection
        is lost. It turns false before `ended` is set: the closing handshake
        takes a round trip."""
        protocol = self._protocol
        return protocol is not None and protocol.can_send

    @property
    def ended(self) -> Disconnected | None:
        """How the connection ended, or ``None`` while it has not."""
        return self._ending

    @property
    def closed(self) -> defer.Deferred[Disconnected]:
        """A new Deferred, each time asked, that fires with how the
        connection ended (at once if it already has)."""
        if self._ending is not None:
            return defer.succeed(self._ending)
        waiter: defer.Deferred[Disconnected] = defer.Deferred()
        self._closed_waiters.append(waiter)
        return waiter

    def close(self, code: int = 1000) -> defer.Deferred[Disconnected]:
        """Close the connection with ``code`` (1000, or 3000-4999) and wait
        for the closing handshake, which is bounded (`CLOSE_HANDSHAKE_TIMEOUT`
        for the server's answer, about a second for the end of TCP); fires
        with how it ended. Safe to call at any time and more than once:
        while closing, it only waits; after the end, it answers at once;
        before the connection is open, it abandons the attempt (`connect`
        then fails with `SignalingClosed`)."""
        protocol = self._protocol
        if protocol is not None:
            protocol.begin_closing(code)
        elif self._ending is None and not self._close_requested:
            self._close_requested = True
            if self._handshaking is not None:
                # TCP is up, the WebSocket handshake is not done: no close
                # frame can be sent yet, so the connection is dropped.
                self._handshaking.dropConnection(abort=True)
            elif self._connecting is not None:
                self._connecting.cancel()  # fails the attempt: _connect_failed
            else:
                self._ended(Disconnected(1006, "never connected", False))
        return self.closed

    # -- from the protocol -------------------------------------------------------

    def _tcp_connected(self, protocol: _ClientProtocol) -> None:
        self._connecting = None
        if self._protocol is None and self._ending is None:
            self._handshaking = protocol

    def _opened(self, protocol: _ClientProtocol) -> None:
        self._handshaking = None
        self._connecting = None
        self._protocol = protocol
        if self._connected is not None and not self._connected.called:
            self._connected.callback(None)

    def _connect_failed(self, failure: Any) -> None:
        self._connecting = None
        if self._close_requested:
            self._ended(_closed_before_open())
            return
        self._ended(Disconnected(1006, f"could not connect: {failure.value}", False), failure)

    def _receive(self, text: str) -> None:
        try:
            message = JSON_CODEC.decode(text)
        except FormatError as error:
            self._protocol_error(f"not a signaling message ({error})", text)
            return
        if isinstance(message, Identity):
            problem = self._on_id(message)
        elif isinstance(message, Join):
            problem = self._on_join(message)
        else:
            handler = _HANDLERS.get(message.type)
            if handler is None:
                self._protocol_error(f"unknown message type {message.type}", text)
                return
            problem = handler(self, message)
        if problem is not None:
            self._protocol_error(problem, text)

    def _lost(self, disconnected: Disconnected, ended_by: Failure | None = None) -> None:
        """The protocol's end: open or not, the WebSocket is gone.
        ``ended_by`` is why the connection was lost, as Twisted said."""
        refused = None
        if self._protocol is None and ended_by is not None:
            refused = refusal_from(ended_by.value, urlsplit(self.url).hostname or "")
        if refused is not None:
            # The TLS handshake failed on the certificate: say why, not Autobahn's 1006.
            disconnected = Disconnected(1006, f"could not connect: {refused}", False)
        elif self._protocol is None and self._close_requested:
            # close() dropped it during the handshake: say so, not Autobahn's 1006.
            disconnected = _closed_before_open()
        self._ended(disconnected, refused)

    def _ended(self, disconnected: Disconnected, error: Exception | Failure | None = None) -> None:
        """The end, however it came; ``error`` (else a `SignalingClosed`)
        fails what was still awaited."""
        self._protocol = None
        self._handshaking = None
        self._connecting = None
        first = self._ending is None
        if first:
            # Set before anything awaited is failed: its waiter may look.
            self._ending = disconnected
        if self._connected is not None and not self._connected.called:
            self._connected.errback(error or SignalingClosed(disconnected))
        if self._joining is not None and not self._joining.called:
            self._joining.errback(error or SignalingClosed(disconnected))
        if not first:
            return
        self._emit(disconnected)
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(disconnected)

    # -- the server's messages ---------------------------------------------------

    def _on_id(self, message: Identity) -> str | None:
        if message.id < 1:
            return f"my id must be a peer id, not {message.id}"
        self.peer_id = message.id
        self.mesh = message.topology is MESH
        self._emit(IdAssigned(message.id, self.mesh))
        return None

    def _on_join(self, message: Join) -> str | None:
        if not self.peer_id:
            return "lobby joined before my id was given"
        self.lobby = message.lobby
        self._emit(LobbyJoined(message.lobby))
        if self._joining is not None and not self._joining.called:
            self._joining.callback(
                Joined(self.lobby, self.peer_id, self.mesh, frozenset(self.peers))
            )
        return None

    def _on_peer(self, message: Message) -> str | None:
        if not self.peer_id:
            return "a peer announced before my id was given"
        if message.id < 1 or message.id == self.peer_id:
            return f"{message.id} cannot be another peer's id"
        if message.type == MessageType.PEER_CONNECT:
            self.peers.add(message.id)
            self._emit(PeerConnected(message.id))
        else:
            self.peers.discard(message.id)
            self._emit(PeerDisconnected(message.id))
        return None

    def _on_relay(self, message: Message) -> str | None:
        if not self.peer_id:
            return "a relayed message before my id was given"
        if message.id < 1:
            return f"a relayed message from {message.id}, which is no peer"
        if message.type == MessageType.OFFER:
            self._emit(OfferReceived(message.id, message.data))
        elif message.type == MessageType.ANSWER:
            self._emit(AnswerReceived(message.id, message.data))
        else:
            try:
                mid, index, sdp = parse_candidate_data(message.data)
            except ValueError as error:
                return str(error)
            self._emit(CandidateReceived(message.id, mid, index, sdp))
        return None

    def _on_seal(self, message: Message) -> str | None:
        self.sealed = True
        self._emit(LobbySealed())
        return None

    # -- plumbing ----------------------------------------------------------------

    def _send(self, message: Message | Join) -> bool:
        protocol = self._protocol
        if protocol is None:
            if self._ending is None and not self._close_requested:
                raise RuntimeError("not connected: wait for connect() first")
            return False  # it ended (or close() was called before it opened)
        # False once the closing handshake has begun: nothing more goes out.
        return protocol.send_text(JSON_CODEC.encode(message))

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.failure("a listener failed on {event!r}", event=event)

    def _protocol_error(self, problem: str, text: str) -> None:
        _log.warn(
            "unreadable message from the server ({problem}): {text!r}",
            problem=problem,
            text=text[:200],
        )
        self._emit(ProtocolError(problem, text))


def _closed_before_open() -> Disconnected:
    return Disconnected(1006, "closed before the connection opened", False)


_HANDLERS: dict[int, Callable[[SignalingClient, Message], str | None]] = {
    MessageType.PEER_CONNECT: SignalingClient._on_peer,
    MessageType.PEER_DISCONNECT: SignalingClient._on_peer,
    MessageType.OFFER: SignalingClient._on_relay,
    MessageType.ANSWER: SignalingClient._on_relay,
    MessageType.CANDIDATE: SignalingClient._on_relay,
    MessageType.SEAL: SignalingClient._on_seal,
}


class _ClientProtocol(WebSocketClientProtocol):
    """Translates between Autobahn and `SignalingClient`.

    It keeps whether sending is possible itself, from Autobahn's callbacks
    and our own close, rather than reading Autobahn's state: open from
    `onOpen` until a close frame is sent (`begin_closing`) or received
    (`onCloseFrame`), or the connection is lost (`onClose`). A send that
    Autobahn still refuses (it failed the connection itself, on a bad frame)
    counts as closed too."""

    factory: WebSocketClientFactory
    can_send = False
    # Why the connection was lost, as Twisted said: a TLS handshake refused
    # for its certificate shows there (Autobahn reports only 1006).
    lost_because: Failure | None = None

    @property
    def client(self) -> SignalingClient:
        return self.factory.client  # type: ignore[attr-defined,no-any-return]

    def send_text(self, payload: bytes) -> bool:
        """Send one text message; ``False`` (nothing sent) once closing."""
        if not self.can_send:
            return False
        try:
            self.sendMessage(payload)  # type: ignore[no-untyped-call]
        except AutobahnDisconnected:
            self.can_send = False
            return False
        return True

    def begin_closing(self, code: int) -> None:
        """Send a close frame, unless closing has begun already."""
        if self.can_send:
            self.can_send = False
            self.sendClose(code)

    def onOpen(self) -> None:
        self.can_send = True
        self.client._opened(self)

    def onCloseFrame(self, code: int, reasonRaw: bytes) -> bool | None:
        self.can_send = False
        return super().onCloseFrame(code, reasonRaw)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.can_send = False
        self.lost_because = reason
        super().connectionLost(reason)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self.client._protocol_error("a binary frame", repr(payload[:60]))
            return
        self.client._receive(payload.decode("utf-8"))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.can_send = False
        self.client._lost(
            Disconnected(code if code is not None else 1006, reason or "", wasClean),
            self.lost_because,
        )


__all__ = [
    "AnswerReceived",
    "CandidateReceived",
    "CertificateRefused",
    "Disconnected",
    "Event",
    "IdAssigned",
    "Joined",
    "LobbyJoined",
    "LobbySealed",
    "OfferReceived",
    "PeerConnected",
    "PeerDisconnected",
    "ProtocolError",
    "SignalingClient",
    "SignalingClosed",
    "candidate_data",
    "client_tls",
    "parse_candidate_data",
    "with_token",
]
