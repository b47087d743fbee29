"""Quick-match across nodes (docs/matchmaking.md, docs/cluster.md): players
connected to different nodes meet in one pool lobby that seals at N, even
when they all arrive at once; min/wait are its creator's; a member leaving
before the seal frees its place; a named JOIN on a match URL is refused
whichever node runs the named lobby. Real twistd nodes, one cluster shared
by the tests that stop nothing (each matches in pools of its own), and,
where a timer is driven, nodes in the test's process on an injected clock;
real redis-servers."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import defer

from webrtc_signal.events import PeerJoined

from ..support.cluster import InProcessNode, Node, running_nodes, start_in_process
from ..support.redis import RedisServer, module_redis_fixture, redis_fixture
from ..support.wsclient import RecordingClient, connect

__all__ = ["module_redis_fixture", "redis_fixture"]

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, SEAL = 0, 1, 2, 3, 4, 7
NODE_OPTIONS = ["--seal-timeout", "30", "--max-message-rate", "0"]


@pytest_twisted.async_yield_fixture(scope="module")
async def nodes(module_redis: RedisServer) -> AsyncIterator[list[Node]]:
    """Three nodes shared by the module's tests that stop nothing: each
    matches in pools of its own, so none meets another's players."""
    async for started in running_nodes(module_redis.url, ("a", "b", "c"), NODE_OPTIONS):
        yield started


@pytest_twisted.async_yield_fixture
async def one_node(redis: RedisServer) -> AsyncIterator[Node]:
    async for started in running_nodes(redis.url, ("a",), NODE_OPTIONS):
        yield started[0]


# Matching waits for Redis round trips: generous on a machine busy with other suites.
WAIT = 20.0


async def read_join(client: RecordingClient) -> tuple[int, str, list[int]]:
    """A matched client's ID, lobby and the peers it was told of, up to its JOIN."""
    identity = await client.next(WAIT)
    assert identity["type"] == ID, identity
    my_id = identity["id"]
    seen = []
    while (message := await client.next(WAIT))["type"] != JOIN:
        assert message["type"] == PEER_CONNECT, message
        seen.append(message["id"])
    return my_id, message["data"], seen


async def match(url: str, path: str, mesh: bool = True) -> tuple[RecordingClient, int, str]:
    """Connect to ``url`` + ``path`` and JOIN "": the client, its id, its lobby."""
    client = await connect(url + path)
    client.send(JOIN, 0 if mesh else 1, "")
    my_id, lobby, _ = await read_join(client)
    return client, my_id, lobby


@pytest_twisted.ensureDeferred
async def test_two_players_on_two_nodes_meet_and_are_sealed_at_n(nodes: list[Node]) -> None:
    a, b, _ = nodes
    first, first_id, lobby = await match(a.url, "/match/duel?size=2")
    assert first_id == 1
    second = await connect(b.url + "/match/duel?size=2")
    second.send(JOIN, 0, "")
    second_id, same, seen = await read_join(second)
    assert same == lobby and seen == [1] and second_id != 1
    # Full: sealed as a host's SEAL would be, on both nodes.
    await second.expect(SEAL, 0)
    await first.expect(PEER_CONNECT, second_id)
    await first.expect(SEAL, 0)
    # Signaling goes on across the nodes until the seal timeout.
    second.send(OFFER, 1, "offer")
    await first.expect(OFFER, second_id, "offer")
    # The pool's next player, on either node, starts a new lobby.
    third, third_id, other = await match(b.url, "/match/duel?size=2")
    assert third_id == 1 and other != lobby


@pytest_twisted.ensureDeferred
async def test_three_players_on_three_nodes_fill_one_lobby_of_three(nodes: list[Node]) -> None:
    clients: list[RecordingClient] = []
    ids: list[int] = []
    lobbies: set[str] = set()
    for node in nodes:
        client, my_id, lobby = await match(node.url, "/match/trio?size=3", mesh=False)
        clients.append(client)
        ids.append(my_id)
        lobbies.add(lobby)
    assert len(lobbies) == 1 and ids[0] == 1 and len(set(ids)) == 3
    for client in clients:
        while (message := await client.next(WAIT))["type"] != SEAL:
            assert message["type"] == PEER_CONNECT, message
    # Client-server: the guests see the host only.
    host, first, second = clients
    second.send(OFFER, 1, "to the host")
    await host.expect(OFFER, ids[2], "to the host")
    second.send(OFFER, ids[1], "to a guest")
    assert await second.wait_closed() == (4000, "Invalid destination")


@pytest_twisted.ensureDeferred
async def test_players_arriving_at_once_on_two_nodes_are_never_refused(
    nodes: list[Node],
) -> None:
    """Many players of one pool JOIN on two nodes at the same moment: the
    pool lobby fills and seals under them while they are matched. None is
    refused; every lobby seals with exactly N players."""
    a, b, _ = nodes
    size, players = 3, 24
    clients = [
        await connect((a if index % 2 else b).url + f"/match/rush?size={size}")
        for index in range(players)
    ]
    for client in clients:
        client.send(JOIN, 0, "")
    results = await defer.gatherResults(
        [defer.ensureDeferred(read_join(client)) for client in clients], consumeErrors=True
    )
    members = Counter(lobby for _, lobby, _ in results)
    assert sorted(members.values()) == [size] * (players // size), members
    for client in clients:
        while (message := await client.next(WAIT))["type"] != SEAL:
            assert message["type"] == PEER_CONNECT, message


@pytest_twisted.ensureDeferred
async def test_a_member_on_another_node_leaving_before_the_seal_frees_its_place(
    nodes: list[Node],
) -> None:
    a, b, c = nodes
    path = "/match/leavers?size=3"
    host, _, lobby = await match(a.url, path)
    leaver, leaver_id, same = await match(b.url, path)
    assert same == lobby
    await host.expect(PEER_CONNECT, leaver_id)
    leaver.sendClose(1000)
    await host.expect(PEER_DISCONNECT, leaver_id)
    # Its place is free: two more (on other nodes) fill the lobby.
    second, second_id, same = await match(c.url, path)
    assert same == lobby
    third, third_id, same = await match(b.url, path)
    assert same == lobby
    await host.expect(PEER_CONNECT, second_id)
    await host.expect(PEER_CONNECT, third_id)
    await host.expect(SEAL, 0)
    await second.expect(PEER_CONNECT, third_id)
    await second.expect(SEAL, 0)
    await third.expect(SEAL, 0)


@pytest_twisted.ensureDeferred
async def test_a_named_join_on_a_match_url_is_refused_for_a_lobby_of_any_node(
    nodes: list[Node],
) -> None:
    a, b, _ = nodes
    _, lobby = await a.create()
    for node in (a, b):
        client = await connect(node.url + "/match/duel?size=2")
        client.send(JOIN, 0, lobby)
        assert await client.wait_closed() == (4000, "Quick-match picks the lobby")


@pytest_twisted.ensureDeferred
async def test_quick_match_while_redis_is_down_is_try_again_later(
    redis: RedisServer, one_node: Node
) -> None:
    a = one_node
    await redis.stop()
    await a.process.wait_for("redis unreachable", timeout=10)
    client = await connect(a.url + "/match/duel?size=2")
    client.send(JOIN, 0, "")
    assert await client.wait_closed() == (1013, "Try again later")


# -- min and wait, on the creator's node's clock ------------------------------------


@pytest_twisted.async_yield_fixture
async def two_in_process(redis: RedisServer) -> AsyncIterator[list[InProcessNode]]:
    started: list[InProcessNode] = []
    try:
        for name in ("a", "b"):
            started.append(await start_in_process(name, redis.url))
        yield started
    finally:
        for node in started:
            await node.stop()


async def in_process_match(
    node: InProcessNode, path: str
) -> tuple[RecordingClient, int, str, list[int]]:
    client = await node.connect(path)
    client.send(JOIN, 0, "")
    return (client, *await read_join(client))


@pytest_twisted.ensureDeferred
async def test_min_and_wait_are_the_creators_across_nodes(
    two_in_process: list[InProcessNode],
) -> None:
    a, b = two_in_process
    joined: list[Any] = []
    a.service.add_observer(lambda event: type(event) is PeerJoined and joined.append(event))
    first, first_id, lobby, _ = await in_process_match(a, "/match/slow?size=4&min=2&wait=30")
    # Its wait runs on its node's clock: over, but alone, it waits on.
    a.clock.advance(30)
    await first.round_trip()
    assert first.pending() == []
    # A player on the other node, asking for a longer wait and a larger
    # minimum, is matched into it; the lobby keeps its creator's terms and
    # starts at once with two.
    second, second_id, same, seen = await in_process_match(b, "/match/slow?size=4&min=4&wait=600")
    assert same == lobby and seen == [1]
    await second.expect(SEAL, 0)
    await first.expect(PEER_CONNECT, second_id)
    await first.expect(SEAL, 0)
    assert a.service.engine.core.lobbies[lobby].sealed
    # The lobby's node tells its observers (webhooks...) both players' pool.
    assert [(event.peer.lobby_id, event.peer.pool) for event in joined] == [
        (first_id, "slow"),
        (second_id, "slow"),
    ]


@pytest_twisted.ensureDeferred
async def test_the_wait_seals_a_lobby_whose_members_are_on_other_nodes(
    two_in_process: list[InProcessNode],
) -> None:
    a, b = two_in_process
    path = "/match/waiting?size=4&min=2&wait=10"
    first, _, lobby, _ = await in_process_match(a, path)
    second, second_id, same, _ = await in_process_match(b, path)
    assert same == lobby
    await first.expect(PEER_CONNECT, second_id)
    await second.round_trip()
    assert second.pending() == []
    a.clock.advance(10)
    await first.expect(SEAL, 0)
    await second.expect(SEAL, 0)


@pytest_twisted.ensureDeferred
async def test_a_pool_lobby_sealed_under_a_player_is_retried_not_refused(
    two_in_process: list[InProcessNode],
) -> None:
    """The race, made certain: the pool's entry in Redis still names a
    lobby that its owner sealed meanwhile. The player is matched again (a
    new lobby), not told "Lobby is sealed"."""
    a, b = two_in_process
    path = "/match/stale?size=3"
    first, _, lobby, _ = await in_process_match(a, path)
    # Sealed by the game server, and put back in its pool (as the oldest
    # lobby filling) as if the owner's word had not reached Redis yet.
    assert a.service.seal_lobby(lobby)
    await first.expect(SEAL, 0)
    assert b.service.node is not None
    bus = b.service.node.bus
    key = a.service.engine.core.lobbies[lobby].pool_key
    assert key is not None
    await bus.evaluate(
        "redis.call('ZADD', ARGV[1]..'pool:'..ARGV[2], 0, ARGV[3]) return 1",
        [f"{key.mode}:{key.size}:{key.pool}", lobby],
    )
    second, second_id, other, _ = await in_process_match(b, path)
    assert other != lobby and second_id == 1
    # The entry now names the new lobby: a third player joins it.
    third, third_id, same, seen = await in_process_match(a, path)
    assert same == other and seen == [1]
    await second.expect(PEER_CONNECT, third_id)


@pytest_twisted.ensureDeferred
async def test_join_policy_is_asked_once_on_the_edge_before_the_match(
    redis: RedisServer,
) -> None:
    asked: list[tuple[Any, str, bool]] = []

    class Policy:
        def authorize_join(self, peer: Any, lobby: str, create: bool) -> None:
            asked.append((peer.pool, lobby, create))

    a = await start_in_process("a", redis.url, hooks=Policy())
    b = await start_in_process("b", redis.url, hooks=Policy())
    try:
        _, _, lobby, _ = await in_process_match(a, "/match/asked?size=2")
        _, _, same, _ = await in_process_match(b, "/match/asked?size=2")
        # Once per player, on its own node, before the match; the lobby's
        # node does not ask again for the player that came from elsewhere.
        assert same == lobby
        assert asked == [("asked", "", True), ("asked", "", True)]
    finally:
        await a.stop()
        await b.stop()
