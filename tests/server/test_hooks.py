"""Game-server integration over real sockets, through the public API only:
the hooks (authenticate, authorize_join), the events observers get, the
control methods, reserved lobbies and the lobby size limit."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from webrtc_signal import ConnectionRequest, LobbyInfo, PeerInfo, Refused, SignalingConfig
from webrtc_signal.events import (
    ConnectionRefused,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
    PeerLeft,
)

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import with_timeout

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)

UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


class Upgrade(Protocol):
    """A bare WebSocket upgrade request; ``status_line`` fires with the first
    line of the answer."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buffer = b""
        self.status_line: defer.Deferred[str] = defer.Deferred()

    def connectionMade(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{UPGRADE}\r\n"
        self.transport.write(request.encode())

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n" in self.buffer and not self.status_line.called:
            self.status_line.callback(self.buffer.split(b"\r\n", 1)[0].decode())
            self.transport.loseConnection()


async def upgrade(server: RunningServer, path: str = "/") -> Upgrade:
    from twisted.internet import reactor

    connected: defer.Deferred[Upgrade] = defer.Deferred()
    protocol = Upgrade(path)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(server), timeout=5)
    connected = connectProtocol(endpoint, protocol)
    return await with_timeout(connected, 5)


async def raw_status_line(server: RunningServer, path: str = "/") -> str:
    """The first line of the server's answer to an upgrade request (one
    that is refused: accepted ones stay open)."""
    request = await upgrade(server, path)
    return await with_timeout(request.status_line, 5)


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [type(event).__name__ for event in self.events]

    def take(self) -> list[Any]:
        events, self.events = self.events, []
        return events


def recorder(server: RunningServer) -> Recorder:
    record = Recorder()
    server.service.add_observer(record)
    return record


# -- authenticate ---------------------------------------------------------------


class Allow:
    def __init__(self) -> None:
        self.requests: list[ConnectionRequest] = []

    def authenticate(self, request: ConnectionRequest) -> object:
        self.requests.append(request)
        return f"player-{request.query['name'][0]}"


@pytest_twisted.ensureDeferred
async def test_authenticate_gives_the_identity_seen_in_peer_info_and_events(
    make_server: ServerMaker,
) -> None:
    hooks = Allow()
    server = await make_server(hooks=hooks)
    record = recorder(server)
    host = await server.connect_to("/?name=ann&x=1&x=2")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)
    lobby = (await host.expect(JOIN))["data"]

    (request,) = hooks.requests
    assert request.address == "127.0.0.1"
    assert request.path == "/"
    assert request.query == {"name": ["ann"], "x": ["1", "2"]}
    assert request.headers["upgrade"].lower() == "websocket"
    assert request.origin is None or isinstance(request.origin, str)
    connected = record.events[0]
    assert isinstance(connected, PeerConnected)
    assert connected.peer.identity == "player-ann"
    assert connected.peer.address == "127.0.0.1"
    assert connected.peer.lobby is None and connected.peer.lobby_id is None
    info = server.service.lobby(lobby)
    assert info is not None and info.host is not None
    assert info.host.identity == "player-ann"
    assert info.host.lobby_id == 1


class RefuseWith:
    def __init__(self, status: int) -> None:
        self.status = status

    def authenticate(self, request: ConnectionRequest) -> object:
        raise Refused("Go away", status=self.status)


@pytest.mark.parametrize("status", [403, 401, 429])
@pytest_twisted.ensureDeferred
async def test_authenticate_refusal_is_the_http_answer_and_uses_no_peer_slot(
    make_server: ServerMaker, status: int
) -> None:
    server = await make_server(SignalingConfig(max_peers=1), hooks=RefuseWith(status))
    record = recorder(server)
    assert await raw_status_line(server) == f"HTTP/1.1 {status} Go away"
    assert server.factory.signaling.peers == {}
    assert server.service.lobbies() == []
    assert record.events == [ConnectionRefused("127.0.0.1", status, "Go away")]


class Later:
    def __init__(self) -> None:
        self.waiting: list[defer.Deferred[object]] = []
        self.asked = defer.DeferredQueue[None]()

    def authenticate(self, request: ConnectionRequest) -> defer.Deferred[object]:
        answer: defer.Deferred[object] = defer.Deferred()
        self.waiting.append(answer)
        self.asked.put(None)
        return answer


@pytest_twisted.ensureDeferred
async def test_authenticate_may_answer_later_with_a_deferred(make_server: ServerMaker) -> None:
    hooks = Later()
    server = await make_server(hooks=hooks)
    record = recorder(server)
    connecting = defer.ensureDeferred(server.connect())
    await with_timeout(hooks.asked.get(), 5)
    # The handshake waits: no WebSocket, no peer yet.
    assert not connecting.called
    assert server.factory.signaling.peers == {}
    hooks.waiting[0].callback("late-identity")
    client = await with_timeout(connecting, 5)
    client.send(JOIN, 0, "")
    await client.expect(ID, 1)
    assert record.events[0].peer.identity == "late-identity"

    # A later refusal, as a failed Deferred.
    status = defer.ensureDeferred(raw_status_line(server))
    await with_timeout(hooks.asked.get(), 5)
    hooks.waiting[1].errback(Refused("Not today", status=403))
    assert await with_timeout(status, 5) == "HTTP/1.1 403 Not today"


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_during_authentication_gets_no_peer(
    make_server: ServerMaker,
) -> None:
    hooks = Later()
    server = await make_server(hooks=hooks)
    record = recorder(server)
    request = await upgrade(server)
    await with_timeout(hooks.asked.get(), 5)
    cancelled = hooks.waiting[0]
    cancelled.addErrback(lambda failure: failure.trap(defer.CancelledError))
    request.transport.loseConnection()
    # The hook's Deferred is cancelled once the server sees the connection go.
    await with_timeout(cancelled, 5)
    assert server.factory.signaling.peers == {}
    assert record.events == []


class Broken:
    def __init__(self) -> None:
        self.calls = 0

    def authenticate(self, request: ConnectionRequest) -> object:
        self.calls += 1
        if request.query.get("break"):
            raise KeyError("a bug in the game server")
        return None


@pytest_twisted.ensureDeferred
async def test_an_authenticate_hook_that_fails_refuses_with_500_and_the_server_goes_on(
    make_server: ServerMaker,
) -> None:
    server = await make_server(hooks=Broken())
    line = await raw_status_line(server, "/?break=1")
    assert line.startswith("HTTP/1.1 500 ")
    host, lobby = await server.create()
    guest, _ = await server.join(lobby)
    guest.send(OFFER, 1, "still serving")
    await host.expect(PEER_CONNECT)
    await host.expect(OFFER, data="still serving")


# -- authorize_join -----------------------------------------------------------------


class Gate:
    def __init__(self) -> None:
        self.calls: list[tuple[PeerInfo, str, bool]] = []
        self.refuse_create = False
        self.refuse_join = False
        self.crash = False

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        self.calls.append((peer, lobby, create))
        if self.crash:
            raise RuntimeError("bug")
        if create and self.refuse_create:
            raise Refused("No new lobbies now")
        if not create and self.refuse_join:
            raise Refused("This lobby is for friends")


@pytest_twisted.ensureDeferred
async def test_authorize_join_refuses_creating_and_joining_with_its_reason(
    make_server: ServerMaker,
) -> None:
    gate = Gate()
    server = await make_server(hooks=gate)
    host, lobby = await server.create()
    peer, name, create = gate.calls[0]
    assert (name, create) == ("", True)
    assert peer.lobby is None and peer.address == "127.0.0.1"

    gate.refuse_join = True
    guest = await server.connect()
    guest.send(JOIN, 0, lobby)
    assert await guest.wait_closed() == (4000, "This lobby is for friends")
    assert gate.calls[-1][1:] == (lobby, False)
    # Asked before the lobby is looked at: a refused peer cannot probe names.
    prober = await server.connect()
    prober.send(JOIN, 0, "NoSuchLobbyName1")
    assert await prober.wait_closed() == (4000, "This lobby is for friends")

    gate.refuse_create = True
    creator = await server.connect()
    creator.send(JOIN, 0, "")
    assert await creator.wait_closed() == (4000, "No new lobbies now")
    assert len(server.service.lobbies()) == 1

    gate.crash = True
    crasher = await server.connect()
    crasher.send(JOIN, 0, lobby)
    assert await crasher.wait_closed() == (1011, "Internal server error")
    await host.round_trip()
    assert host.pending() == []


# -- events -----------------------------------------------------------------------


def summary(event: Any) -> tuple[Any, ...]:
    match event:
        case PeerConnected(peer):
            return ("connected", peer.peer_id)
        case PeerDisconnected(peer, code, reason):
            return ("disconnected", peer.peer_id, code, reason)
        case LobbyCreated(lobby, host, mesh):
            return ("created", lobby, host.peer_id if host else None, mesh)
        case PeerJoined(lobby, peer, members):
            return ("joined", lobby, peer.peer_id, peer.lobby_id, members)
        case PeerLeft(lobby, peer, reason):
            return ("left", lobby, peer.peer_id, reason)
        case LobbySealed(lobby, members):
            return ("sealed", lobby, members)
        case LobbyClosed(lobby, reason):
            return ("closed", lobby, reason)
    return (repr(event),)


@pytest_twisted.ensureDeferred
async def test_events_follow_a_lobby_life_in_order(server: RunningServer) -> None:
    record = recorder(server)
    host, lobby = await server.create()
    a, a_id = await server.join(lobby)
    b, b_id = await server.join(lobby)
    c, c_id = await server.join(lobby)
    ids = {e.peer.lobby_id: e.peer.peer_id for e in record.events if isinstance(e, PeerJoined)}
    host_pid = ids[1]
    a_pid, b_pid, c_pid = ids[a_id], ids[b_id], ids[c_id]
    a.send(OFFER, 1, "no event for relays")
    await host.expect(PEER_CONNECT)
    events = record.take()
    assert [summary(e) for e in events] == [
        ("connected", host_pid),
        ("created", lobby, host_pid, True),
        ("joined", lobby, host_pid, 1, 1),
        ("connected", a_pid),
        ("joined", lobby, a_pid, a_id, 2),
        ("connected", b_pid),
        ("joined", lobby, b_pid, b_id, 3),
        ("connected", c_pid),
        ("joined", lobby, c_pid, c_id, 4),
    ]

    # Kicked: seen as leaving, closed with 4000 and the reason.
    assert server.service.kick(b_pid)
    assert await b.wait_closed() == (4000, "Kicked by the server")
    # A member closing itself.
    c.sendClose(1000, "bye")
    await c.wait_closed()
    await host.round_trip()
    host.send(SEAL)
    while (await a.next())["type"] != SEAL:
        pass
    server.clock.advance(server.service.config.seal_timeout)
    assert await a.wait_closed() == (1000, "Seal complete")
    await host.wait_closed()
    assert [summary(e) for e in record.take()] == [
        ("left", lobby, b_pid, "Kicked by the server"),
        ("disconnected", b_pid, 4000, "Kicked by the server"),
        ("left", lobby, c_pid, "bye"),
        ("disconnected", c_pid, 1000, "bye"),
        ("sealed", lobby, 2),
        ("left", lobby, host_pid, "Seal complete"),
        ("left", lobby, a_pid, "Seal complete"),
        ("closed", lobby, "Seal complete"),
        ("disconnected", host_pid, 1000, "Seal complete"),
        ("disconnected", a_pid, 1000, "Seal complete"),
    ]


@pytest_twisted.ensureDeferred
async def test_events_when_a_host_leaves_a_lobby_is_closed_and_the_server_stops(
    server: RunningServer,
) -> None:
    record = recorder(server)
    host, lobby = await server.create(mesh=False)
    a, _ = await server.join(lobby)
    other_host, other = await server.create()
    waiting = await server.connect()
    await waiting.round_trip()
    pids = {
        (e.lobby, e.peer.lobby_id): e.peer.peer_id
        for e in record.events
        if isinstance(e, PeerJoined)
    }
    waiting_pid = record.events[-1].peer.peer_id
    record.take()

    host.dropConnection(abort=True)
    assert await a.wait_closed() == (4000, "Room host has disconnected")
    h, a_pid = pids[(lobby, 1)], next(p for (n, i), p in pids.items() if n == lobby and i != 1)
    assert [summary(e) for e in record.take()] == [
        ("left", lobby, h, ""),
        ("disconnected", h, 1006, ""),
        ("left", lobby, a_pid, "Room host has disconnected"),
        ("closed", lobby, "Room host has disconnected"),
        ("disconnected", a_pid, 4000, "Room host has disconnected"),
    ]

    assert server.service.close_lobby(other, "Match over")
    assert await other_host.wait_closed() == (4000, "Match over")
    oh = pids[(other, 1)]
    assert [summary(e) for e in record.take()] == [
        ("left", other, oh, "Match over"),
        ("closed", other, "Match over"),
        ("disconnected", oh, 4000, "Match over"),
    ]
    assert not server.service.close_lobby(other)
    assert not server.service.kick(oh)

    server.clients.remove(waiting)
    stopped = server.service.stopService()
    assert await waiting.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopped, 5)
    assert [summary(e) for e in record.take()] == [
        ("disconnected", waiting_pid, 1001, "Server shutting down"),
    ]


@pytest_twisted.ensureDeferred
async def test_a_failing_observer_is_logged_and_disturbs_nobody(server: RunningServer) -> None:
    def broken(event: Any) -> None:
        raise ValueError("observer bug")

    server.service.add_observer(broken)
    record = recorder(server)
    host, lobby = await server.create()
    guest, _ = await server.join(lobby)
    guest.send(OFFER, 1, "fine")
    await host.expect(PEER_CONNECT)
    await host.expect(OFFER, data="fine")
    assert record.names()[:3] == ["PeerConnected", "LobbyCreated", "PeerJoined"]
    server.service.remove_observer(broken)
    server.service.remove_observer(record)
    host.sendClose(1000)
    await guest.wait_closed()
    assert len(record.events) == 5


@pytest_twisted.ensureDeferred
async def test_an_observer_may_use_the_control_methods(server: RunningServer) -> None:
    """Kick every second joiner as it joins: the kick's events come after
    the join's, and the order stays whole."""
    record = recorder(server)

    def bouncer(event: Any) -> None:
        if isinstance(event, PeerJoined) and event.members == 2:
            server.service.kick(event.peer.peer_id, "Full for you")

    server.service.add_observer(bouncer)
    host, lobby = await server.create()
    guest = await server.connect()
    guest.send(JOIN, 0, lobby)
    assert await guest.wait_closed() == (4000, "Full for you")
    kinds = record.names()
    assert kinds[-3:] == ["PeerJoined", "PeerLeft", "PeerDisconnected"]


# -- control ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_lobbies_and_lobby_describe_what_is_there(server: RunningServer) -> None:
    assert server.service.lobbies() == []
    server.clock.advance(100)
    host, lobby = await server.create(mesh=False)
    server.clock.advance(5)
    a, a_id = await server.join(lobby)
    host.send(SEAL)
    await a.expect(SEAL)
    info = server.service.lobby(lobby)
    assert isinstance(info, LobbyInfo)
    assert (info.name, info.mesh, info.sealed, info.reserved) == (lobby, False, True, False)
    assert info.created == 100
    assert [m.lobby_id for m in info.members] == [1, a_id]
    assert info.host == info.members[0]
    assert all(m.lobby == lobby for m in info.members)
    assert server.service.lobbies() == [info]
    assert server.service.lobby("NoSuchLobby") is None


@pytest_twisted.ensureDeferred
async def test_kicking_a_host_ends_its_lobby(server: RunningServer) -> None:
    host, lobby = await server.create()
    a, _ = await server.join(lobby)
    info = server.service.lobby(lobby)
    assert info is not None and info.host is not None
    assert server.service.kick(info.host.peer_id, "Cheater")
    assert await host.wait_closed() == (4000, "Cheater")
    assert await a.wait_closed() == (4000, "Room host has disconnected")
    assert server.service.lobby(lobby) is None


# -- reserved lobbies ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_reserved_lobby_is_claimed_by_its_first_join_in_the_reserved_mode(
    server: RunningServer,
) -> None:
    record = recorder(server)
    name = server.service.reserve_lobby(mesh=False, ttl=30)
    info = server.service.lobby(name)
    assert info is not None
    assert (info.reserved, info.host, info.members, info.mesh) == (True, None, (), False)
    assert record.take() == [LobbyCreated(name, None, False)]

    first = await server.connect()
    first.send(JOIN, 0, name)  # asks for mesh; the reservation said client-server
    await first.expect(ID, 1, "")
    await first.expect(JOIN, 0, name)
    second, second_id = await server.join(name)
    await first.expect(PEER_CONNECT, second_id)
    info = server.service.lobby(name)
    assert info is not None and not info.reserved
    assert info.host is not None and info.host.lobby_id == 1
    assert len(info.members) == 2
    # Claimed: the reservation's deadline no longer applies.
    server.clock.advance(60)
    second.send(OFFER, 1, "after the ttl")
    await first.expect(OFFER, second_id, "after the ttl")


@pytest_twisted.ensureDeferred
async def test_an_unclaimed_reservation_expires(server: RunningServer) -> None:
    record = recorder(server)
    name = server.service.reserve_lobby(ttl=5)
    server.clock.advance(4.9)
    assert server.service.lobby(name) is not None
    server.clock.advance(0.1)
    assert server.service.lobby(name) is None
    assert record.events[-1] == LobbyClosed(name, "Lobby reservation expired")
    late = await server.connect()
    late.send(JOIN, 0, name)
    assert await late.wait_closed() == (4000, "Lobby does not exists")


@pytest_twisted.ensureDeferred
async def test_reservations_count_against_the_lobby_limit(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobbies=2))
    server.service.reserve_lobby()
    server.service.reserve_lobby()
    with pytest.raises(Refused) as refused:
        server.service.reserve_lobby()
    assert refused.value.status == 503
    creator = await server.connect()
    creator.send(JOIN, 0, "")
    assert await creator.wait_closed() == (4000, "Too many lobbies open, disconnecting")
    with pytest.raises(ValueError):
        server.service.reserve_lobby(ttl=0)


# -- lobby size -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_full_lobby_refuses_one_more(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobby_size=3))
    host, lobby = await server.create()
    await server.join(lobby)
    await server.join(lobby)
    fourth = await server.connect()
    fourth.send(JOIN, 0, lobby)
    assert await fourth.wait_closed() == (4000, "Lobby is full")
    info = server.service.lobby(lobby)
    assert info is not None and len(info.members) == 3


@pytest_twisted.ensureDeferred
async def test_no_lobby_size_limit_by_default(server: RunningServer) -> None:
    host, lobby = await server.create()
    for _ in range(6):
        await server.join(lobby)
    info = server.service.lobby(lobby)
    assert info is not None and len(info.members) == 7
