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

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from autobahn.twisted import websocket as autobahn_twisted
from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import abstract, tcp


def _untyped(value: object) -> Any:
    """``value`` for reading attributes its library sets but does not declare."""
    return value


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


def current_opcode(connection: WebSocketProtocol) -> int:
    """The opcode of the frame Autobahn began (in onFrameBegin)."""
    opcode: int = connection.current_frame.opcode
    return opcode


def inside_message(connection: WebSocketProtocol) -> bool:
    return bool(connection.inside_message)


def has_queued_sends(connection: WebSocketProtocol) -> bool:
    return bool(connection.send_queue)


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
