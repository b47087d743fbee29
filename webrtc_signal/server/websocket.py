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

from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..protocol.codec import JSON_CODEC, FormatError, codec_for
from ..protocol.limits import MAX_FRAGMENTS, PING_BURST, PING_RATE, MessageRate, TokenBucket
from ..protocol.reasons import CloseReason
from . import _internals as internals
from .admission import Admission
from .connection_output import address_of, lobby_of
from .engine import Engine
from .frames import read_close_frame, read_text_frames
from .logs import QuietLogger
from .upgrade import UpgradeHandling

# Seconds a closed client has to answer our close frame before its TCP is cut.
CLOSE_HANDSHAKE_TIMEOUT = 5

# Not `log`: that attribute is Autobahn's own, filtered logger.
_log = QuietLogger(namespace="webrtc_signal")


class SignalingServerProtocol(UpgradeHandling):
    """One client connection; the engine's `ConnectionHandle`."""

    factory: SignalingServerFactory
    # Autobahn turns Nagle's algorithm off in connectionMade by reading this
    # attribute, but copies it from the factory only afterwards: without it
    # here, Nagle stays on, and a small write that follows one the client has
    # not yet acknowledged waits for the client's delayed ACK (40 ms).
    tcpNoDelay = True
    # Frames of the message being received.
    fragments = 0
    # After a flood the rest of the input is thrown away unread.
    discarding = False
    message_rate: MessageRate | None = None
    ping_bucket: TokenBucket | None = None

    def onOpen(self) -> None:
        # A connection lost while its authenticate hook ran is opened by
        # Autobahn all the same when the hook answers: it gets no peer.
        if self.gone:
            return
        if self.front is not None:
            self.front.upgraded()
            self.front = None
        self.start_limits()
        self.signaling_peer = self.factory.engine.open(
            self, self.client_address(), self.identity, self.lobby_request
        )

    def start_limits(self) -> None:
        """The per-connection rate limits, from the connection's open."""
        config = self.factory.engine.config
        now = self.factory.engine.clock.seconds()
        if config.max_message_rate > 0 or config.max_byte_rate > 0:
            self.message_rate = MessageRate(
                config.max_message_rate,
                config.max_message_burst,
                config.max_byte_rate,
                config.max_byte_burst,
                now,
            )
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
                self.rest_to_autobahn(rest)
        self.factory.engine.flush()

    def rest_to_autobahn(self, rest: bytes) -> None:
        """Autobahn takes over at the frame it understands and the fast path
        does not, and keeps the connection until its parser is idle again.
        A client's close frame alone at the end of the input (a player
        leaving) goes straight to Autobahn's close handler, with what its
        parser would pass it, without the parser's per-frame set-up."""
        close = read_close_frame(rest)
        if close is None or not internals.is_open(self) or internals.unparsed(self) is not rest:
            internals.resume_parser(self)
            return
        internals.set_unparsed(self, b"")
        internals.close_frame_received(self, *close)

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
        rate = self.message_rate
        if rate is None:
            return None
        # Python knows whether a string is ASCII without looking at it: only
        # other text is encoded to be counted.
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        return None if rate.take(now, size) else CloseReason.TOO_MANY_MESSAGES

    def unexpected_error(self, error: Exception) -> None:
        """A bug met while handling a message: close this connection (1011)."""
        peer = self.signaling_peer
        engine = self.factory.engine
        engine.errors.report(error, peer.peer_id if peer else 0, address_of(peer))
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
        # Debug: the close has its line, once per kind (event_log), and a
        # client flooding again and again must not write one per connection.
        _log.debug(
            "peer {peer_id} (lobby {lobby}, {address}) flooded: {reason}",
            peer_id=peer.peer_id if peer else 0,
            lobby=lobby_of(peer),
            address=address_of(peer),
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
        self.setProtocolOptions(
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
            self.setProtocolOptions(allowNullOrigin=True)

    def buildProtocol(self, addr: Any) -> SignalingServerProtocol:  # type: ignore[override]
        # Each connection reads the factory's settings from its class (see
        # `internals.LeanServerProtocol`) instead of a copy of its own.
        protocol: SignalingServerProtocol = internals.configured_protocol(self)()
        protocol.factory = self
        return protocol

    def setProtocolOptions(self, **options: Any) -> None:  # type: ignore[override]
        super().setProtocolOptions(**options)  # type: ignore[no-untyped-call]
        internals.forget_configured_protocol(self)

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
