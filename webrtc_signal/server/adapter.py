"""Autobahn adapter: WebSocket connections in, `Signaling` actions out.

The protocol turns frames into core events; the factory owns the core, runs
its actions, keeps its timers on an injected `IReactorTime`, pings every
connection, and closes everything on shutdown. It also runs a game server's
hooks (see `hooks`), hands the core's events to observers, and carries out
the control methods `SignalingService` offers.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from autobahn.websocket.types import ConnectionRequest as AutobahnRequest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocolNegotiationFactory,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from ..protocol.access import (
    check_origin_pattern,
    limit_key,
    normalize_address,
    origin_allowed,
    parse_networks,
    real_client_address,
)
from ..protocol.codec import JSON_CODEC, Codec, FormatError, codec_for
from ..protocol.config import SignalingConfig
from ..protocol.core import (
    Action,
    CancelTimer,
    Close,
    Peer,
    Send,
    Signaling,
    StartTimer,
    Timer,
)
from ..protocol.events import ConnectionRefused, Event, LobbyClosed, LobbyCreated
from ..protocol.hooks import ConnectionRequest, LobbyInfo, Refused
from ..protocol.limits import (
    MAX_FRAGMENTS,
    PING_BURST,
    PING_RATE,
    AddressCounter,
    TokenBucket,
)
from ..protocol.messages import RELAY_TYPES, AnyMessage
from ..protocol.reasons import CloseReason, Reason
from . import _internals as internals
from . import hooks as _hooks
from . import http, ice
from .frames import read_text_frames, text_frame
from .health import HEALTH_PATH, health_response
from .ice import IceServers
from .logs import QuietLogger
from .metrics import CANDIDATE, UNTYPED, TrafficCounts

if TYPE_CHECKING:
    from ..cluster.bridge import ClusterBridge, Link
    from .drain import Drain


# Seconds a closed client has to answer our close frame before its TCP is cut.
CLOSE_HANDSHAKE_TIMEOUT = 5

# Largest opening handshake (request line and headers) read; the reference
# server's HTTP parser stops at the same size.
MAX_UPGRADE_REQUEST = 16 * 1024
# An unexpected error of one kind is logged at most once per this many seconds.
ERROR_LOG_INTERVAL = 60.0

# Not `log`: that attribute is Autobahn's own, filtered logger.
_log = QuietLogger(namespace="webrtc_signal")


# The core's types, for this adapter's connections.
_Peer = Peer["SignalingServerProtocol"]
_Timer = Timer["SignalingServerProtocol"]
_Action = Action["SignalingServerProtocol"]


class SignalingServerProtocol(WebSocketServerProtocol):
    """One client connection. It only translates; the rules live in the core."""

    factory: SignalingServerFactory
    # Autobahn turns Nagle's algorithm off in connectionMade by reading this
    # attribute, but copies it from the factory only afterwards: without it
    # here, Nagle stays on, and a small write that follows one the client has
    # not yet acknowledged waits for the client's delayed ACK (40 ms).
    tcpNoDelay = True
    # Picked by the first text message; nothing is sent before that.
    codec: Codec | None = None
    signaling_peer: _Peer | None = None
    # Set on each keepalive ping, cleared by the pong carrying its payload.
    awaiting_pong = False
    # A HEAD request, answered like the GET it mirrors but without the body.
    head_request = False
    ping_payload = b""
    # -- abuse limits (docs/security.md) --
    # The client's address after any trusted proxy header, set at the upgrade.
    real_address = ""
    # The key this connection is counted under per address ("" = not counted).
    counted_key = ""
    # Bytes of the opening handshake already searched for its end.
    header_scanned = 0
    # Frames of the message being received.
    fragments = 0
    # After a flood the rest of the input is thrown away unread.
    discarding = False
    message_bucket: TokenBucket | None = None
    ping_bucket: TokenBucket | None = None
    # What the authenticate hook said about this connection.
    identity: object = None
    # The authenticate hook's answer, while it is awaited.
    authenticating: Deferred[Any] | None = None
    # The connection was lost (possibly before the handshake finished).
    gone = False
    # In a cluster: this connection's link to the node running its lobby.
    cluster_link: Link | None = None

    def __init__(self) -> None:
        super().__init__()
        # Frames waiting for the end of the current batch of input (see flush).
        self.outgoing: list[bytes] = []

    def onConnect(  # type: ignore[override]  # Autobahn accepts a Deferred of its answer
        self, request: AutobahnRequest
    ) -> Deferred[None] | None:
        # A draining server takes no new connections (see drain.py); a load
        # balancer or a client's retry then finds another server.
        if self.factory.signaling.draining:
            raise self.factory.deny(ConnectionDeny.SERVICE_UNAVAILABLE, "Server draining")
        if self.head_request:
            raise self.factory.deny(405, "HEAD cannot open a WebSocket")
        # The server's own checks (origin, per-address limits) come before the
        # game server's: a refused flood never reaches its hook.
        self.factory.admit(self, request)
        # Without an authenticate hook the upgrade goes on at once, as before.
        if self.factory.authenticate_hook is None:
            return None
        return self.factory.authenticate(self, request)

    def onOpen(self) -> None:
        # A connection lost while its authenticate hook ran is opened by
        # Autobahn all the same when the hook answers: it gets no peer.
        if not self.gone:
            self.start_limits()
            self.factory.connection_opened(self)

    def connectionMade(self) -> None:
        with internals.lazy_debug_formatting():
            super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        try:
            with internals.lazy_debug_formatting():
                super().connectionLost(reason)
        finally:
            self.factory.release(self)

    def client_address(self) -> str:
        """The client's IP address, as text ("" if the transport has none)."""
        return self.real_address or normalize_address(_peer_host(self.transport))

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
        self.factory.flush()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Messages Autobahn read (fragmented ones, or any after a frame the
        hot path left to it). Autobahn has checked a text message's UTF-8."""
        if isBinary:
            peer = self.signaling_peer
            if peer is not None:
                self.factory.execute(
                    self.factory.signaling.reject(peer, CloseReason.INVALID_TRANSFER_MODE)
                )
        else:
            self.on_text(payload.decode("utf-8"))

    def on_text(self, text: str) -> None:
        peer = self.signaling_peer
        if peer is None:
            return
        try:
            signaling = self.factory.signaling
            now = self.factory.clock.seconds()
            bucket = self.message_bucket
            if bucket is not None and not bucket.take(now):
                self.factory.execute(signaling.reject(peer, CloseReason.TOO_MANY_MESSAGES))
                return
            codec = self.codec
            if codec is None:
                codec = self.codec = codec_for(text)
                peer.framing = "json" if codec is JSON_CODEC else "lines"
            try:
                message = codec.decode(text)
            except FormatError:
                actions = signaling.reject(peer, CloseReason.INVALID_FORMAT)
            else:
                cluster = self.factory.cluster
                if cluster is not None and peer.lobby is None:
                    # Not in a lobby of this node: the cluster routes it (a
                    # JOIN to a lobby another node runs, or what follows it).
                    actions = cluster.receive(self, peer, message, now)
                else:
                    actions = signaling.receive(peer, message, now)
            self.factory.execute(actions)
        except Exception as error:
            self.factory.unexpected_error(self, error)

    # Autobahn answers a GET without "Upgrade: websocket" with a status page
    # (or a redirect, given ?redirect=) when webStatus is on, which it always
    # is: answer with the ICE servers, the demo, or 426 without the demo.
    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        path = internals.request_path(self)
        if path == HEALTH_PATH:
            self.sendData(health_response(self.factory.signaling))
            self._http_answered()
            return
        if path == ice.PATH:
            self.sendData(self.factory.ice.http_response(internals.request_params(self)))
        else:
            demo = self.factory.config.serve_demo
            self.sendData(http.http_response(path, self.head_request, demo))
        self._http_answered()

    def sendRedirect(self, url: str) -> None:
        self.sendServerStatus()

    def failHandshake(
        self, reason: str, code: int = 400, responseHeaders: object | None = None
    ) -> None:
        if code == 426:
            # A plain HTTP request with the demo off: "Upgrade Required" is the answer.
            self._http_answered()
        super().failHandshake(reason, code, responseHeaders)

    def _http_answered(self) -> None:
        # Autobahn drops the TCP after its answer to a plain HTTP request, and
        # logs that drop as a warning because no WebSocket closing handshake
        # came first (wasClean). One warning per demo asset or scanner request
        # is noise: the exchange ended as HTTP means it to. Marked clean, the
        # drop is logged at debug; every other unclean drop still warns.
        internals.mark_ended_cleanly(self)

    def onPong(self, payload: bytes) -> None:
        # Only the answer to our own ping counts: unsolicited pongs (empty,
        # or guessed) must not keep a peer that reads nothing alive.
        if self.awaiting_pong and payload == self.ping_payload:
            self.awaiting_pong = False

    def onPing(self, payload: bytes) -> None:
        """Answer in the batched write (one per input batch, not one per
        ping), unless the client pings faster than `limits.PING_RATE`."""
        if not internals.is_open(self):
            return
        bucket = self.ping_bucket
        if bucket is not None and not bucket.take(self.factory.clock.seconds()):
            self.flooded(CloseReason.PING_FLOOD)
            return
        if not self.outgoing:
            self.factory.unflushed.append(self)
        # A control frame's payload is at most 125 bytes: Autobahn checked.
        self.outgoing.append(bytes((0x8A, len(payload))) + payload)

    def onFrameBegin(self) -> None:
        # Count the frames of each data message (control frames between
        # fragments are not part of it).
        if internals.current_opcode(self) < 8:
            self.fragments = self.fragments + 1 if internals.inside_message(self) else 1
            if self.fragments > MAX_FRAGMENTS:
                self.flooded(CloseReason.FRAGMENT_FLOOD)
                return
        super().onFrameBegin()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.gone = True
        if self.authenticating is not None:
            self.authenticating.cancel()
        if not wasClean:
            # Autobahn's reason for 1006 is its own prose, not the client's.
            code, reason = 1006, ""
        self.factory.connection_closed(self, 1005 if code is None else code, reason or "")

    def send_message(self, message: AnyMessage) -> None:
        # A peer whose closing handshake has begun (it sent a close frame, or
        # overflowed) stays in its lobby until its socket is gone; what is
        # sent to it meanwhile is dropped, as Autobahn would refuse it.
        codec = self.codec  # set by the first message, before any reply
        if codec is not None and internals.is_open(self):
            if not self.outgoing:
                self.factory.unflushed.append(self)
            # One unfragmented frame per message, built here: Autobahn's
            # sendMessage adds checks and bookkeeping this server never needs.
            payload = codec.encode(message)
            self.outgoing.append(text_frame(payload))
            kind = message.type
            if kind in RELAY_TYPES:
                # Relayed: counted for the metrics (see metrics.TrafficCounts),
                # inline, as this runs for every relayed message.
                traffic = self.factory.traffic
                traffic.bytes[kind] += len(payload)
                if kind != CANDIDATE:
                    traffic.messages[kind] += 1
                # Relay types are only ever plain Messages.
                elif " typ " in message.data:  # type: ignore[union-attr]
                    traffic.typed_candidate(message.data, self)  # type: ignore[union-attr]
                else:
                    traffic.candidates[UNTYPED] += 1

    def flush(self) -> None:
        """Write the frames queued since the last flush, in one piece."""
        outgoing = self.outgoing
        if outgoing:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            if not internals.write_now(self.transport, data):
                self.check_send_buffer()

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

    def close_for(self, reason: Reason) -> None:
        # sendClose() refuses 1001 (going away), which shutdown needs; the frame
        # method takes any code and still runs the closing handshake.
        self.sendCloseFrame(code=reason.code, reasonUtf8=reason.text.encode(), isReply=False)

    # -- abuse limits (docs/security.md) ----------------------------------------

    def processHandshake(self) -> None:
        """Refuse an opening handshake over `MAX_UPGRADE_REQUEST` with 431.
        Only the bytes not yet searched are searched for the end of the
        headers (Autobahn searches everything on every read: quadratic), and
        Autobahn parses the request once, when it is complete."""
        data = internals.unparsed(self)
        end = data.find(b"\r\n\r\n", max(0, self.header_scanned - 3))
        if end < 0:
            self.header_scanned = len(data)
            if len(data) > MAX_UPGRADE_REQUEST:
                self.refuse_upgrade(431, "Request Header Fields Too Large")
            return
        if end + 4 > MAX_UPGRADE_REQUEST:
            self.refuse_upgrade(431, "Request Header Fields Too Large")
            return
        # Autobahn refuses every method but GET with 405, HEAD included, which
        # health and link checkers send. A HEAD goes through Autobahn's checks
        # as the GET it mirrors and is answered without the body (see
        # sendServerStatus); one that asks for a WebSocket is refused in
        # onConnect.
        if data.startswith(b"HEAD "):
            internals.set_unparsed(self, b"GET " + data[5:])
            self.head_request = True
        with internals.lazy_debug_formatting():
            super().processHandshake()

    def refuse_upgrade(self, status: int, reason: str) -> None:
        self.factory.traffic.refused(status, reason)
        internals.set_unparsed(self, b"")
        self.discarding = True
        self.failHandshake(reason, status)

    def start_limits(self) -> None:
        """The per-connection rate limits, from the connection's open."""
        config = self.factory.config
        now = self.factory.clock.seconds()
        if config.max_message_rate > 0:
            self.message_bucket = TokenBucket(
                config.max_message_rate, config.max_message_burst, now
            )
        self.ping_bucket = TokenBucket(PING_RATE, PING_BURST, now)

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
            self.factory.execute(self.factory.signaling.reject(peer, reason))
        else:
            self.close_for(reason)

    def check_send_buffer(self) -> None:
        """Drop the connection at once when its unsent output passes
        ``max_send_buffer``: a client that stops reading would otherwise make
        the server hold everything its lobby sends it. No close frame: it
        could not get through. The peer leaves its lobby as if it had gone."""
        limit = self.factory.config.max_send_buffer
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
    """Owns one `Signaling` core and everything with a lifetime around it."""

    protocol = SignalingServerProtocol  # type: ignore[assignment]
    # The service logs where it listens; "Starting factory" lines add nothing.
    noisy = False
    # A node of a cluster (config.redis_url; docs/cluster.md), else None.
    cluster: ClusterBridge | None = None

    def __init__(
        self,
        config: SignalingConfig | None = None,
        clock: IReactorTime | None = None,
        url: str | None = None,
        hooks: object = None,
    ):
        # No library name or version in the Server header: it only helps
        # someone matching servers to known flaws.
        super().__init__(url=url, server="")  # type: ignore[no-untyped-call]
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.config = config or SignalingConfig()
        self.clock: IReactorTime = clock
        self.hooks = hooks
        self.authenticate_hook = getattr(hooks, "authenticate", None)
        join_policy = _hooks.join_policy(hooks)
        self.signaling: Signaling[SignalingServerProtocol]
        if self.config.redis_url:
            # Imported only here: a single node never loads txredisapi.
            from ..cluster.bridge import ClusterSignaling

            self.signaling = ClusterSignaling(self.config, authorize_join=join_policy)
        else:
            self.signaling = Signaling(self.config, authorize_join=join_policy)
        # The server's log is the first observer; the game server adds its own.
        # A tuple, replaced on change: observers may come and go while called.
        self.observers: tuple[_hooks.Observer, ...] = (_hooks.LogObserver(),)
        # Events waiting for the observers, and whether they are being handed out.
        self._events: deque[Event] = deque()
        self._dispatching = False
        # When each lobby was created, in `clock` seconds (the core has no clock).
        self._created: dict[str, float] = {}
        # Relayed traffic and refusals at the upgrade, for the metrics.
        self.traffic = TrafficCounts(self.signaling.lobbies)
        self.ice = IceServers(self.config, self.clock)
        self.connections: set[SignalingServerProtocol] = set()
        # Connections with frames queued by the current batch of input.
        self.unflushed: list[SignalingServerProtocol] = []
        self._timers: dict[_Timer, IDelayedCall] = {}
        self._keepalive: IDelayedCall | None = None
        self._all_closed: list[Deferred[None]] = []
        self._init_limits()
        # The drain under way, if any (see drain.py).
        self.drain: Drain | None = None
        self.setProtocolOptions(  # type: ignore[no-untyped-call]
            # Send the close code (1009 for an oversized message) instead of dropping TCP.
            failByDrop=False,
            maxMessagePayloadSize=self.config.max_message_size,
            maxFramePayloadSize=self.config.max_message_size,
            # Autobahn's own pinger rounds to whole seconds; ours runs on `clock`.
            autoPingInterval=0,
            # A plain GET gets /ice-servers, the demo, or else 426 Upgrade
            # Required (see sendServerStatus).
            webStatus=True,
            # Autobahn truncates this timer to a whole second of the clock, so
            # 1 s (its default) can expire at once and abort the TCP before the
            # client has read our close frame: it then sees 1006, not the reason.
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
        )
        self._apply_origin_options()

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN for wss://. Every browser offers ALPN (h2, http/1.1), and
        Twisted's TLS (ssl:, tls: endpoints) aborts a handshake when the
        factory it wraps names no protocol in common: without this, no
        browser could connect. WebSocket upgrades are HTTP/1.1."""
        return [b"http/1.1"]

    # -- connection events from the protocol ---------------------------------

    def authenticate(
        self, connection: SignalingServerProtocol, request: AutobahnRequest
    ) -> Deferred[None]:
        """Ask the authenticate hook about ``connection``'s upgrade request:
        its identity is kept for the core, a refusal becomes the HTTP answer."""
        address = connection.client_address()
        asked = ConnectionRequest(
            address=address,
            path=request.path,
            query=request.params,
            headers=request.headers,
            origin=request.origin,
        )
        answer = _hooks.authenticate(self.authenticate_hook, asked)  # type: ignore[arg-type]
        connection.authenticating = answer

        def allowed(identity: object) -> Deferred[None] | None:
            connection.authenticating = None
            if connection.gone:
                return Deferred()  # nobody to open: never answered, collected with it
            connection.identity = identity
            return None

        def refused(failure: Failure) -> Deferred[None]:
            connection.authenticating = None
            if connection.gone or not failure.check(Refused):
                return Deferred()
            refusal: Refused = failure.value  # type: ignore[assignment]
            self.execute([ConnectionRefused(address, refusal.status, refusal.reason)])
            raise ConnectionDeny(refusal.status, refusal.reason)

        return answer.addCallbacks(allowed, refused)

    def connection_opened(self, connection: SignalingServerProtocol) -> None:
        peer, actions = self.signaling.connect(
            connection, connection.client_address(), connection.identity
        )
        connection.signaling_peer = peer
        if not peer.closing:
            self.connections.add(connection)
            self._start_keepalive()
        self.execute(actions)

    def connection_closed(
        self, connection: SignalingServerProtocol, code: int = 1006, reason: str = ""
    ) -> None:
        peer = connection.signaling_peer
        if peer is None:
            # The handshake never completed: the core never heard of it.
            return
        self.connections.discard(connection)
        self.execute(self.signaling.disconnect(peer, code, reason))
        if self.cluster is not None:
            self.cluster.connection_closed(connection, code, reason)
        self.flush()
        if not self.connections:
            self._stop_keepalive()
            waiters, self._all_closed = self._all_closed, []
            for waiter in waiters:
                waiter.callback(None)
        if self.drain is not None:
            self.drain.check()

    # -- carrying out the core's actions --------------------------------------

    def execute(self, actions: Iterable[_Action]) -> None:
        events = self._events
        for action in actions:
            # Send is by far the most frequent action: test for it first.
            if type(action) is Send:
                action.peer.handle.send_message(action.message)
            elif type(action) is Close:
                action.peer.handle.close_for(action.reason)
            elif type(action) is StartTimer:
                self._timers[action.timer] = self.clock.callLater(
                    action.delay, self._timer_fired, action.timer
                )
            elif type(action) is CancelTimer:
                call = self._timers.pop(action.timer, None)
                if call is not None and call.active():
                    call.cancel()
            else:
                events.append(action)  # type: ignore[arg-type]  # the rest are events
        # Observers hear of things once they are done (frames queued, closes
        # begun), in order, even when an observer calls a control method.
        if events and not self._dispatching:
            self._dispatch()

    def _dispatch(self) -> None:
        self._dispatching = True
        events = self._events
        try:
            while events:
                event = events.popleft()
                if type(event) is LobbyCreated:
                    self._created[event.lobby] = self.clock.seconds()
                elif type(event) is LobbyClosed:
                    self._created.pop(event.lobby, None)
                for observer in self.observers:
                    try:
                        observer(event)
                    except Exception:
                        _log.failure(
                            "observer {observer!r} failed on {event!r}",
                            observer=observer,
                            event=event,
                        )
        finally:
            self._dispatching = False

    def flush(self) -> None:
        """Write out what the core's actions queued. Every way into the
        factory (input, a closed connection, a timer, shutdown) ends here, so
        the reactor never idles with frames queued; and each connection gets
        one write per batch of input, however many messages it holds."""
        unflushed = self.unflushed
        if unflushed:
            for connection in unflushed:
                connection.flush()
            unflushed.clear()
        if self.cluster is not None:
            self.cluster.flush()

    def _timer_fired(self, timer: _Timer) -> None:
        self._timers.pop(timer, None)
        self.execute(self.signaling.timer_fired(timer))
        self.flush()

    # -- abuse limits (docs/security.md) ----------------------------------------

    def _init_limits(self) -> None:
        config = self.config
        self.peers_per_address = AddressCounter(config.max_peers_per_address)
        self.allowed_origins = tuple(check_origin_pattern(p) for p in config.allowed_origins)
        self.trusted_proxies = parse_networks(config.trust_forwarded_for)
        # Most connections (handshaking or open) before newcomers get 503;
        # 0 = no limit. The standalone server sets it from RLIMIT_NOFILE.
        self.max_connections = 0
        # Unexpected errors by kind: when each was last logged, and how many since.
        self._errors_logged: dict[tuple[str, str], tuple[float, int]] = {}

    def _apply_origin_options(self) -> None:
        # Autobahn refuses the "null" origin (sandboxed pages, file://) with
        # 400 by itself; with an allow-list the answer to any origin not on it
        # is ours (403). Any setProtocolOptions call resets this, so it is last.
        if self.allowed_origins:
            self.setProtocolOptions(allowNullOrigin=True)  # type: ignore[no-untyped-call]

    def admit(self, connection: SignalingServerProtocol, request: AutobahnRequest) -> None:
        """The upgrade-time checks; raises `ConnectionDeny` with the HTTP status."""
        peer_host = _peer_host(connection.transport)
        address = real_client_address(
            peer_host, request.headers.get("x-forwarded-for"), self.trusted_proxies
        )
        connection.real_address = address
        # Autobahn reports a missing Origin header as "".
        if not origin_allowed(request.origin or None, self.allowed_origins):
            _log.info(
                "refused a connection from {address}: origin {origin} not allowed",
                address=address,
                origin=request.origin,
            )
            raise self.deny(403, "Origin not allowed")
        connections = internals.connection_count(self)
        if self.max_connections and connections > self.max_connections:
            _log.warn(
                "refused a connection from {address}: {count} connections, the most "
                "the open-file limit allows",
                address=address,
                count=connections,
            )
            raise self.deny(503, "Server full")
        key = limit_key(address)
        if not self.peers_per_address.acquire(key):
            _log.warn(
                "refused a connection from {address}: it has {limit} already",
                address=address,
                limit=self.peers_per_address.limit,
            )
            raise self.deny(429, "Too many connections from your address")
        connection.counted_key = key

    def deny(self, status: int, reason: str) -> ConnectionDeny:
        """A refusal at the upgrade, to raise; counted for the metrics (no
        peer exists yet, so no event tells of it)."""
        self.traffic.refused(status, reason)
        return ConnectionDeny(status, reason)

    def release(self, connection: SignalingServerProtocol) -> None:
        """A connection is gone: it no longer counts against its address."""
        key = connection.counted_key
        if key:
            connection.counted_key = ""
            self.peers_per_address.release(key)

    def unexpected_error(self, connection: SignalingServerProtocol, error: Exception) -> None:
        """A bug met while handling a message: close that connection (1011)
        and log it, with its traceback, once per kind per minute: a client
        that can trigger it must not be able to flood the log."""
        traceback = error.__traceback__
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        where = (
            f"{traceback.tb_frame.f_code.co_filename}:{traceback.tb_lineno}"
            if traceback is not None
            else ""
        )
        kind = (type(error).__qualname__, where)
        now = self.clock.seconds()
        logged_at, suppressed = self._errors_logged.get(kind, (None, 0))
        if logged_at is None or now - logged_at >= ERROR_LOG_INTERVAL:
            self._errors_logged[kind] = (now, 0)
            peer = connection.signaling_peer
            _log.failure(
                "unexpected error handling a message from peer {peer_id} ({address}); "
                "closing it with 1011 ({suppressed} more like it since the last report)",
                failure=Failure(error),
                peer_id=peer.peer_id if peer else 0,
                address=_address(peer),
                suppressed=suppressed,
            )
        else:
            self._errors_logged[kind] = (logged_at, suppressed + 1)
        try:
            peer = connection.signaling_peer
            if peer is not None and not peer.closing:
                self.execute(self.signaling.reject(peer, CloseReason.INTERNAL_ERROR))
            else:
                connection.close_for(CloseReason.INTERNAL_ERROR)
        except Exception:
            connection.dropConnection(abort=True)

    # -- the game server's observers and control (see SignalingService) --------

    def add_observer(self, observer: _hooks.Observer) -> None:
        self.observers = (*self.observers, observer)

    def remove_observer(self, observer: _hooks.Observer) -> None:
        observers = list(self.observers)
        observers.remove(observer)
        self.observers = tuple(observers)

    def lobbies(self) -> list[LobbyInfo]:
        created = self._created
        return [
            self.signaling.lobby_info(lobby, created.get(name, 0.0))
            for name, lobby in self.signaling.lobbies.items()
        ]

    def lobby(self, name: str) -> LobbyInfo | None:
        found = self.signaling.lobbies.get(name)
        if found is None:
            return None
        return self.signaling.lobby_info(found, self._created.get(name, 0.0))

    def close_lobby(self, name: str, reason: str) -> bool:
        actions = self.signaling.close_lobby(name, _hooks.close_reason(4000, reason))
        return self._run(actions)

    def seal_lobby(self, name: str) -> bool:
        return self._run(self.signaling.seal_lobby(name))

    def kick(self, peer_id: int, reason: str) -> bool:
        actions = self.signaling.kick(peer_id, _hooks.close_reason(4000, reason))
        return self._run(actions)

    def reserve_lobby(self, mesh: bool, ttl: float, size: int | None = None) -> str:
        if type(ttl) not in (int, float) or not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"ttl must be a finite number of seconds > 0, not {ttl!r}")
        if size is not None and (type(size) is not int or size < 1):
            raise ValueError(f"size must be a whole number of members >= 1, not {size!r}")
        lobby, actions = self.signaling.reserve(bool(mesh), float(ttl), size)
        if lobby is None:
            if not self.signaling.accepting:
                raise Refused(CloseReason.SHUTDOWN.text, status=503)
            raise Refused(CloseReason.TOO_MANY_LOBBIES.text, status=503)
        self._run(actions)
        return lobby.name

    def _run(self, actions: list[_Action] | None) -> bool:
        if actions is None:
            return False
        self.execute(actions)
        self.flush()
        return True

    # -- keepalive -------------------------------------------------------------

    def _start_keepalive(self) -> None:
        if self._keepalive is None and self.config.ping_interval > 0 and self.signaling.accepting:
            self._keepalive = self.clock.callLater(self.config.ping_interval, self._ping_all)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None

    def _ping_all(self) -> None:
        """One ticker for all connections: a connection that has not answered
        the previous ping by now is dropped, and leaves like any other."""
        self._keepalive = None
        for connection in list(self.connections):
            if connection.awaiting_pong:
                peer = connection.signaling_peer
                _log.info(
                    "peer {peer_id} did not answer a ping within {interval}s: dropping it",
                    peer_id=peer.peer_id if peer else 0,
                    interval=self.config.ping_interval,
                )
                connection.dropConnection(abort=True)
            else:
                # A random payload: only the pong that echoes it counts.
                connection.ping_payload = os.urandom(8)
                connection.awaiting_pong = True
                connection.sendPing(connection.ping_payload)
        if self.connections:
            self._start_keepalive()

    # -- shutdown --------------------------------------------------------------

    def shutdown(self, timeout: float = 5.0) -> Deferred[None]:
        """Close every client with 1001, cancel every timer, refuse newcomers.

        The Deferred fires once every connection is gone, or after ``timeout``
        seconds on `clock`, when stragglers are dropped without a handshake."""
        self._stop_keepalive()
        # The core's shutdown cancels every timer it started.
        self.execute(self.signaling.shutdown())
        self.flush()
        if not self.connections:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._all_closed.append(done)
        deadline = self.clock.callLater(timeout, self._drop_stragglers)
        done.addBoth(_cancel_then_pass, deadline)
        return done

    def _drop_stragglers(self) -> None:
        for connection in list(self.connections):
            _log.warn("dropping a connection that did not finish closing in time")
            connection.dropConnection(abort=True)


def _cancel_then_pass(result: object, call: IDelayedCall) -> object:
    if call.active():
        call.cancel()
    return result


def _peer_host(transport: ITransport | None) -> str:
    """The IP address at the other end of ``transport`` ("" if none)."""
    if transport is None:
        return ""
    return str(getattr(transport.getPeer(), "host", ""))


def _lobby(peer: _Peer | None) -> str:
    return peer.lobby.name if peer is not None and peer.lobby is not None else "-"


def _address(peer: _Peer | None) -> str:
    if peer is None or peer.handle.transport is None:
        return ""
    address = peer.handle.transport.getPeer()
    host = getattr(address, "host", None)
    if peer.address and host is not None and normalize_address(host) != peer.address:
        # Behind a trusted proxy: its port says nothing about the client.
        return peer.address
    port = getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)
