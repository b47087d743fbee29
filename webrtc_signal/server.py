"""Autobahn adapter: WebSocket connections in, `Signaling` actions out.

The protocol turns frames into core events; the factory owns the core, runs
its actions, keeps its timers on an injected `IReactorTime`, pings every
connection, and closes everything on shutdown.
"""

from __future__ import annotations

import pprint
from collections.abc import Iterable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import tcp
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport
from twisted.logger import Logger, LogLevel

from . import demo
from .codec import Codec, FormatError, codec_for
from .config import SignalingConfig
from .core import (
    Action,
    CancelTimer,
    Close,
    Notice,
    NoticeKind,
    Peer,
    Send,
    Signaling,
    StartTimer,
    Timer,
)
from .frames import read_text_frames, text_frame
from .messages import AnyMessage
from .reasons import CloseReason


class _PrettyWhenFormatted:
    """Stands in for ``pprint.pformat(value)`` until someone formats it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# Autobahn pretty-prints its ~50 settings for a debug line on every new
# connection, even when debug lines are discarded: a quarter of the server's
# CPU per connection when clients come and go. Same text, made only when read.
autobahn_protocol.pformat = _PrettyWhenFormatted

# Seconds a closed client has to answer our close frame before its TCP is cut.
CLOSE_HANDSHAKE_TIMEOUT = 5

# Not `log`: that attribute is Autobahn's own, filtered logger.
_log = Logger(namespace="webrtc_signal")

_NOTICE_LOG: dict[NoticeKind, tuple[LogLevel, str]] = {
    NoticeKind.CONNECTED: (LogLevel.info, "peer {peer_id} connected from {address}"),
    NoticeKind.REFUSED: (LogLevel.warn, "connection from {address} refused: {reason}"),
    NoticeKind.LOBBY_CREATED: (LogLevel.info, "peer {peer_id} created {mode} lobby {lobby}"),
    NoticeKind.LOBBY_JOINED: (
        LogLevel.info,
        "peer {peer_id} joined lobby {lobby} (members: {members})",
    ),
    NoticeKind.LOBBY_SEALED: (
        LogLevel.info,
        "peer {peer_id} sealed lobby {lobby} (members: {members})",
    ),
    NoticeKind.LOBBY_DELETED: (LogLevel.info, "lobby {lobby} deleted: {reason}"),
    NoticeKind.LEFT: (LogLevel.info, "peer {peer_id} disconnected (lobby {lobby})"),
    NoticeKind.CLOSED: (
        LogLevel.info,
        "closing peer {peer_id} (lobby {lobby}): {close_code} {reason}",
    ),
}


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
    signaling_peer: Peer | None = None
    # Set on each keepalive ping, cleared by the pong.
    awaiting_pong = False

    def __init__(self) -> None:
        super().__init__()
        # Frames waiting for the end of the current batch of input (see flush).
        self.outgoing: list[bytes] = []

    def onOpen(self) -> None:
        self.factory.connection_opened(self)

    def dataReceived(self, data: bytes) -> None:
        """The hot path: plain text frames are read here (see `frames`);
        anything else, and the opening handshake, goes through Autobahn."""
        if self.state != self.STATE_OPEN or self.current_frame is not None or self.inside_message:
            super().dataReceived(data)
        else:
            if self.data:
                data = self.data + data
            texts, used, waiting = read_text_frames(data, self.maxMessagePayloadSize)
            self.data = data[used:]
            for text in texts:
                self.on_text(text)
            if self.data and not waiting:
                # Autobahn takes over at the frame it understands and we do
                # not, and keeps the connection until its parser is idle again.
                self.consumeData()
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
        codec = self.codec
        if codec is None:
            codec = self.codec = codec_for(text)
        try:
            message = codec.decode(text)
        except FormatError:
            actions = self.factory.signaling.reject(peer, CloseReason.INVALID_FORMAT)
        else:
            actions = self.factory.signaling.receive(peer, message)
        self.factory.execute(actions)

    # Autobahn answers a GET without "Upgrade: websocket" with a status page
    # (or a redirect, given ?redirect=) when webStatus is on, which it is only
    # when the demo is served: answer with the demo instead.
    def sendServerStatus(self, redirectUrl: str | None = None, redirectAfter: int = 0) -> None:
        self.sendData(demo.http_response(self.http_request_path))

    def sendRedirect(self, url: str) -> None:
        self.sendServerStatus()

    def onPong(self, payload: bytes) -> None:
        self.awaiting_pong = False

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.connection_closed(self)

    def send_message(self, message: AnyMessage) -> None:
        # A peer whose closing handshake has begun (it sent a close frame, or
        # overflowed) stays in its lobby until its socket is gone; what is
        # sent to it meanwhile is dropped, as Autobahn would refuse it.
        if self.state == self.STATE_OPEN:
            if not self.outgoing:
                self.factory.unflushed.append(self)
            # One unfragmented frame per message, built here: Autobahn's
            # sendMessage adds checks and bookkeeping this server never needs.
            self.outgoing.append(text_frame(self.codec.encode(message)))

    def flush(self) -> None:
        """Write the frames queued since the last flush, in one piece."""
        outgoing = self.outgoing
        if outgoing:
            data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
            outgoing.clear()
            _write(self.transport, data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Everything Autobahn writes itself (handshake, pings, pongs, close
        # frames) goes out after the messages queued before it, and like them
        # straight to the socket when it can; Autobahn's own version of this
        # adds only statistics and a debug line formatted for nobody.
        if self.outgoing:
            self.flush()
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
        else:
            _write(self.transport, data)

    def close_for(self, reason: CloseReason) -> None:
        # sendClose() refuses 1001 (going away), which shutdown needs; the frame
        # method takes any code and still runs the closing handshake.
        self.sendCloseFrame(code=reason.code, reasonUtf8=reason.text.encode(), isReply=False)


class SignalingServerFactory(WebSocketServerFactory):
    """Owns one `Signaling` core and everything with a lifetime around it."""

    protocol = SignalingServerProtocol
    # The service logs where it listens; "Starting factory" lines add nothing.
    noisy = False

    def __init__(
        self,
        config: SignalingConfig | None = None,
        clock: IReactorTime | None = None,
        url: str | None = None,
    ):
        super().__init__(url=url)
        if clock is None:
            from twisted.internet import reactor as clock
        self.config = config or SignalingConfig()
        self.clock: IReactorTime = clock
        self.signaling = Signaling(self.config)
        self.connections: set[SignalingServerProtocol] = set()
        # Connections with frames queued by the current batch of input.
        self.unflushed: list[SignalingServerProtocol] = []
        self._timers: dict[Timer, IDelayedCall] = {}
        self._keepalive: IDelayedCall | None = None
        self._all_closed: list[Deferred[None]] = []
        self.setProtocolOptions(
            # Send the close code (1009 for an oversized message) instead of dropping TCP.
            failByDrop=False,
            maxMessagePayloadSize=self.config.max_message_size,
            maxFramePayloadSize=self.config.max_message_size,
            # Autobahn's own pinger rounds to whole seconds; ours runs on `clock`.
            autoPingInterval=0,
            # A plain GET gets the demo (see sendServerStatus), or else 426
            # Upgrade Required.
            webStatus=self.config.serve_demo,
            # Autobahn truncates this timer to a whole second of the clock, so
            # 1 s (its default) can expire at once and abort the TCP before the
            # client has read our close frame: it then sees 1006, not the reason.
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT,
        )

    # -- connection events from the protocol ---------------------------------

    def connection_opened(self, connection: SignalingServerProtocol) -> None:
        peer, actions = self.signaling.connect(connection)
        connection.signaling_peer = peer
        if not peer.closing:
            self.connections.add(connection)
            self._start_keepalive()
        self.execute(actions)

    def connection_closed(self, connection: SignalingServerProtocol) -> None:
        peer = connection.signaling_peer
        if peer is None:
            # The handshake never completed: the core never heard of it.
            return
        self.connections.discard(connection)
        self.execute(self.signaling.disconnect(peer))
        self.flush()
        if not self.connections:
            self._stop_keepalive()
            waiters, self._all_closed = self._all_closed, []
            for waiter in waiters:
                waiter.callback(None)

    # -- carrying out the core's actions --------------------------------------

    def execute(self, actions: Iterable[Action]) -> None:
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
                _log_notice(action)

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

    def _timer_fired(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self.execute(self.signaling.timer_fired(timer))
        self.flush()

    @property
    def pending_timers(self) -> int:
        return len(self._timers)

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
                connection.awaiting_pong = True
                connection.sendPing()
        if self.connections:
            self._start_keepalive()

    # -- shutdown --------------------------------------------------------------

    def shutdown(self, timeout: float = 5.0) -> Deferred[None]:
        """Close every client with 1001, cancel every timer, refuse newcomers.

        The Deferred fires once every connection is gone, or after ``timeout``
        seconds on `clock`, when stragglers are dropped without a handshake."""
        self._stop_keepalive()
        self.execute(self.signaling.shutdown())
        self.flush()
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
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


def _write(transport: ITransport, data: bytes) -> None:
    """Write ``data`` now. ``transport.write`` would queue it, register the
    socket for writability and send on the reactor's next turn: two extra
    system calls and a turn of latency per write. When Twisted holds nothing
    for this plain TCP connection, sending directly keeps the bytes in order
    and saves both. What the socket does not take, and any error, go the
    usual way, so Twisted finishes the job and reports failures as always."""
    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    ):
        sent = transport.writeSomeData(data)
        if type(sent) is int:
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)


def _cancel_then_pass(result: object, call: IDelayedCall) -> object:
    if call.active():
        call.cancel()
    return result


def _log_notice(notice: Notice) -> None:
    level, text = _NOTICE_LOG[notice.kind]
    peer = notice.peer
    reason = notice.reason
    _log.emit(
        level,
        text,
        event_kind=str(notice.kind),
        peer_id=peer.peer_id if peer is not None else 0,
        address=_address(peer),
        lobby=notice.lobby or "-",
        members=notice.members,
        mode=notice.mode,
        close_code=reason.code if reason is not None else None,
        reason=reason.text if reason is not None else "",
    )


def _address(peer: Peer | None) -> str:
    if peer is None:
        return ""
    address = peer.handle.transport.getPeer()  # type: ignore[attr-defined]
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)
