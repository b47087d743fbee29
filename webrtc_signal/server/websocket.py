"""The Autobahn adapter: WebSocket bytes in, engine calls out.

`SignalingServerProtocol` is one client connection. It only translates: the
upgrade request into the admission checks, text frames into decoded
messages for the engine, closes into `Engine.closed`; and the engine's sends
and closes back into frames. Plain text frames are read and written without
Autobahn's per-frame machinery (`frames`); everything else (control frames,
fragments, the opening and closing handshakes) is Autobahn's.

`SignalingServerFactory` is the Autobahn factory: what ``listenWS`` or a
``WebSocketResource`` takes. On the standalone server's port it sits behind
the front door (`front`), which hands it only upgrade requests.
"""

from __future__ import annotations

from typing import Any, Protocol

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from autobahn.websocket.types import ConnectionRequest as AutobahnRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..protocol.access import normalize_address
from ..protocol.codec import JSON_CODEC, Codec, FormatError, codec_for
from ..protocol.hooks import ConnectionRequest
from ..protocol.limits import MAX_FRAGMENTS, PING_BURST, PING_RATE, TokenBucket
from ..protocol.messages import RELAY_TYPES, AnyMessage
from ..protocol.reasons import CloseReason, Reason
from ..protocol.state import Peer
from . import _internals as internals
from .admission import Admission, UpgradeRefused
from .engine import Engine
from .frames import read_text_frames, text_frame
from .logs import QuietLogger

# Seconds a closed client has to answer our close frame before its TCP is cut.
CLOSE_HANDSHAKE_TIMEOUT = 5

# Not `log`: that attribute is Autobahn's own, filtered logger.
_log = QuietLogger(namespace="webrtc_signal")


class FrontDoorLike(Protocol):
    def upgraded(self) -> None: ...


class SignalingServerProtocol(WebSocketServerProtocol):
    """One client connection; the engine's `ConnectionHandle`."""

    factory: SignalingServerFactory
    # Autobahn turns Nagle's algorithm off in connectionMade by reading this
    # attribute, but copies it from the factory only afterwards: without it
    # here, Nagle stays on, and a small write that follows one the client has
    # not yet acknowledged waits for the client's delayed ACK (40 ms).
    tcpNoDelay = True
    # Class attributes stand for the usual values: an idle connection's
    # instance dictionary holds only what differs.
    # Picked by the first text message; nothing is sent before that.
    codec: Codec | None = None
    signaling_peer: Peer[SignalingServerProtocol] | None = None
    # The client's address after any trusted proxy header, set at the upgrade.
    real_address = ""
    # The key this connection is counted under per address ("" = not counted).
    counted_key = ""
    # Frames of the message being received.
    fragments = 0
    # After a flood the rest of the input is thrown away unread.
    discarding = False
    message_bucket: TokenBucket | None = None
    byte_bucket: TokenBucket | None = None
    ping_bucket: TokenBucket | None = None
    # What the authenticate hook said, and its answer while it is awaited.
    identity: object = None
    authenticating: Deferred[Any] | None = None
    # The connection was lost (possibly before the handshake finished).
    gone = False
    # The standalone port's front door, told when the upgrade completes.
    front: FrontDoorLike | None = None

    def __init__(self) -> None:
        super().__init__()
        # Frames waiting for the end of the current batch of input (see flush).
        self.outgoing: list[bytes] = []

    # -- the upgrade ------------------------------------------------------------------

    def onConnect(  # type: ignore[override]  # Autobahn accepts a Deferred of its answer
        self, request: AutobahnRequest
    ) -> Deferred[None] | None:
        factory = self.factory
        engine = factory.engine
        admission = factory.admission
        self.real_address = address = admission.client_address(
            _peer_host(self.transport), request.headers.get("x-forwarded-for")
        )
        try:
            # Autobahn reports a missing Origin header as "".
            self.counted_key = admission.admit(
                address,
                request.origin or None,
                internals.connection_count(factory),
                engine.core.draining,
            )
            answer = admission.authenticate(
                ConnectionRequest(
                    address, request.path, request.params, request.headers, request.origin
                )
            )
        except UpgradeRefused as refusal:
            raise ConnectionDeny(refusal.status, refusal.reason) from None
        if answer is None:
            return None
        self.authenticating = answer
        return answer.addCallbacks(self._authenticated, self._refused)

    def _authenticated(self, identity: object) -> Deferred[None] | None:
        self.authenticating = None
        if self.gone:
            return Deferred()  # nobody to open: never answered, collected with it
        self.identity = identity
        return None

    def _refused(self, failure: Failure) -> Deferred[None]:
        self.authenticating = None
        if self.gone or not failure.check(UpgradeRefused):
            return Deferred()
        refusal: UpgradeRefused = failure.value  # type: ignore[assignment]
        raise ConnectionDeny(refusal.status, refusal.reason)

    def onOpen(self) -> None:
        # A connection lost while its authenticate hook ran is opened by
        # Autobahn all the same when the hook answers: it gets no peer.
        if self.gone:
            return
        if self.front is not None:
            self.front.upgraded()
            self.front = None
        self.start_limits()
        self.signaling_peer = self.factory.engine.open(self, self.client_address(), self.identity)

    def client_address(self) -> str:
        """The client's IP address, as text ("" if the transport has none)."""
        return self.real_address or normalize_address(_peer_host(self.transport))

    def start_limits(self) -> None:
        """The per-connection rate limits, from the connection's open."""
        config = self.factory.engine.config
        now = self.factory.engine.clock.seconds()
        if config.max_message_rate > 0:
            self.message_bucket = TokenBucket(
                config.max_message_rate, config.max_message_burst, now
            )
        if config.max_byte_rate > 0:
            self.byte_bucket = TokenBucket(config.max_byte_rate, config.max_byte_burst, now)
        self.ping_bucket = TokenBucket(PING_RATE, PING_BURST, now)

    # -- input --------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """The hot path: plain text frames are read here (see `frames`);
        anything else, and the opening handshake, goes through Autobahn."""
        if not internals.parser_idle(self):
            if not self.discarding:
                with internals.lazy_debug_formatting():
                    super().dataReceived(data)
        else:
            held = internals.unparsed(self)
            if held:
                data = held + data
            texts, used, waiting = read_text_frames(data, internals.max_message_size(self))
            rest = data[used:]
            internals.set_unparsed(self, rest)
            for text in texts:
                self.on_text(text)
            if rest and not waiting:
                # Autobahn takes over at the frame it understands and we do
                # not, and keeps the connection until its parser is idle again.
                internals.resume_parser(self)
        self.factory.engine.flush()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Messages Autobahn read (fragmented ones, or any after a frame the
        hot path left to it). Autobahn has checked a text message's UTF-8."""
        if not isBinary:
            self.on_text(payload.decode("utf-8"))
        elif self.signaling_peer is not None:
            self.factory.engine.reject(self.signaling_peer, CloseReason.INVALID_TRANSFER_MODE)

    def on_text(self, text: str) -> None:
        peer = self.signaling_peer
        if peer is None:
            return
        engine = self.factory.engine
        try:
            now = engine.clock.seconds()
            refusal = self.over_rate(text, now)
            if refusal is not None:
                engine.reject(peer, refusal)
                return
            codec = self.codec
            if codec is None:
                codec = self.codec = codec_for(text)
                peer.framing = "json" if codec is JSON_CODEC else "lines"
            try:
                message = codec.decode(text)
            except FormatError:
                engine.reject(peer, CloseReason.INVALID_FORMAT)
            else:
                engine.receive(peer, message, now)
        except Exception as error:
            self.unexpected_error(error)

    def over_rate(self, text: str, now: float) -> CloseReason | None:
        """Whether this message passes the connection's message or byte rate."""
        bucket = self.message_bucket
        if bucket is not None and not bucket.take(now):
            return CloseReason.TOO_MANY_MESSAGES
        bucket = self.byte_bucket
        if bucket is not None:
            # Python knows whether a string is ASCII without looking at it:
            # only other text is encoded to be counted.
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            if not bucket.take(now, size):
                return CloseReason.TOO_MANY_MESSAGES
        return None

    def unexpected_error(self, error: Exception) -> None:
        """A bug met while handling a message: close this connection (1011)."""
        peer = self.signaling_peer
        engine = self.factory.engine
        engine.errors.report(error, peer.peer_id if peer else 0, _address(peer))
        try:
            if peer is not None and not peer.closing:
                engine.reject(peer, CloseReason.INTERNAL_ERROR)
            else:
                self.close_for(CloseReason.INTERNAL_ERROR)
        except Exception:
            self.dropConnection(abort=True)

    def onPong(self, payload: bytes) -> None:
        self.factory.engine.keepalive.pong(self, payload)

    def onPing(self, payload: bytes) -> None:
        """Answer in the batched write (one per input batch, not one per
        ping), unless the client pings faster than `limits.PING_RATE`."""
        if not internals.is_open(self):
            return
        bucket = self.ping_bucket
        if bucket is not None and not bucket.take(self.factory.engine.clock.seconds()):
            self.flooded(CloseReason.PING_FLOOD)
            return
        # A control frame's payload is at most 125 bytes: Autobahn checked.
        self.queue(bytes((0x8A, len(payload))) + payload)

    def onFrameBegin(self) -> None:
        # Count the frames of each data message (control frames between
        # fragments are not part of it).
        if internals.current_opcode(self) < 8:
            self.fragments = self.fragments + 1 if internals.inside_message(self) else 1
            if self.fragments > MAX_FRAGMENTS:
                self.flooded(CloseReason.FRAGMENT_FLOOD)
                return
        super().onFrameBegin()

    def flooded(self, reason: CloseReason) -> None:
        """Close with 1008 and read nothing more: parsing the rest of a
        flood would stall every other client for as long."""
        peer = self.signaling_peer
        _log.warn(
            "peer {peer_id} (lobby {lobby}, {address}) flooded: {reason}",
            peer_id=peer.peer_id if peer else 0,
            lobby=_lobby(peer),
            address=_address(peer),
            reason=reason.text,
        )
        internals.set_unparsed(self, b"")
        self.discarding = True
        if peer is not None and not peer.closing:
            self.factory.engine.reject(peer, reason)
        else:
            self.close_for(reason)

    # -- the end ----------------------------------------------------------------------

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.gone = True
        if self.authenticating is not None:
            self.authenticating.cancel()
        if not wasClean:
            # Autobahn's reason for 1006 is its own prose, not the client's.
            code, reason = 1006, ""
        code = 1005 if code is None else code
        self.factory.engine.closed(self, self.signaling_peer, code, reason or "")

    def connectionMade(self) -> None:
        with internals.lazy_debug_formatting():
            super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            with internals.lazy_debug_formatting():
                super().connectionLost(reason)
        finally:
            self.front = None
            key = self.counted_key
            if key:
                self.counted_key = ""
                self.factory.admission.release(key)

    # -- output: the engine's ConnectionHandle ----------------------------------------

    def send_message(self, message: AnyMessage) -> None:
        # A peer whose closing handshake has begun (it sent a close frame, or
        # overflowed) stays in its lobby until its socket is gone; what is
        # sent to it meanwhile is dropped, as Autobahn would refuse it.
        codec = self.codec  # set by the first message, before any reply
        if codec is not None and internals.is_open(self):
            # One unfragmented frame per message, built here: Autobahn's
            # sendMessage adds checks and bookkeeping this server never needs.
            payload = codec.encode(message)
            self.queue(text_frame(payload))
            if message.type in RELAY_TYPES:
                peer = self.signaling_peer
                lobby = peer.lobby if peer is not None else None
                self.factory.engine.traffic.relayed(
                    message.type,
                    len(payload),
                    message.data,  # type: ignore[union-attr]  # relays are Messages
                    lobby.name if lobby is not None else None,
                )

    def queue(self, frame: bytes) -> None:
        """Add ``frame`` to what the next `flush` writes."""
        if not self.outgoing:
            self.factory.engine.unflushed.append(self)
        self.outgoing.append(frame)

    def flush(self) -> None:
        """Write the frames queued since the last flush, in one piece."""
        outgoing = self.outgoing
        if outgoing:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            if not internals.write_now(self.transport, data):
                self.check_send_buffer()

    def close_for(self, reason: Reason) -> None:
        # sendClose() refuses 1001 (going away), which shutdown needs; the frame
        # method takes any code and still runs the closing handshake.
        self.sendCloseFrame(code=reason.code, reasonUtf8=reason.text.encode(), isReply=False)

    def drop(self) -> None:
        self.dropConnection(abort=True)

    def ping(self, payload: bytes) -> None:
        self.sendPing(payload)

    def failHandshake(
        self, reason: str, code: int = 400, responseHeaders: object | None = None
    ) -> None:
        """Answer a refused upgrade with its HTTP status and close, as
        Autobahn does, but without its two log lines (the refusal has its
        own, once; see admission): an HTTP answer is how such an exchange is
        meant to end."""
        internals.mark_ended_cleanly(self)
        _log.debug("refused an upgrade: {code} {reason}", code=code, reason=reason)
        self.sendHttpErrorResponse(code, reason, responseHeaders)  # type: ignore[no-untyped-call]
        self.dropConnection(abort=False)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Everything Autobahn writes itself (handshake, pings, pongs, close
        # frames) goes out after the messages queued before it, and like them
        # straight to the socket when it can; Autobahn's own version of this
        # adds only statistics and a debug line formatted for nobody.
        if self.outgoing:
            self.flush()
        if sync or chopsize or internals.has_queued_sends(self):
            super().sendData(data, sync, chopsize)
        elif not internals.write_now(self.transport, data):
            self.check_send_buffer()

    def check_send_buffer(self) -> None:
        """Drop the connection at once when its unsent output passes
        ``max_send_buffer``: a client that stops reading would otherwise make
        the server hold everything its lobby sends it. No close frame: it
        could not get through. The peer leaves its lobby as if it had gone."""
        limit = self.factory.engine.config.max_send_buffer
        if not limit or internals.is_closed(self):
            return
        unsent = internals.unsent_bytes(self.transport)
        if unsent <= limit:
            return
        peer = self.signaling_peer
        _log.warn(
            "peer {peer_id} (lobby {lobby}, {address}) is not reading: {unsent} bytes "
            "unsent, over the limit of {limit}; dropping it",
            peer_id=peer.peer_id if peer else 0,
            lobby=_lobby(peer),
            address=_address(peer),
            unsent=unsent,
            limit=limit,
        )
        self.discarding = True
        self.dropConnection(abort=True)


@implementer(IProtocolNegotiationFactory)
class SignalingServerFactory(WebSocketServerFactory):
    """The Autobahn factory of an engine's connections."""

    protocol = SignalingServerProtocol  # type: ignore[assignment]
    # The service logs where it listens; "Starting factory" lines add nothing.
    noisy = False

    def __init__(self, engine: Engine[Any], admission: Admission, url: str | None = None):
        # No library name or version in the Server header: it only helps
        # someone matching servers to known flaws.
        super().__init__(url=url, server="")  # type: ignore[no-untyped-call]
        self.engine = engine
        self.admission = admission
        size = engine.config.max_message_size
        self.setProtocolOptions(  # type: ignore[no-untyped-call]
            # Send the close code (1009 for an oversized message) instead of dropping TCP.
            failByDrop=False,
            maxMessagePayloadSize=size,
            maxFramePayloadSize=size,
            # Autobahn's own pinger rounds to whole seconds; ours runs on the
            # engine's clock (see keepalive).
            autoPingInterval=0,
            # The front door (or the embedding site) times the upgrade.
            openHandshakeTimeout=0,
            # A plain GET that reaches Autobahn (listenWS, a mounted resource)
            # gets 426 Upgrade Required; the standalone server's front door
            # sends those to its web resources instead.
            webStatus=False,
            # Autobahn truncates this timer to a whole second of the clock, so
            # 1 s (its default) can expire at once and abort the TCP before the
            # client has read our close frame: it then sees 1006, not the reason.
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
        )
        # Autobahn refuses the "null" origin (sandboxed pages, file://) with
        # 400 by itself; with an allow-list the answer to any origin not on it
        # is ours (403). Any setProtocolOptions call resets this, so it is last.
        if admission.allowed_origins:
            self.setProtocolOptions(allowNullOrigin=True)  # type: ignore[no-untyped-call]

    @property
    def signaling(self) -> Any:
        """The engine's core (`Signaling`), with its ``lobbies`` and ``peers``."""
        return self.engine.core

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN for wss://. Every browser offers ALPN (h2, http/1.1), and
        Twisted's TLS (ssl:, tls: endpoints) aborts a handshake when the
        factory it wraps names no protocol in common: without this, no
        browser could connect. WebSocket upgrades are HTTP/1.1."""
        return [b"http/1.1"]


def _peer_host(transport: object) -> str:
    """The IP address at the other end of ``transport`` ("" if none)."""
    if transport is None:
        return ""
    return str(getattr(transport.getPeer(), "host", ""))  # type: ignore[attr-defined]


def _lobby(peer: Peer[Any] | None) -> str:
    return peer.lobby.name if peer is not None and peer.lobby is not None else "-"


def _address(peer: Peer[Any] | None) -> str:
    if peer is None or peer.handle.transport is None:
        return ""
    address = peer.handle.transport.getPeer()
    host = getattr(address, "host", None)
    if peer.address and host is not None and normalize_address(host) != peer.address:
        # Behind a trusted proxy: its port says nothing about the client.
        return peer.address
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)
