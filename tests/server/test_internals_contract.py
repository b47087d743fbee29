"""The private parts of Autobahn and Twisted the server relies on
(`webrtc_signal.server._internals`) still do what it relies on them for, in
the installed versions. Each test exercises one helper of that module on a
real connection and checks the behaviour, so that an upgrade which keeps a
name but changes what it means fails here, naming the helper."""

from __future__ import annotations

import contextlib
import json
import pprint
import socket
import time
from collections.abc import Callable
from typing import Any

import autobahn
import pytest
import pytest_twisted
from autobahn.twisted import websocket as autobahn_twisted
from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import protocol, reactor, task
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.selectreactor import SelectReactor
from twisted.logger import capturedLogs, globalLogPublisher
from twisted.python.failure import Failure

import twisted
from webrtc_signal import SignalingConfig
from webrtc_signal.server import _internals, logs
from webrtc_signal.server.websocket import SignalingServerProtocol

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import raw_cleanup, raw_connect, upgrade_request  # noqa: F401
from ..support.wsframes import frame

VERSIONS = f"autobahn {autobahn.__version__}, Twisted {twisted.__version__}"
JOIN, OFFER = 0, 4


def port_of(server: RunningServer) -> int:
    return int(server.service.port.getHost().port)


def only_connection(server: RunningServer, peer_id: int) -> SignalingServerProtocol:
    for connection, peer in server.engine.connections.items():
        if peer.peer_id == peer_id:
            return connection  # type: ignore[return-value]
    raise AssertionError(f"no connection for peer {peer_id}")


async def turn() -> None:
    await task.deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_the_parser_is_handed_back_and_forth_without_losing_a_byte(
    server: RunningServer,
) -> None:
    """parser_idle, unparsed, set_unparsed, resume_parser, current_opcode,
    inside_message: text frames around a ping and a fragmented message, in
    one write, arrive whole and in order; the ping is answered."""
    host, lobby = await server.create()
    guest = await raw_connect(port_of(server))
    guest.send_json(JOIN, 0, lobby)
    guest_id = (await guest.next_json())["id"]
    await host.expect(2, guest_id)
    connection = only_connection(server, guest_id)
    assert _internals.parser_idle(connection), VERSIONS
    assert _internals.unparsed(connection) == b""

    def relay(n: int) -> bytes:
        return json.dumps({"type": OFFER, "id": 1, "data": f"m{n}"}).encode()

    burst = (
        frame(relay(1))
        + frame(b"are you there", opcode=9)  # a ping: Autobahn's, in the middle
        + frame(relay(2)[:10], fin=False)  # a message in two fragments
        + frame(relay(2)[10:], opcode=0)
        + frame(relay(3))
    )
    guest.transport.write(burst)
    for n in (1, 2, 3):
        await host.expect(OFFER, guest_id, f"m{n}")
    while True:
        opcode, payload = await guest.next_frame()
        if opcode == 10:
            break
    assert payload == b"are you there"
    assert _internals.parser_idle(connection), f"{VERSIONS}: the parser was not handed back"
    # Frames counted per message (current_opcode, inside_message): the last
    # message, read by Autobahn, was one frame.
    assert connection.fragments == 1


@pytest_twisted.ensureDeferred
async def test_direct_writes_reach_the_client_and_unsent_bytes_are_counted(
    make_server: ServerMaker,
) -> None:
    """write_now sends at once on an idle socket; when the client stops
    reading, what the kernel refuses waits in Twisted's buffer, and
    unsent_bytes sees it there."""
    server = await make_server(
        SignalingConfig(max_send_buffer=0, max_message_rate=0, max_byte_rate=0)
    )
    host, lobby = await server.create()
    slow = await raw_connect(port_of(server))
    slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send_json(JOIN, 0, lobby)
    slow_id = (await slow.next_json())["id"]
    while (await slow.next_json())["type"] != JOIN:
        pass
    await host.expect(2, slow_id)
    connection = only_connection(server, slow_id)
    assert _internals.unsent_bytes(connection.transport) == 0
    assert _internals.write_now(connection.transport, frame(b"", opcode=9, mask=None))
    assert (await slow.next_frame())[0] == 9  # the direct write arrived
    # Small kernel buffers on both ends: Twisted's buffer fills soon.
    connection.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    slow.transport.pauseProducing()
    for _ in range(200):
        host.send(OFFER, slow_id, "x" * 30_000)
        await turn()
        if _internals.unsent_bytes(connection.transport) > 0:
            break
    unsent = _internals.unsent_bytes(connection.transport)
    assert unsent > 0, f"{VERSIONS}: unsent_bytes never saw Twisted's buffer"
    assert not _internals.write_now(connection.transport, b"")  # queued behind it, in order
    slow.transport.resumeProducing()


@pytest_twisted.ensureDeferred
async def test_the_connection_count_and_the_open_state_follow_connections(
    server: RunningServer,
) -> None:
    """connection_count, is_open, is_closed, has_queued_sends, max_message_size."""
    factory = server.factory
    before = _internals.connection_count(factory)
    host, lobby = await server.create()
    assert _internals.connection_count(factory) == before + 1
    (connection,) = server.engine.connections
    assert _internals.is_open(connection) and not _internals.is_closed(connection)
    assert not _internals.has_queued_sends(connection)
    assert _internals.max_message_size(connection) == server.service.config.max_message_size
    host.sendClose(1000)
    await host.closed
    for _ in range(200):
        if _internals.connection_count(factory) == before:
            break
        await turn()
    assert _internals.connection_count(factory) == before
    assert _internals.is_closed(connection)


@pytest_twisted.ensureDeferred
async def test_an_http_answer_marked_clean_logs_no_warning(server: RunningServer) -> None:
    """mark_ended_cleanly: a refused upgrade ends as HTTP means it to, with
    no warning from Autobahn about a dropped connection."""
    from twisted.logger import LogLevel, globalLogPublisher

    warnings: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            warnings.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        request = upgrade_request(port_of(server)).replace(b"Version: 13", b"Version: 99")
        refused = await raw_connect(port_of(server), request=request)
        assert refused.status == 400
        await refused.wait_lost()
        await turn()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert warnings == []


@pytest.mark.parametrize("module", [autobahn_protocol, autobahn_twisted])
def test_formatting_is_autobahn_s_own_outside_our_calls(module: Any) -> None:
    value = {"b": [1, 2, 3], "a": "x" * 90}
    assert module.hltype(test_formatting_is_autobahn_s_own_outside_our_calls) == (
        module.hltype.function(test_formatting_is_autobahn_s_own_outside_our_calls)
    )
    if module is autobahn_protocol:
        assert module.pformat(value) == pprint.pformat(value)
        assert type(module.pformat(value)) is str


def test_formatting_inside_our_calls_is_lazy_and_reads_the_same() -> None:
    value = {"b": [1, 2, 3], "a": "x" * 90}
    with _internals.lazy_debug_formatting():
        lazy = autobahn_protocol.pformat(value)
        assert type(lazy) is not str
        with _internals.lazy_debug_formatting():
            pass
        assert type(autobahn_protocol.pformat(value)) is not str  # still inside
    assert str(lazy) == pprint.pformat(value)
    assert f"{lazy}" == pprint.pformat(value)
    assert type(autobahn_protocol.pformat(value)) is str


# -- the epoll reactor's loop -----------------------------------------------------


class _Echo(protocol.Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class _BrokenOnRead(protocol.Protocol):
    """Raises in a read: `_doReadOrWrite` catches it, logs Twisted's
    "Unhandled Error" (a legacy line) and closes the connection."""

    def dataReceived(self, data: bytes) -> None:
        raise RuntimeError("broken on read")


class _BrokenOnClose(protocol.Protocol):
    """Raises when its connection is lost: past `_doReadOrWrite`'s own
    handling, so the loop itself has to log it and carry on."""

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        raise RuntimeError("broken on close")


def _iterate_until(loop: EPollReactor, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, f"{VERSIONS}: {what}"
        loop.doIteration(0.01)


def _received(client: socket.socket, size: int) -> Callable[[], bool]:
    got = bytearray()

    def done() -> bool:
        with contextlib.suppress(BlockingIOError):
            got.extend(client.recv(65536))
        return len(got) >= size

    return done


def test_the_lean_event_loop_reads_writes_and_logs_what_escapes() -> None:
    """lean_event_loop: the reactor's own poller, selectables and
    _doReadOrWrite still serve connections (echoed bytes come back), and an
    exception that escapes _doReadOrWrite is logged with the connection's
    log prefix, as log.callWithLogger did, while the loop serves the rest."""
    loop = EPollReactor()
    assert _internals.lean_event_loop(loop)
    echo = loop.listenTCP(0, protocol.Factory.forProtocol(_Echo), interface="127.0.0.1")
    broken = loop.listenTCP(0, protocol.Factory.forProtocol(_BrokenOnClose), interface="127.0.0.1")
    clients: list[socket.socket] = []
    try:
        client = socket.create_connection(("127.0.0.1", echo.getHost().port), timeout=5)
        clients.append(client)
        client.setblocking(False)
        client.sendall(b"hello " * 1000)
        _iterate_until(loop, _received(client, 6000), "the echo never came back")

        victim = socket.create_connection(("127.0.0.1", broken.getHost().port), timeout=5)
        clients.append(victim)
        with capturedLogs() as events:
            _iterate_until(loop, lambda: len(loop._selectables) > 4, "no accept")
            victim.close()
            _iterate_until(
                loop,
                lambda: any(event.get("isError") for event in events),
                "the exception that escaped was not logged",
            )
            client.sendall(b"still there")
            _iterate_until(loop, _received(client, 11), "the loop stopped serving")
        logged = next(event for event in events if event.get("isError"))
        failure = logged.get("log_failure", logged.get("failure"))
        assert "broken on close" in str(failure.value), sorted(logged)
        assert logged["system"].startswith("_BrokenOnClose,"), logged["system"]
    finally:
        for each in clients:
            each.close()
        echo.stopListening()
        broken.stopListening()
        loop.removeAll()
        loop.waker.connectionLost(None)
        loop._poller.close()


def test_a_legacy_line_logged_in_a_read_names_the_socket_in_the_server_s_log() -> None:
    """handled_log_prefix: while the lean loop reads a socket it names it, so
    that the server's log observer (`logs.HandledSocketPrefix`) writes the
    connection's prefix on Twisted's "Unhandled Error", as Twisted's own loop
    did through the legacy log context; outside a read it names none."""
    loop = EPollReactor()
    assert _internals.lean_event_loop(loop)
    port = loop.listenTCP(0, protocol.Factory.forProtocol(_BrokenOnRead), interface="127.0.0.1")
    seen: list[dict[str, Any]] = []
    observer = logs.HandledSocketPrefix(seen.append, _internals.handled_log_prefix)
    globalLogPublisher.addObserver(observer)
    client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=5)
    try:
        client.sendall(b"boom")
        _iterate_until(
            loop, lambda: any(event.get("isError") for event in seen), "no Unhandled Error"
        )
    finally:
        globalLogPublisher.removeObserver(observer)
        client.close()
        port.stopListening()
        loop.removeAll()
        loop.waker.connectionLost(None)
        loop._poller.close()
    error = next(event for event in seen if event.get("isError"))
    assert "broken on read" in str(error.get("log_failure", error.get("failure")).value)
    assert error["log_system"].startswith("_BrokenOnRead,"), error["log_system"]
    assert _internals.handled_log_prefix() is None


def test_other_reactors_keep_their_loop() -> None:
    class OwnLoop(EPollReactor):
        pass

    for loop in (OwnLoop(), SelectReactor()):
        kept = loop.doIteration
        assert not _internals.lean_event_loop(loop)
        assert loop.doIteration == kept
        loop.removeAll()
        loop.waker.connectionLost(None)
