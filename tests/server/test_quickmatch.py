"""Quick-match over real sockets: /match/<pool>?size=N fills lobbies and
seals them, min/wait on the server's injected clock, modes and pools kept
apart, a place freed by a leaver, bad URLs answered with 400, and the pool
seen by hooks, tokens, metrics, the line protocol and the Python client."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet.task import deferLater

from webrtc_signal import SignalingConfig, TokenAuth
from webrtc_signal.client import SignalingClient
from webrtc_signal.events import LobbyClosed, LobbyCreated, LobbySealed, PeerJoined
from webrtc_signal.protocol.hooks import PeerInfo

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get
from ..support.wsclient import RecordingClient, with_timeout
from .test_hooks import port_of
from .test_metrics import samples, value

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)
SECRET = b"a-test-secret-of-thirty-two-bytes!!"


async def match(
    server: RunningServer, path: str, mesh: bool = True
) -> tuple[RecordingClient, int, str, list[int]]:
    """Connect to ``path`` and JOIN ""; the client, its id, its lobby and the
    peers it was told about (read up to its JOIN)."""
    client = await server.connect_to(path)
    client.send(JOIN, 0 if mesh else 1, "")
    my_id = (await client.expect(ID))["id"]
    seen = []
    while (message := await client.next())["type"] != JOIN:
        assert message["type"] == PEER_CONNECT, message
        seen.append(message["id"])
    return client, my_id, message["data"], seen


async def upgrade_answer(server: RunningServer, path: str) -> tuple[int, dict[str, str], bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = (
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
    )
    return await http_get(port_of(server), path, headers)


# -- filling and sealing ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_players_meet_in_one_lobby_that_seals_at_n(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(seal_timeout=3.0))
    first, first_id, lobby, seen = await match(server, "/match/demo?size=3")
    assert first_id == 1 and seen == [] and re.fullmatch(r"[A-Za-z0-9]{16}", lobby)
    second, second_id, same, seen = await match(server, "/match/demo?size=3")
    assert same == lobby and seen == [1]
    await first.expect(PEER_CONNECT, second_id)
    third, third_id, same, seen = await match(server, "/match/demo?size=3")
    assert same == lobby and sorted(seen) == sorted([1, second_id])
    # The lobby is full: every member gets SEAL, as after a host's SEAL.
    await third.expect(SEAL, 0)
    await first.expect(PEER_CONNECT, third_id)
    await first.expect(SEAL, 0)
    await second.expect(PEER_CONNECT, third_id)
    await second.expect(SEAL, 0)
    # Signaling still works until the seal timeout.
    second.send(OFFER, third_id, "sdp")
    await third.expect(OFFER, second_id, "sdp")
    # The next player starts a new lobby.
    fourth, fourth_id, other, _ = await match(server, "/match/demo?size=3")
    assert fourth_id == 1 and other != lobby
    server.clock.advance(3.0)
    for client in (first, second, third):
        assert await client.wait_closed() == (1000, "Seal complete")
    assert fourth.pending() == []


@pytest_twisted.ensureDeferred
async def test_pools_modes_and_sizes_are_kept_apart(server: RunningServer) -> None:
    _, _, mesh, _ = await match(server, "/match/eu?size=2")
    _, _, client_server, _ = await match(server, "/match/eu?size=2", mesh=False)
    _, _, other_pool, _ = await match(server, "/match/eu/ranked?size=2")
    _, _, other_size, _ = await match(server, "/match/eu?size=3")
    assert len({mesh, client_server, other_pool, other_size}) == 4
    guest, guest_id, joined, seen = await match(server, "/match/eu?size=2", mesh=False)
    assert joined == client_server and seen == [1]
    await guest.expect(SEAL)
    assert server.engine.core.lobbies[client_server].topology.name == "client-server"


@pytest_twisted.ensureDeferred
async def test_min_and_wait_start_the_lobby_with_what_it_has(server: RunningServer) -> None:
    path = "/match/slow?size=4&min=2&wait=30"
    first, _, lobby, _ = await match(server, path)
    server.clock.advance(30)
    # Alone, the first player waits on: the minimum is two.
    await first.round_trip()
    assert first.pending() == []
    second, second_id, same, _ = await match(server, path)
    assert same == lobby
    # The wait is over and the minimum is there: sealed at once.
    await second.expect(SEAL, 0)
    await first.expect(PEER_CONNECT, second_id)
    await first.expect(SEAL, 0)
    assert server.engine.core.lobbies[lobby].sealed


@pytest_twisted.ensureDeferred
async def test_the_wait_seals_a_lobby_that_has_its_minimum(server: RunningServer) -> None:
    path = "/match/slow?size=4&min=2&wait=5"
    first, _, lobby, _ = await match(server, path)
    second, _, _, _ = await match(server, path)
    await first.expect(PEER_CONNECT)
    server.clock.advance(4.9)
    await first.round_trip()
    assert first.pending() == [] and not server.engine.core.lobbies[lobby].sealed
    server.clock.advance(0.1)
    await first.expect(SEAL, 0)
    await second.expect(SEAL, 0)


@pytest_twisted.ensureDeferred
async def test_a_member_leaving_before_the_seal_frees_its_place(server: RunningServer) -> None:
    host, _, lobby, _ = await match(server, "/match/demo?size=3")
    leaver, leaver_id, _, _ = await match(server, "/match/demo?size=3")
    await host.expect(PEER_CONNECT, leaver_id)
    leaver.sendClose(1000)
    await leaver.wait_closed()
    await host.expect(PEER_DISCONNECT, leaver_id)
    _, _, same, seen = await match(server, "/match/demo?size=3")
    assert same == lobby and seen == [1]
    last, _, same, _ = await match(server, "/match/demo?size=3")
    assert same == lobby
    await last.expect(SEAL)


@pytest_twisted.ensureDeferred
async def test_the_host_leaving_a_client_server_lobby_closes_it(server: RunningServer) -> None:
    host, _, lobby, _ = await match(server, "/match/cs?size=3", mesh=False)
    guest, _, same, _ = await match(server, "/match/cs?size=3", mesh=False)
    assert same == lobby
    host.sendClose(1000)
    assert await guest.wait_closed() == (4000, "Room host has disconnected")
    _, host_id, fresh, _ = await match(server, "/match/cs?size=3", mesh=False)
    assert fresh != lobby and host_id == 1


@pytest_twisted.ensureDeferred
async def test_a_named_join_on_a_match_url_is_closed(server: RunningServer) -> None:
    _, _, lobby, _ = await match(server, "/match/demo?size=3")
    client = await server.connect_to("/match/demo?size=3")
    client.send(JOIN, 0, lobby)
    assert await client.wait_closed() == (4000, "Quick-match picks the lobby")


# -- bad URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/match/?size=2", "pool"),
        ("/match/bad%20pool?size=2", "pool"),
        ("/match/a//b?size=2", "pool"),
        ("/match/" + "p" * 65 + "?size=2", "pool"),
        ("/match/demo", "size"),
        ("/match/demo?size=1", "size"),
        ("/match/demo?size=65", "size"),
        ("/match/demo?size=two", "size"),
        ("/match/demo?size=4&min=5&wait=10", "min"),
        ("/match/demo?size=4&min=2", "wait"),
        ("/match/demo?size=4&min=2&wait=0", "wait"),
        ("/match/demo?size=4&min=2&wait=601", "wait"),
        ("/match/demo?size=4&listed=maybe", "listed"),
        ("/?min=2&wait=5", "min"),
        ("/?listed=1&title=%07bell", "title"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_bad_pool_or_parameter_gets_400_naming_it(
    server: RunningServer, path: str, named: str
) -> None:
    status, headers, body = await upgrade_answer(server, path)
    assert status == 400
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.decode().startswith(f"{named}: ")
    assert body.endswith(b"\n") and int(headers["content-length"]) == len(body)
    assert server.engine.core.peers == {}


@pytest_twisted.ensureDeferred
async def test_size_is_bounded_by_max_lobby_size(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobby_size=4))
    status, _, body = await upgrade_answer(server, "/match/demo?size=5")
    assert status == 400 and body == b"size: must be a whole number from 2 to 4, not '5'\n"
    _, _, _, _ = await match(server, "/match/demo?size=4")


# -- the pool beyond the core -----------------------------------------------------


class PoolHooks:
    """Records what authorize_join is asked; refuses the pool "closed"."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, str, bool]] = []

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        from webrtc_signal import Refused

        self.asked.append((peer.pool, lobby, create))
        if peer.pool == "closed":
            raise Refused("This pool is closed")


@pytest_twisted.ensureDeferred
async def test_hooks_and_events_see_the_pool(make_server: ServerMaker) -> None:
    hooks = PoolHooks()
    server = await make_server(hooks=hooks)
    events: list[Any] = []
    server.service.add_observer(events.append)
    _, _, lobby, _ = await match(server, "/match/eu/ranked?size=2")
    second, _, _, _ = await match(server, "/match/eu/ranked?size=2")
    await second.expect(SEAL)
    assert hooks.asked == [("eu/ranked", "", True), ("eu/ranked", "", True)]
    created = next(e for e in events if isinstance(e, LobbyCreated))
    assert created.lobby == lobby and created.pool == "eu/ranked"
    joined = [e for e in events if isinstance(e, PeerJoined)]
    assert [e.peer.pool for e in joined] == ["eu/ranked", "eu/ranked"]
    sealed = next(e for e in events if isinstance(e, LobbySealed))
    assert sealed.pool == "eu/ranked" and sealed.members == 2
    info = server.service.lobby(lobby)
    assert info is not None and info.pool == "eu/ranked" and info.size == 2
    refused = await server.connect_to("/match/closed?size=2")
    refused.send(JOIN, 0, "")
    assert await refused.wait_closed() == (4000, "This pool is closed")
    # The seal timeout runs out on the server's clock: the lobby closes.
    server.clock.advance(10)
    closed = [e for e in events if isinstance(e, LobbyClosed)]
    assert closed and closed[0].pool == "eu/ranked"


@pytest_twisted.ensureDeferred
async def test_a_tokens_pool_claim_holds_it_to_that_pool(make_server: ServerMaker) -> None:
    tokens = TokenAuth(SECRET)
    server = await make_server(hooks=tokens)
    ranked = tokens.mint("alice", pool="ranked")
    _, host_id, lobby, _ = await match(server, f"/match/ranked?size=2&token={ranked}")
    assert host_id == 1
    for path in [
        f"/match/casual?size=2&token={ranked}",  # another pool
        f"/?token={ranked}",  # no quick-match at all
    ]:
        client = await server.connect_to(path)
        client.send(JOIN, 0, "")
        assert await client.wait_closed() == (4000, "Not allowed in this lobby")
    # A token bound to a lobby is for that lobby, not for whatever a match picks.
    bound = tokens.mint("bob", lobby=lobby)
    client = await server.connect_to(f"/match/ranked?size=2&token={bound}")
    client.send(JOIN, 0, "")
    assert await client.wait_closed() == (4000, "Not allowed in this lobby")
    # A token without claims may quick-match anywhere.
    guest, _, same, _ = await match(server, f"/match/ranked?size=2&token={tokens.mint('carol')}")
    assert same == lobby
    await guest.expect(SEAL)


@pytest_twisted.ensureDeferred
async def test_metrics_count_pool_lobbies_and_their_time_to_fill(server: RunningServer) -> None:
    await match(server, "/match/demo?size=2")
    server.clock.advance(7)
    guest, _, _, _ = await match(server, "/match/demo?size=2")
    await guest.expect(SEAL)
    host, _, _, _ = await match(server, "/match/other?size=2")
    host.sendClose(1000)
    await host.wait_closed()
    for _ in range(200):
        found = samples(generate_latest(server.service.metrics_registry).decode())
        if value(found, "webrtc_signal_pool_lobbies_abandoned_total", pool="other"):
            break
        await guest.round_trip()
    assert value(found, "webrtc_signal_pool_lobbies_created_total", pool="demo") == 1
    assert value(found, "webrtc_signal_pool_lobbies_sealed_total", pool="demo") == 1
    assert value(found, "webrtc_signal_pool_lobbies_filling", pool="demo") == 0
    assert value(found, "webrtc_signal_pool_lobbies_abandoned_total", pool="other") == 1
    assert value(found, "webrtc_signal_pool_fill_seconds_count", pool="demo") == 1
    assert value(found, "webrtc_signal_pool_fill_seconds_sum", pool="demo") == 7
    assert value(found, "webrtc_signal_pool_fill_seconds_bucket", pool="demo", le="5.0") == 0
    assert value(found, "webrtc_signal_pool_fill_seconds_bucket", pool="demo", le="10.0") == 1
    assert bad_requests(found) is None
    await upgrade_answer(server, "/match/demo")
    assert bad_requests(samples(generate_latest(server.service.metrics_registry).decode())) == 1


def bad_requests(found: Any) -> float | None:
    """Upgrades refused with 400 (a bad quick-match URL), as the metrics count them."""
    labels = {"outcome": "refused", "code": "400", "reason": "Bad Request"}
    return value(found, "webrtc_signal_connections_total", **labels)


# -- other clients ------------------------------------------------------------------


async def line(client: RecordingClient) -> str:
    return (await client.next()).decode()


@pytest_twisted.ensureDeferred
async def test_the_godot_3_line_protocol_quick_matches_with_json_peers(
    server: RunningServer,
) -> None:
    godot3 = await server.connect_to("/match/mixed?size=3", raw=True)
    godot3.send_raw("J: \n")
    assert await line(godot3) == "I: 1\n"
    joined = re.fullmatch(r"J: ([A-Za-z0-9]{16})\n", await line(godot3))
    assert joined
    lobby = joined.group(1)
    _, json_id, same, seen = await match(server, "/match/mixed?size=3")
    assert same == lobby and seen == [1]
    assert await line(godot3) == f"N: {json_id}\n"
    named = await server.connect_to("/match/mixed?size=3", raw=True)
    named.send_raw(f"J: {lobby}\n")
    assert await named.wait_closed() == (4000, "Quick-match picks the lobby")
    last = await server.connect_to("/match/mixed?size=3", raw=True)
    last.send_raw("J: \n")
    assert re.fullmatch(r"I: \d+\n", await line(last))
    lines = [await line(last) for _ in range(4)]
    assert lines[-2:] == [f"J: {lobby}\n", "S: \n"]
    assert re.fullmatch(r"N: \d+\n", await line(godot3))
    assert await line(godot3) == "S: \n"


@pytest_twisted.ensureDeferred
async def test_the_python_client_quick_matches_by_url(server: RunningServer) -> None:
    clients = [SignalingClient(f"{server.url}/match/bots?size=2") for _ in range(2)]
    try:
        for client in clients:
            await with_timeout(client.connect(), 5)
        first = await with_timeout(clients[0].join(), 5)
        second = await with_timeout(clients[1].join(), 5)
        assert first.peer_id == 1 and second.lobby == first.lobby
        assert second.peers == frozenset({1})
        await until(lambda: clients[0].sealed and clients[1].sealed)
    finally:
        for client in clients:
            await with_timeout(client.close(), 5)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, polling a bounded number of times."""
    from twisted.internet import reactor

    for _ in range(500):
        if condition():
            return
        await deferLater(reactor, 0.01)
    raise AssertionError("the condition never held")
