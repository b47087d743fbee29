"""The JSON protocol over real WebSocket connections to a server on 127.0.0.1.

The server's timers (join, seal, keepalive) run on a `task.Clock` the test
advances; everything else is real sockets on the real reactor.
"""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import RecordingClient, with_timeout

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)
RELAYS = (OFFER, ANSWER, CANDIDATE)


async def settle(server: RunningServer) -> None:
    """Let everything already sent be handled and answered. A pong comes back
    after all the server read before the ping: one pass of round trips flushes
    what each client sent, a second one what the server sent to each client."""
    for _ in range(2):
        for client in server.clients:
            if client.state == client.STATE_OPEN:
                await client.round_trip()


async def assert_silent(server: RunningServer, *clients: RecordingClient) -> None:
    """Nothing more is on its way to ``clients``."""
    await settle(server)
    for client in clients:
        assert client.pending() == []


# -- joining -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_create_and_join_in_protocol_order(server: RunningServer) -> None:
    host, lobby = await server.create()
    assert len(lobby) >= 16 and lobby.isalnum()
    a = await server.connect()
    a.send(JOIN, 0, lobby)
    id_message = await a.next()
    a_id = id_message["id"]
    assert id_message == {"type": ID, "id": a_id, "data": "true"}
    assert 2 <= a_id <= 2**31 - 1
    assert await a.next() == {"type": PEER_CONNECT, "id": 1, "data": ""}
    assert await a.next() == {"type": JOIN, "id": 0, "data": lobby}
    assert await host.next() == {"type": PEER_CONNECT, "id": a_id, "data": ""}

    b = await server.connect()
    b.send(JOIN, 5, lobby)  # the mode id only matters when creating
    b_id = (await b.expect(ID, data="true"))["id"]
    assert {(await b.next())["id"], (await b.next())["id"]} == {1, a_id}
    assert await b.next() == {"type": JOIN, "id": 0, "data": lobby}
    assert await host.next() == {"type": PEER_CONNECT, "id": b_id, "data": ""}
    assert await a.next() == {"type": PEER_CONNECT, "id": b_id, "data": ""}
    assert len({a_id, b_id}) == 2


@pytest_twisted.ensureDeferred
async def test_client_server_lobby_hides_non_hosts_from_each_other(server: RunningServer) -> None:
    host, lobby = await server.create(mesh=False)
    a, a_id = await server.join(lobby)
    b = await server.connect()
    b.send(JOIN, 0, lobby)
    b_id = (await b.expect(ID, data=""))["id"]
    assert await b.next() == {"type": PEER_CONNECT, "id": 1, "data": ""}
    assert await b.next() == {"type": JOIN, "id": 0, "data": lobby}
    await host.expect(PEER_CONNECT, a_id)
    await host.expect(PEER_CONNECT, b_id)

    # Non-hosts cannot reach each other, and a's leaving is told only to the host.
    b.send(OFFER, a_id, "not allowed")
    assert await b.wait_closed() == (4000, "Invalid destination")
    await host.expect(PEER_DISCONNECT, b_id)
    a.send(OFFER, 1, "still fine")
    assert await host.expect(OFFER, a_id, "still fine")
    await assert_silent(server, a)


# -- relaying ------------------------------------------------------------------

PAYLOADS = [
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n",
    "\n0\n0\ncandidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ srflx",
    'ünïcödé ✓ 漢字 😀 \u2028 "quotes" \\backslash\\ \t tab',
    "x" * 32 * 1024,
    "",
]


@pytest_twisted.ensureDeferred
async def test_every_relay_type_both_ways_byte_for_byte(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    b, b_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    await host.expect(PEER_CONNECT, b_id)
    await a.expect(PEER_CONNECT, b_id)
    routes = [
        (a, 1, host, a_id),
        (host, a_id, a, 1),
        (a, b_id, b, a_id),
        (b, a_id, a, b_id),
        (b, 1, host, b_id),
        (host, b_id, b, 1),
    ]
    for kind in RELAYS:
        for payload in PAYLOADS:
            for sender, destination, receiver, seen_as in routes:
                sender.send(kind, destination, payload)
                message = await receiver.next()
                assert message == {"type": kind, "id": seen_as, "data": payload}
    await assert_silent(server, host, a, b)


@pytest_twisted.ensureDeferred
async def test_relayed_bytes_are_the_senders_data_in_utf8(server: RunningServer) -> None:
    host, lobby = await server.create()
    a = await server.connect(raw=True)
    a.send(JOIN, 0, lobby)
    a_id = json.loads(await a.next())["id"]
    await a.next()
    await a.next()
    await host.expect(PEER_CONNECT, a_id)
    data = "line 1\nline 2 ü 😀"
    host.send(CANDIDATE, a_id, data)
    raw = await a.next()
    assert raw == ('{"type":6,"id":1,"data":' + json.dumps(data, ensure_ascii=False) + "}").encode()


@pytest_twisted.ensureDeferred
async def test_messages_keep_their_order(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    # Within the default message burst (200, JOIN included): the test clock stands still.
    for n in range(150):
        a.send(CANDIDATE, 1, str(n))
    for n in range(150):
        assert (await host.next())["data"] == str(n)


@pytest_twisted.ensureDeferred
async def test_relay_to_another_lobbys_peer_is_refused_and_that_lobby_untouched(
    server: RunningServer,
) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    other_host, other_lobby = await server.create()
    o, o_id = await server.join(other_lobby)
    await host.expect(PEER_CONNECT, a_id)
    await other_host.expect(PEER_CONNECT, o_id)
    a.send(OFFER, o_id, "sneaky")
    assert await a.wait_closed() == (4000, "Invalid destination")
    await host.expect(PEER_DISCONNECT, a_id)
    o.send(OFFER, 1, "hello")
    await other_host.expect(OFFER, o_id, "hello")
    await assert_silent(server, o)


# -- sealing -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_seal_then_timed_close(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(seal_timeout=3.0))
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    host.send(SEAL)
    assert await host.next() == {"type": SEAL, "id": 0, "data": ""}
    assert await a.next() == {"type": SEAL, "id": 0, "data": ""}

    late = await server.connect()
    late.send(JOIN, 0, lobby)
    assert await late.wait_closed() == (4000, "Lobby is sealed")

    a.send(CANDIDATE, 1, "\n0\n0\nstill relaying")
    await host.expect(CANDIDATE, a_id)
    server.clock.advance(2.9)
    await settle(server)
    assert not a.closed.called
    server.clock.advance(0.1)
    assert await host.wait_closed() == (1000, "Seal complete")
    assert await a.wait_closed() == (1000, "Seal complete")
    gone = await server.connect()
    gone.send(JOIN, 0, lobby)
    assert await gone.wait_closed() == (4000, "Lobby does not exists")
    assert server.core_timers() == 0


@pytest_twisted.ensureDeferred
async def test_only_the_host_can_seal(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.send(SEAL)
    assert await a.wait_closed() == (4000, "Only host can seal the lobby")
    await host.expect(PEER_DISCONNECT, a_id)


# -- leaving and timeouts ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_peer_leaving_and_host_leaving(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    b, b_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    await host.expect(PEER_CONNECT, b_id)
    await a.expect(PEER_CONNECT, b_id)
    b.sendClose(1000)
    await host.expect(PEER_DISCONNECT, b_id)
    await a.expect(PEER_DISCONNECT, b_id)
    host.dropConnection(abort=True)
    assert await a.wait_closed() == (4000, "Room host has disconnected")
    late = await server.connect()
    late.send(JOIN, 0, lobby)
    assert await late.wait_closed() == (4000, "Lobby does not exists")


@pytest_twisted.ensureDeferred
async def test_join_timeout(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(join_timeout=0.5))
    idle = await server.connect()
    joined, _ = await server.create()
    server.clock.advance(0.49)
    await settle(server)
    assert not idle.closed.called
    server.clock.advance(0.01)
    assert await idle.wait_closed() == (4000, "Have not joined lobby yet")
    assert not joined.closed.called


# -- limits --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_peer_limit(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_peers=2))
    host, lobby = await server.create()
    a, _ = await server.join(lobby)
    extra = await server.connect()
    assert await extra.wait_closed() == (4000, "Too many peers connected")
    host.sendClose(1000)
    assert await a.wait_closed() == (4000, "Room host has disconnected")
    await _wait_for(lambda: len(server.factory.signaling.peers) == 0)
    replacement = await server.connect()
    replacement.send(JOIN, 0, "")
    await replacement.expect(ID, 1)


@pytest_twisted.ensureDeferred
async def test_lobby_limit(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobbies=1))
    host, lobby = await server.create()
    extra = await server.connect()
    extra.send(JOIN, 0, "")
    assert await extra.wait_closed() == (4000, "Too many lobbies open, disconnecting")
    await server.join(lobby)


# -- bad input -----------------------------------------------------------------

BAD_MESSAGES = [
    b"not json",
    b"J: \n",
    b'[0, 0, ""]',
    b"null",
    b"{}",
    b'{"type": 0}',
    b'{"id": 0}',
    b'{"type": true, "id": 0, "data": ""}',
    b'{"type": 0, "id": true, "data": ""}',
    b'{"type": "0", "id": 0, "data": ""}',
    b'{"type": 0, "id": -1, "data": ""}',
    b'{"type": 0, "id": 0, "data": 7}',
    b'{"type": 0, "id": 0, "data": null}',
]


@pytest.mark.parametrize("payload", BAD_MESSAGES)
@pytest_twisted.ensureDeferred
async def test_bad_json_closes_with_invalid_format(server: RunningServer, payload: bytes) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.send_raw(payload)
    assert await a.wait_closed() == (4000, "Invalid message format")
    await host.expect(PEER_DISCONNECT, a_id)


@pytest_twisted.ensureDeferred
async def test_bad_json_before_joining(server: RunningServer) -> None:
    client = await server.connect()
    client.send_raw(b'{"type": 0, "id": true}')
    assert await client.wait_closed() == (4000, "Invalid message format")


@pytest_twisted.ensureDeferred
async def test_fractional_numbers_are_floored(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.send_raw(b'{"type": 4.7, "id": 1.2, "data": "floored"}')
    await host.expect(OFFER, a_id, "floored")


@pytest_twisted.ensureDeferred
async def test_binary_frame(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.send_raw(b'{"type": 4, "id": 1, "data": ""}', binary=True)
    assert await a.wait_closed() == (4000, "Invalid transfer mode, must be text")
    await host.expect(PEER_DISCONNECT, a_id)


@pytest_twisted.ensureDeferred
async def test_second_join(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.send(JOIN, 0, "")
    assert await a.wait_closed() == (4000, "Already in a lobby")
    await host.expect(PEER_DISCONNECT, a_id)
    host.send(JOIN, 0, lobby)
    assert await host.wait_closed() == (4000, "Already in a lobby")


@pytest_twisted.ensureDeferred
async def test_unknown_lobby_and_messages_before_joining(server: RunningServer) -> None:
    client = await server.connect()
    client.send(JOIN, 0, "DoesNotExist0000")
    assert await client.wait_closed() == (4000, "Lobby does not exists")
    client = await server.connect()
    client.send(OFFER, 1, "too early")
    assert await client.wait_closed() == (4000, "Invalid message when not in a lobby")


@pytest_twisted.ensureDeferred
async def test_unknown_type_in_a_lobby(server: RunningServer) -> None:
    host, lobby = await server.create()
    host.send(42, 0, "")
    assert await host.wait_closed() == (4000, "Invalid command")


@pytest_twisted.ensureDeferred
async def test_oversized_message_closes_only_that_connection_with_1009(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_message_size=4096))
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    b, b_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    await host.expect(PEER_CONNECT, b_id)
    a.send(CANDIDATE, 1, "x" * 4096)
    code, _ = await a.wait_closed()
    assert code == 1009
    await host.expect(PEER_DISCONNECT, a_id)
    b.send(CANDIDATE, 1, "y" * 4000)
    await host.expect(CANDIDATE, b_id, "y" * 4000)


@pytest_twisted.ensureDeferred
async def test_relays_to_a_peer_that_is_closing_are_dropped_quietly(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_message_size=4096))
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    # The server starts closing a (1009) but a never answers the close frame,
    # so a stays in the lobby, half closed, until Autobahn's handshake timeout.
    a.onCloseFrame = lambda code, reason: None  # type: ignore[method-assign]
    a.send(CANDIDATE, 1, "x" * 5000)
    await _wait_for(lambda: _connection_of(server, a_id).state != a.STATE_OPEN)
    for _ in range(3):
        host.send(OFFER, a_id, "into the void")
    # The host's connection survived its relays to the closing peer.
    host.send(SEAL)
    await host.expect(SEAL)
    assert not host.closed.called


@pytest_twisted.ensureDeferred
async def test_a_slow_client_still_gets_the_close_reason(server: RunningServer) -> None:
    """A client that takes over a second to answer our close frame is not cut
    off before it has read the code and reason."""
    client = await server.connect()
    answer_close = client.onCloseFrame

    def answer_late(code: int, reason: bytes) -> None:
        reactor.callLater(1.1, answer_close, code, reason)

    client.onCloseFrame = answer_late  # type: ignore[method-assign]
    client.send(OFFER, 1, "before joining")
    assert await client.wait_closed() == (4000, "Invalid message when not in a lobby")


# -- keepalive -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_peer_that_stops_answering_pings_is_dropped_and_leaves(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(ping_interval=10))
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.answer_pings = False

    server.clock.advance(10)
    await settle(server)
    assert (host.pings, a.pings) == (1, 1)
    await _wait_for(lambda: not server.engine.keepalive.awaiting(_connection_of(server, 1)))

    server.clock.advance(10)
    await host.expect(PEER_DISCONNECT, a_id)
    code, _ = await a.wait_closed()
    assert code != 1000
    assert not host.closed.called
    assert host.pings == 2


def _connection_of(server: RunningServer, public_id: int):
    for connection in server.engine.connections:
        peer = connection.signaling_peer
        if peer.lobby is not None and peer.lobby.public_id(peer) == public_id:
            return connection
    raise AssertionError(f"no connection for {public_id}")


async def _wait_for(condition, timeout: float = 5.0) -> None:
    from twisted.internet import task

    deadline = reactor.seconds() + timeout
    while not condition():
        assert reactor.seconds() < deadline, "condition not met in time"
        await task.deferLater(reactor, 0.01, lambda: None)


# -- shutdown ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_stopping_the_service_closes_everyone_with_1001(make_server: ServerMaker) -> None:
    server = await make_server()
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    _, sealed = await server.create()
    server.clients[-1].send(SEAL)
    await server.clients[-1].expect(SEAL)
    waiting = await server.connect()
    assert server.core_timers() == 2  # one seal, one join deadline

    stopped = server.service.stopService()
    for client in (host, a, server.clients[2], waiting):
        assert await client.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopped, 5)
    assert server.core_timers() == 0
    assert server.engine.connections == {}
    assert server.clock.getDelayedCalls() == []


# -- logging -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_lobby_life_and_protocol_errors_are_logged_as_structured_events(
    server: RunningServer,
) -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        host, lobby = await server.create()
        a, a_id = await server.join(lobby)
        await host.expect(PEER_CONNECT, a_id)
        for _ in range(3):
            a.send(CANDIDATE, 1, "relayed")
            await host.expect(CANDIDATE)
        host.send(SEAL)
        await host.expect(SEAL)
        a.send(SEAL)
        assert await a.wait_closed() == (4000, "Only host can seal the lobby")
        await host.expect(PEER_DISCONNECT, a_id)
        server.clock.advance(10)
        await host.wait_closed()
    finally:
        globalLogPublisher.removeObserver(observer)

    ours = [e for e in events if e.get("log_namespace") == "webrtc_signal"]
    kinds = [e["event_kind"] for e in ours]
    assert kinds.count("connected") == 2
    assert kinds.count("lobby created") == 1
    assert kinds.count("lobby joined") == 1
    assert kinds.count("lobby sealed") == 1
    assert kinds.count("lobby deleted") == 1
    (error,) = [e for e in ours if e["event_kind"] == "closed"]
    assert error["peer_id"] != 0
    assert (error["lobby"], error["close_code"]) == (lobby, 4000)
    assert error["reason"] == "Only host can seal the lobby"
    assert all("relayed" not in repr(e) for e in events)


# -- writing --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_gets_everything_in_order(make_server: ServerMaker) -> None:
    """A receiver that stops reading makes the server's socket buffer fill up:
    the rest waits in Twisted's buffer while later frames keep coming, and
    everything still arrives whole and in order. (The sender's byte rate
    limit is off: it sends far more than the limit allows.)"""
    server = await make_server(SignalingConfig(max_byte_rate=0))
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, a_id)
    a.transport.pauseProducing()
    chunk = "z" * 30_000
    for n in range(150):  # ~4.5 MB, far more than the socket buffers hold
        host.send(CANDIDATE, a_id, f"{n}:{chunk}")
        if n % 50 == 0:
            await task.deferLater(reactor, 0.01, lambda: None)
    await task.deferLater(reactor, 0.1, lambda: None)
    a.transport.resumeProducing()
    for n in range(150):
        message = await a.next(timeout=10)
        assert message["data"] == f"{n}:{chunk}"


def test_direct_writes_only_where_they_keep_order_and_encryption() -> None:
    from twisted.internet import tcp

    from webrtc_signal.server._internals import write_now as _write

    class Socketish(tcp.Connection):
        """A TCP connection's write state, without a socket."""

        def __init__(self, accept: int | Exception, **state: object) -> None:
            self.connected, self.disconnecting, self.TLS = True, False, False
            self.dataBuffer, self.offset, self._tempDataLen = b"", 0, 0
            self.accept = accept
            self.direct: list[bytes] = []
            self.queued: list[bytes] = []
            self.__dict__.update(state)

        def writeSomeData(self, data: bytes):  # type: ignore[no-untyped-def]
            self.direct.append(bytes(data))
            return (
                self.accept if isinstance(self.accept, Exception) else min(self.accept, len(data))
            )

        def write(self, data: bytes) -> None:
            self.queued.append(bytes(data))

    whole = Socketish(accept=100)
    _write(whole, b"x" * 10)
    assert (whole.direct, whole.queued) == ([b"x" * 10], [])

    partial = Socketish(accept=4)
    _write(partial, b"abcdefgh")
    assert (partial.direct, partial.queued) == ([b"abcdefgh"], [b"efgh"])

    broken = Socketish(accept=ConnectionResetError())
    _write(broken, b"abc")
    assert broken.queued == [b"abc"]  # Twisted meets the error and closes

    for state in (
        {"TLS": True},
        {"disconnecting": True},
        {"connected": False},
        {"_tempDataLen": 5},
        {"dataBuffer": b"pending", "offset": 2},
    ):
        held = Socketish(accept=100, **state)
        _write(held, b"abc")
        assert (held.direct, held.queued) == ([], [b"abc"]), state

    class NotTcp:
        def __init__(self) -> None:
            self.queued: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.queued.append(data)

    tls_wrapper = NotTcp()
    _write(tls_wrapper, b"abc")  # type: ignore[arg-type]
    assert tls_wrapper.queued == [b"abc"]


@pytest_twisted.ensureDeferred
async def test_nagles_algorithm_is_off_on_every_connection(server: RunningServer) -> None:
    """Small writes must not wait for the client's delayed ACK (up to 40 ms)."""
    import socket

    host, lobby = await server.create()
    await server.join(lobby)
    assert len(server.engine.connections) == 2
    for connection in server.engine.connections:
        handle = connection.transport.getHandle()
        assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
