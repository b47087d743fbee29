"""Every private part of Autobahn and Twisted this server relies on, in one place.

The fast path (`frames` and the adapter) reads plain text frames without
Autobahn's per-frame machinery and writes straight to the socket. That needs
a few attributes and methods the libraries do not document. Each is named
here, with why it is needed, and used only through this module, so that a
library upgrade that renames one breaks here, where
``tests/server/test_internals_contract.py`` checks them all against the
installed versions and says which one is missing.

Nothing here is called per relayed message more than once per read or write.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib import parse

import txaio as txaio_typed
from autobahn.twisted import websocket as autobahn_twisted
from autobahn.twisted.util import create_transport_details, peer2str
from autobahn.wamp.types import TransportDetails
from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.compress import PERMESSAGE_COMPRESSION_EXTENSION
from autobahn.websocket.protocol import (
    TrafficStats,
    WebSocketProtocol,
    _is_same_origin,
    _url_to_origin,
    parseHttpHeader,
)
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from autobahn.websocket.utf8validator import Utf8Validator
from twisted.internet import abstract, epollreactor, tcp
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.python import log as twisted_log
from twisted.python.failure import Failure


def _untyped(value: object) -> Any:
    """``value`` for reading attributes its library sets but does not declare."""
    return value


# txaio picks its functions at run time (Twisted's or asyncio's).
txaio: Any = txaio_typed


# -- Autobahn: the protocol's state and parser --------------------------------

# What the contract test checks on `WebSocketServerProtocol`, by kind. Class
# attributes and methods exist on the class; instance attributes once a
# connection is open (the test opens one).
AUTOBAHN_CLASS_ATTRIBUTES = (
    # The protocol's states: the fast path runs only in STATE_OPEN, and sends
    # to a closing connection are dropped (STATE_CLOSING/CLOSED).
    "STATE_OPEN",
    "STATE_CLOSED",
    # Resumes Autobahn's frame parser on its buffered input, where the fast
    # path met a frame it leaves to Autobahn (control frames, fragments...).
    "consumeData",
    # Overridden, with Autobahn's signature: the handshake's size limit and
    # HEAD requests (processHandshake), plain HTTP answers (sendServerStatus,
    # sendRedirect, failHandshake), the ordered direct writes (sendData),
    # fragment counting (onFrameBegin), and scoped lazy log formatting
    # (connectionMade, connectionLost).
    "processHandshake",
    "sendServerStatus",
    "sendRedirect",
    "failHandshake",
    "sendData",
    "onFrameBegin",
    "connectionMade",
    "connectionLost",
    "sendCloseFrame",
    # Autobahn's handling of a received close frame (answer, drop, close
    # code and reason for onClose), called by the fast path with the code
    # and raw reason its parser would have passed.
    "onCloseFrame",
)
AUTOBAHN_INSTANCE_ATTRIBUTES = (
    # The state machine's current state (see STATE_*).
    "state",
    # The frame being parsed, and whether a fragmented message is under way:
    # the fast path takes over only when Autobahn's parser is idle.
    "current_frame",
    "inside_message",
    # Autobahn's buffer of input not parsed yet: the fast path reads from it
    # and leaves what it does not take; the handshake checks scan it.
    "data",
    # Writes Autobahn queued for later (sync or chopped sends): direct writes
    # would overtake them.
    "send_queue",
    # The parsed request of a plain HTTP GET, which Autobahn keeps only here.
    "http_request_path",
    "http_request_params",
    # Marks how a connection ended: a plain HTTP exchange ended as HTTP
    # means it to, not as a WebSocket dropped without a closing handshake.
    "wasClean",
    # The size limit, copied from the factory's options at connectionMade.
    "maxMessagePayloadSize",
)
AUTOBAHN_FACTORY_ATTRIBUTES = (
    # Connections the factory has now (handshaking or open): the budget of
    # open files is checked against it at the upgrade.
    "countConnections",
)
# Module-level names Autobahn calls eagerly for debug lines nobody reads.
AUTOBAHN_MODULE_ATTRIBUTES = {
    autobahn_protocol: ("pformat", "hltype", "hlval"),
    autobahn_twisted: ("hltype", "hlval"),
}


def parser_idle(connection: WebSocketProtocol) -> bool:
    """Whether Autobahn is between frames of an open connection, so that the
    fast path may read the next ones."""
    return (
        connection.state == WebSocketProtocol.STATE_OPEN
        and connection.current_frame is None
        and not connection.inside_message
    )


def is_open(connection: WebSocketProtocol) -> bool:
    return bool(connection.state == WebSocketProtocol.STATE_OPEN)


def is_closed(connection: WebSocketProtocol) -> bool:
    return bool(connection.state == WebSocketProtocol.STATE_CLOSED)


def unparsed(connection: WebSocketProtocol) -> bytes:
    """The input Autobahn holds, not parsed yet."""
    data: bytes = connection.data
    return data


def set_unparsed(connection: WebSocketProtocol, data: bytes) -> None:
    """Replace the input Autobahn holds (what the fast path left, a rewritten
    request line, or nothing when a flood is thrown away)."""
    connection.data = data


def resume_parser(connection: WebSocketProtocol) -> None:
    """Let Autobahn parse what it holds, from a frame the fast path left."""
    connection.consumeData()


def close_frame_received(
    connection: WebSocketProtocol, code: int | None, reason: bytes | None
) -> None:
    """Hand a client's close frame, read by the fast path, to Autobahn as its
    parser does (``code`` None for an empty payload, ``reason`` None when
    there is none): it checks both, answers and ends the connection."""
    with lazy_debug_formatting():
        _untyped(connection).onCloseFrame(code, reason)


def current_opcode(connection: WebSocketProtocol) -> int:
    """The opcode of the frame Autobahn began (in onFrameBegin)."""
    opcode: int = connection.current_frame.opcode
    return opcode


def inside_message(connection: WebSocketProtocol) -> bool:
    return bool(connection.inside_message)


def has_queued_sends(connection: WebSocketProtocol) -> bool:
    # Not read through the attribute: that would make a queue (see `LeanServerProtocol`).
    return bool(connection.__dict__.get("send_queue"))


def request_path(connection: WebSocketProtocol) -> str:
    path: str = _untyped(connection).http_request_path
    return path


def request_params(connection: WebSocketProtocol) -> dict[str, list[str]]:
    params: dict[str, list[str]] = _untyped(connection).http_request_params
    return params


def mark_ended_cleanly(connection: WebSocketProtocol) -> None:
    """Autobahn logs a warning when a connection drops without a closing
    handshake; after a plain HTTP answer that is how it is meant to end."""
    connection.wasClean = True


def max_message_size(connection: WebSocketProtocol) -> int:
    size: int = _untyped(connection).maxMessagePayloadSize
    return size


def connection_count(factory: Any) -> int:
    count: int = factory.countConnections
    return count


# -- Autobahn: lazy formatting of its debug lines, for our connections only ---


class _FormattedWhenRead:
    """Stands in for ``function(value)`` until someone formats it."""

    __slots__ = ("function", "value")

    def __init__(self, function: Callable[[Any], str], value: object) -> None:
        self.function = function
        self.value = value

    def __str__(self) -> str:
        return self.function(self.value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# Whether this thread is inside one of our protocol's calls into Autobahn.
_ours = threading.local()


class _LazyInOurCalls:
    """Autobahn's formatting function, made lazy inside our calls only.

    On every new connection Autobahn pretty-prints its ~50 settings and
    highlights a dozen arguments (a Failure's traceback among them) for debug
    lines that are then dropped: a quarter of the server's CPU when clients
    come and go. In place of the module's function, this object formats as
    it always did, except while our protocol calls into Autobahn
    (`lazy_debug_formatting`) in this thread: then the text is made only if
    a line is read, and is the same. Any other Autobahn user in the process
    (a game server that embeds us) gets the function's own behaviour."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any], str]) -> None:
        self.function = function

    def __call__(self, value: object) -> str | _FormattedWhenRead:
        if getattr(_ours, "inside", False):
            return _FormattedWhenRead(self.function, value)
        return self.function(value)


def _install_lazy_formatting() -> None:
    for module, names in AUTOBAHN_MODULE_ATTRIBUTES.items():
        for name in names:
            function = getattr(module, name)
            if not isinstance(function, _LazyInOurCalls):
                setattr(module, name, _LazyInOurCalls(function))


_install_lazy_formatting()


@contextmanager
def lazy_debug_formatting() -> Iterator[None]:
    """Within this block (in this thread), Autobahn's eager formatting for
    its debug lines is done only if a line is read (see `_LazyInOurCalls`)."""
    outer = getattr(_ours, "inside", False)
    _ours.inside = True
    try:
        yield
    finally:
        _ours.inside = outer


# -- Twisted: the TCP connection's write buffer -------------------------------

TWISTED_TCP_ATTRIBUTES = (
    # Whether the connection is TLS (then bytes must go through its BIO).
    "TLS",
    # Open and not closing: only then may bytes go to the socket directly.
    "connected",
    "disconnecting",
    # Twisted's write buffer: the list of pending chunks, its length, and
    # the sent offset into the joined buffer. Direct writes are allowed only
    # when it is empty (order), and its size is the connection's backlog.
    "_tempDataLen",
    "dataBuffer",
    "offset",
    # Sends what the socket takes now, without queueing.
    "writeSomeData",
)
# TLS holds application bytes written before its handshake completes.
TWISTED_TLS_SEND_BUFFER = "_appSendBuffer"


def write_now(transport: object, data: bytes) -> bool:
    """Write ``data`` now; True when the socket took all of it.

    ``transport.write`` would queue it, register the socket for writability
    and send on the reactor's next turn: two extra system calls and a turn of
    latency per write. When Twisted holds nothing for this plain TCP
    connection, sending directly keeps the bytes in order and saves both.
    What the socket does not take, and any error, go the usual way, so
    Twisted finishes the job and reports failures as always."""
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
                return True
            data = data[sent:]
    transport.write(data)  # type: ignore[attr-defined]
    return False


def unsent_bytes(transport: object) -> int:
    """Bytes written to ``transport`` that have not reached the kernel yet:
    in Twisted's buffers of the TCP connection under any wrappers (TLS, the
    PROXY protocol), plus what TLS holds before its handshake is done."""
    total = 0
    while transport is not None:
        if isinstance(transport, abstract.FileDescriptor):
            buffered: int = len(transport.dataBuffer) - transport.offset
            unsent: int = total + buffered + transport._tempDataLen
            return unsent
        pending = getattr(transport, TWISTED_TLS_SEND_BUFFER, None)
        if pending:
            total += sum(len(chunk) for chunk in pending)
        transport = getattr(transport, "transport", None)
    return total


# -- Twisted: the epoll reactor's loop ----------------------------------------
#
# For every ready socket, EPollReactor.doPoll calls log.callWithLogger, which
# asks the socket for its log prefix and pushes a copy of the legacy log
# context holding it ({"system": prefix}) around the read or write: a dict
# copy, a thread-local lookup and four Python calls per event, whoever logs.
# Measured on a bare Twisted echo server under the bench's rate load, that
# is a quarter of its CPU. `lean_event_loop` polls the same way and handles
# each event the same way (`_doReadOrWrite`, which catches and logs what the
# read or write raises and closes that connection), and logs what escapes
# it with the socket's prefix, as callWithLogger does. It only notes which
# socket it is handling: the legacy lines logged meanwhile (Twisted's own
# "Unhandled Error" for an exception in a read, among them) carry no prefix
# ("-"), and the server's log file writes the socket's (`handled_log_prefix`,
# read by `logs` only for such a line). This server's own lines go through
# twisted.logger, whose events never had it.


class _Handling:
    """The socket the lean loop is handling, if any."""

    selectable: Any = None


_handling = _Handling()


def lean_event_loop(reactor: object) -> bool:
    """Make ``reactor``'s loop handle events without the legacy log context,
    if it is Twisted's epoll reactor itself (not a subclass, nor another
    reactor: those are left as they are). For the standalone server, whose
    process is its own; an embedding game server keeps its reactor as it is."""
    if type(reactor) is not epollreactor.EPollReactor:
        return False
    loop: Any = reactor
    handling = _handling

    def do_poll(timeout: float | None) -> None:
        selectables = loop._selectables
        try:
            events = loop._poller.poll(-1 if timeout is None else timeout, len(selectables))
        except InterruptedError:
            return
        handle = loop._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue
            handling.selectable = selectable
            try:
                handle(selectable, fd, event)
            except KeyboardInterrupt:
                raise
            except BaseException:
                # What callWithLogger does: log it and go on with the others.
                twisted_log.err(system=_log_prefix(selectable))
            finally:
                handling.selectable = None

    loop.doIteration = loop.doPoll = do_poll
    return True


def handled_log_prefix() -> str | None:
    """The log prefix of the socket the lean loop is reading or writing now
    (what Twisted's loop put in the legacy log context); None outside."""
    selectable = _handling.selectable
    return None if selectable is None else _log_prefix(selectable)


def _log_prefix(selectable: Any) -> str:
    try:
        return str(selectable.logPrefix())
    except BaseException:
        return "(buggy logPrefix method)"


# -- Autobahn: a lean connection ----------------------------------------------

# What Autobahn's opening handshake answers with when it accepts an upgrade
# without a subprotocol, extension, Server header or extra headers (the only
# answer this server gives), around the Sec-WebSocket-Accept value.
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
_ACCEPT = b"Sec-WebSocket-Accept: "
_KEY_MAGIC = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_BASE64 = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
# Extension offers seen, parsed (see `_extension_offers`): few distinct
# headers exist in the field (one per browser and library).
_EXTENSION_OFFERS_KEPT = 64


class _PerConnection:
    """A class attribute that becomes the connection's own object on first
    use: Autobahn makes these (a send queue, a UTF-8 validator, counters,
    futures) for every connection, and most connections never touch them."""

    __slots__ = ("make", "name")

    def __init__(self, make: Callable[[Any], object]) -> None:
        self.make = make
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.make(instance)
        instance.__dict__[self.name] = value
        return value


def _future_resolved_if(reached: Callable[[Any], bool], result: Callable[[Any], object]) -> Any:
    """A future made on first use, resolved at once when the connection has
    already reached the point Autobahn would have resolved it at."""

    def make(connection: Any) -> Any:
        future = txaio.create_future()
        if reached(connection):
            txaio.resolve(future, result(connection))
        return future

    return make


def _transport_details(connection: Any) -> Any:
    details = create_transport_details(connection.transport, connection.is_server)
    details.channel_framing = TransportDetails.CHANNEL_FRAMING_WEBSOCKET
    return details


@functools.lru_cache(maxsize=_EXTENSION_OFFERS_KEPT)
def _extension_offers(header: str) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """Autobahn's reading of a Sec-WebSocket-Extensions header: the parsed
    extensions and permessage-compress offers, or None when an offer does
    not parse (Autobahn refuses the upgrade then)."""
    extensions = WebSocketProtocol._parseExtensionsHeader(None, header)  # type: ignore[arg-type]
    offers = []
    for name, params in extensions:
        compression: Any = PERMESSAGE_COMPRESSION_EXTENSION.get(name)
        if compression is not None:
            try:
                offers.append(compression["Offer"].parse(params))
            except Exception:
                return None
    return tuple(extensions), tuple(offers)


class LeanServerProtocol(autobahn_twisted.WebSocketServerProtocol):
    """Autobahn's server protocol, with a lean connection set-up, opening
    handshake and teardown for the common case, and its behaviour unchanged.

    Autobahn gives every connection ~90 attributes (its ~50 settings copied
    from the factory, state flags, two futures, a send queue, a UTF-8
    validator, the parsed request) and parses and checks an upgrade with a
    general path that builds debug lines: per connection, a third of the
    server's CPU when clients come and go, and most of an idle connection's
    memory. Here the settings are class attributes of a subclass made per
    factory (`configured_protocol`), the flags' usual values are class
    attributes too, the mutable parts are made on first use
    (`_PerConnection`), and a well-formed upgrade that this server accepts
    as Autobahn would (no subprotocol, no extension accepted) is checked and
    answered by `processHandshake` here, with the same answer byte for byte;
    any other request goes through Autobahn's own path, which answers it as
    it always did."""

    # Set on the per-factory subclasses, which carry the factory's settings.
    settings_from_factory = False

    # The usual values of what Autobahn sets per connection.
    state = WebSocketProtocol.STATE_CONNECTING
    send_state = WebSocketProtocol.SEND_STATE_GROUND
    data = b""
    triggered = False
    _perMessageCompress = None
    trackedTimings: Any = None
    current_frame: Any = None
    inside_message = False
    websocket_version = 13
    websocket_protocol_in_use = None
    websocket_extensions_in_use: Any = ()
    wasMaxFramePayloadSizeExceeded = False
    wasMaxMessagePayloadSizeExceeded = False
    closedByMe = False
    failedByMe = False
    droppedByMe = False
    wasClean = False
    wasNotCleanReason: Any = None
    wasServerConnectionDropTimeout = False
    wasOpenHandshakeTimeout = False
    wasCloseHandshakeTimeout = False
    wasServingFlashSocketPolicyFile = False
    localCloseCode = None
    localCloseReason: Any = None
    remoteCloseCode = None
    remoteCloseReason = None
    openHandshakeTimeoutCall = None
    closeHandshakeTimeoutCall = None
    autoPingTimeoutCall = None
    autoPingPending = None
    autoPingPendingCall = None
    autoPingPendingSeq = 0
    autoPingPendingSent = None
    # Whether `_accept` opened the connection (is_open is then made resolved).
    opened = False

    send_queue = _PerConnection(lambda _: deque())
    utf8validator = _PerConnection(lambda _: Utf8Validator())
    trafficStats = _PerConnection(lambda _: TrafficStats())
    _transport_details = _PerConnection(_transport_details)
    peer = _PerConnection(lambda connection: peer2str(connection.transport))
    is_open = _PerConnection(_future_resolved_if(lambda c: c.opened, lambda _: None))
    is_closed = _PerConnection(lambda _: txaio.create_future())

    def __init__(self) -> None:
        # Autobahn's makes two futures and an event table here (see above).
        pass

    def connectionMade(self) -> None:
        # Autobahn's also works out the transport's details (now made when
        # first read) and formats debug lines.
        # As Autobahn: not every transport has Nagle's algorithm.
        connection = _untyped(self)
        with suppress(Exception):
            connection.transport.setTcpNoDelay(connection.tcpNoDelay)
        self._connectionMade()

    def _connectionMade(self) -> None:
        if not self.settings_from_factory:
            for name in self.CONFIG_ATTRS:
                if not hasattr(self, name):
                    setattr(self, name, getattr(self.factory, name))
        if self.trackTimings:
            self.setTrackTimings(True)
        self.factory.countConnections += 1
        timeout = _untyped(self).openHandshakeTimeout
        if timeout > 0:
            self.openHandshakeTimeoutCall = self.factory._batched_timer.call_later(
                timeout, self.onOpenHandshakeTimeout
            )

    def _onOpen(self) -> None:
        if "_transport_details" in self.__dict__:
            super()._onOpen()
        else:
            # Made now, they are complete (TLS included): what Autobahn's
            # version adds to the ones it made at connectionMade.
            self.onOpen()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if isinstance(reason.value, ConnectionDone | ConnectionLost):
            # Autobahn's version only adds debug lines for these.
            self._connectionLost(reason)
        else:
            super().connectionLost(reason)

    def _connectionLost(self, reason: Any) -> None:
        WebSocketProtocol._connectionLost(self, reason)
        self.factory.countConnections -= 1

    def _dataReceived(self, data: bytes) -> None:
        # Autobahn's also counts the bytes in trafficStats, which nothing
        # here reads: counted only once something has read them.
        stats = self.__dict__.get("trafficStats")
        if stats is not None:
            if self.state == WebSocketProtocol.STATE_OPEN:
                stats.incomingOctetsWireLevel += len(data)
            elif self.state == WebSocketProtocol.STATE_CONNECTING:
                stats.preopenIncomingOctetsWireLevel += len(data)
        if _untyped(self).logOctets:
            self.logRxOctets(data)
        self.data += data
        self.consumeData()

    def processHandshake(self) -> None:
        end = self.data.find(b"\r\n\r\n")
        checked = _checked_upgrade(self, self.data[: end + 4]) if end >= 0 else None
        if checked is None:
            super().processHandshake()
            return
        request, key = checked
        self.data = self.data[end + 4 :]
        try:
            answer = self.onConnect(request)
        except Exception:
            self._refuse(Failure())
            return
        if answer is None and self.factory_answer_is_plain():
            self._accept(key)
            return
        # The full answer (a Deferred, a subprotocol, extra headers): Autobahn's.
        self._wskey = key
        self.websocket_protocols = []
        self.websocket_extensions = list(request.extensions)
        txaio.add_callbacks(txaio.as_future(lambda: answer), self.succeedHandshake, self._refuse)

    def factory_answer_is_plain(self) -> bool:
        """Whether the 101 answer has only the usual headers (no Server
        header, no extra headers, nothing to start at open)."""
        factory = self.factory
        settings = _untyped(self)
        return not (factory.server or factory.headers or settings.autoPingInterval)

    def _accept(self, key: str) -> None:
        """What Autobahn's succeedHandshake does for a plain accept."""
        digest = hashlib.sha1(key.encode() + _KEY_MAGIC).digest()
        self.sendData(_SWITCHING + _ACCEPT + base64.b64encode(digest) + b"\r\n\r\n")
        self.state = WebSocketProtocol.STATE_OPEN
        if self.openHandshakeTimeoutCall is not None:
            self.openHandshakeTimeoutCall.cancel()
            self.openHandshakeTimeoutCall = None
        self._onOpen()
        if "is_open" in self.__dict__:
            txaio.resolve(self.is_open, None)
        self.opened = True
        if self.data:
            self.consumeData()

    def _refuse(self, failure: Failure) -> None:
        """What Autobahn does when onConnect refuses or fails."""
        if isinstance(failure.value, ConnectionDeny):
            self.failHandshake(str(failure.value.reason), failure.value.code)
            return
        self.log.warn("Unexpected exception in onConnect ['{err.value}']", err=failure)
        self.log.warn("{tb}", tb=txaio.failure_format_traceback(failure))
        self.failHandshake(
            f"Internal server error: {failure.value}", ConnectionDeny.INTERNAL_SERVER_ERROR
        )


def _checked_upgrade(connection: Any, head: bytes) -> tuple[ConnectionRequest, str] | None:
    """The request and key of an upgrade request that passes every check of
    Autobahn's and that this module answers as Autobahn would; None for any
    other request (Autobahn's own path then answers it)."""
    try:
        status_line, headers, counts = parseHttpHeader(head)
    except ValueError:
        return None
    target = _request_target(status_line)
    host = _request_host(connection, headers, counts)
    if target is None or host is None or not _upgrade_headers(connection, headers, counts):
        return None
    key = _valid_key(headers, counts)
    origin = _allowed_origin(connection, headers, counts)
    extensions = _offered_extensions(connection, headers, counts)
    if key is None or origin is None or extensions is None:
        return None
    path, params = target
    request = ConnectionRequest(
        connection.peer, headers, host, path, params, 13, origin, [], list(extensions)
    )
    return request, key


def _valid_key(headers: dict[str, str], counts: dict[str, int]) -> str | None:
    """The Sec-WebSocket-Key, when Autobahn would take it: 16 bytes in base64."""
    key = headers["sec-websocket-key"].strip()
    if counts["sec-websocket-key"] != 1 or len(key) != 24 or key[-2:] != "==":
        return None
    return key if _BASE64.issuperset(key[:-2]) else None


def _request_target(status_line: str) -> tuple[str, dict[str, list[str]]] | None:
    """The path and query parameters of ``GET <path> HTTP/1.1`` (a plain
    path: no fragment, no ``;`` parameters, no authority)."""
    parts = status_line.split()
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        return None
    target = parts[1]
    if target[:1] != "/" or target[:2] == "//" or "#" in target or ";" in target:
        return None
    path, _, query = target.partition("?")
    return path, parse.parse_qs(query) if query else {}


def _request_host(connection: Any, headers: dict[str, str], counts: dict[str, int]) -> str | None:
    if counts.get("host") != 1:
        return None
    host = headers["host"].strip()
    if ":" in host and not host.endswith("]"):
        host, port = host.rsplit(":", 1)
        try:
            number = int(port.strip())
        except ValueError:
            return None
        expected = connection.factory.externalPort
        if expected and number != expected:
            return None
    return host


def _upgrade_headers(connection: Any, headers: dict[str, str], counts: dict[str, int]) -> bool:
    """Upgrade: websocket, Connection: upgrade, version 13, no subprotocol,
    and nothing that Autobahn would treat specially."""
    if not _has_token(headers.get("upgrade"), "websocket"):
        return False
    if not _has_token(headers.get("connection"), "upgrade"):
        return False
    if counts.get("sec-websocket-version") != 1 or headers["sec-websocket-version"].strip() != "13":
        return False
    if 13 not in connection.versions or "sec-websocket-protocol" in headers:
        return False
    if "sec-websocket-key" not in headers or connection.trustXForwardedFor:
        return False
    limit = connection.maxConnections
    return not (limit > 0 and connection.factory.countConnections > limit)


def _has_token(value: str | None, token: str) -> bool:
    return value is not None and any(part.strip().lower() == token for part in value.split(","))


def _allowed_origin(connection: Any, headers: dict[str, str], counts: dict[str, int]) -> str | None:
    """The Origin header ("" without one) when Autobahn would allow it."""
    if "origin" not in headers:
        return ""
    origin = headers["origin"].strip()
    if counts["origin"] != 1:
        return None
    try:
        origin_tuple = _url_to_origin(origin)
    except ValueError:
        return None
    factory = connection.factory
    if origin_tuple == "null" and factory.allowNullOrigin:
        return origin
    scheme = "https" if factory.isSecure else "http"
    port = factory.externalPort or factory.port
    if not _is_same_origin(origin_tuple, scheme, port, connection.allowedOriginsPatterns):
        return None
    return origin


def _offered_extensions(
    connection: Any, headers: dict[str, str], counts: dict[str, int]
) -> tuple[Any, ...] | None:
    """The extensions offered, when their offers parse and none is accepted."""
    header = headers.get("sec-websocket-extensions")
    if header is None:
        return ()
    if counts["sec-websocket-extensions"] != 1:
        return None
    parsed = _extension_offers(header)
    if parsed is None:
        return None
    extensions, offers = parsed
    if offers and connection.perMessageCompressionAccept(list(offers)) is not None:
        return None
    return extensions


def configured_protocol(factory: Any) -> type:
    """``factory.protocol`` with the factory's settings as class attributes
    (see `LeanServerProtocol`), made once per factory and protocol class and
    made again after ``setProtocolOptions``."""
    protocol = factory.protocol
    made = factory.__dict__.get("_configured_protocol")
    if made is not None and made[0] is protocol:
        configured: type = made[1]
        return configured
    if not issubclass(protocol, LeanServerProtocol):
        return protocol  # type: ignore[no-any-return]
    # As Autobahn: a setting the protocol class has itself is not the factory's.
    # A function setting (perMessageCompressionAccept) stays a plain function,
    # not a method of the class.
    settings = {
        name: staticmethod(value) if callable(value) else value
        for name in protocol.CONFIG_ATTRS
        if not hasattr(protocol, name)
        for value in (getattr(factory, name),)
    }
    configured = type(protocol.__name__, (protocol,), {**settings, "settings_from_factory": True})
    configured.__module__ = protocol.__module__
    configured.__qualname__ = protocol.__qualname__
    factory._configured_protocol = (protocol, configured)
    return configured


def forget_configured_protocol(factory: Any) -> None:
    """The factory's settings changed: the next connection takes them up."""
    factory.__dict__.pop("_configured_protocol", None)
