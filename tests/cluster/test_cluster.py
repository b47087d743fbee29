"""Three twistd nodes and one redis-server (docs/cluster.md): lobbies with
peers spread over the nodes run the whole protocol; faults end as documented.

The tests that stop, kill or fill nothing share one cluster for the module
(`shared_nodes`): each works in lobbies of its own and leaves none open. The
others start their own nodes, and only as many as they talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import defer

from webrtc_signal import TokenAuth

from ..support.cluster import EXPIRY, PERIOD, Node, running_nodes
from ..support.redis import RedisServer, module_redis_fixture, redis_fixture
from ..support.wsclient import RecordingClient, connect, with_timeout

__all__ = ["module_redis_fixture", "redis_fixture"]

# What a fault may take to show: the liveness key's expiry, a check period,
# and a margin for slow machines.
FAULT_WAIT = EXPIRY + 2 * PERIOD + 2.0
# Seconds to wait for an answer that needs Redis round trips.
SLOW = 20.0
HOST_GONE = (4000, "Room host has disconnected")
SHARED_OPTIONS = ["--seal-timeout", "1", "--max-message-rate", "0"]
NODE_OPTIONS = [*SHARED_OPTIONS, "--max-lobbies", "3"]


@pytest_twisted.async_yield_fixture(scope="module")
async def shared_nodes(module_redis: RedisServer) -> AsyncIterator[list[Node]]:
    async for started in running_nodes(module_redis.url, ("a", "b", "c"), SHARED_OPTIONS):
        yield started


@pytest_twisted.async_yield_fixture
async def nodes(redis: RedisServer) -> AsyncIterator[list[Node]]:
    async for started in running_nodes(redis.url, ("a", "b", "c"), NODE_OPTIONS):
        yield started


@pytest_twisted.async_yield_fixture
async def two_nodes(redis: RedisServer) -> AsyncIterator[list[Node]]:
    async for started in running_nodes(redis.url, ("a", "b"), NODE_OPTIONS):
        yield started


async def line_join(node: Node, lobby: str) -> tuple[RecordingClient, int]:
    """A Godot 3 (line framing) peer joining ``lobby``; returns it and its id."""
    client = await node.connect(raw=True)
    client.send_raw(f"J: {lobby}\n")
    identity = (await client.next()).decode()
    assert identity.startswith("I: "), identity
    return client, int(identity[3:].strip())


@pytest_twisted.ensureDeferred
async def test_a_mesh_lobby_over_three_nodes_with_both_framings(shared_nodes: list[Node]) -> None:
    a, b, c = shared_nodes
    host, lobby = await a.create(mesh=True)
    guest, guest_id = await b.join(lobby)
    # Each is told about the other, in the order of the protocol.
    await guest.expect(2, 1)
    await guest.expect(0, 0, lobby)
    await host.expect(2, guest_id)
    line, line_id = await line_join(c, lobby)
    assert len({1, guest_id, line_id}) == 3
    seen = {(await line.next()).decode() for _ in range(2)}
    assert seen == {"N: 1\n", f"N: {guest_id}\n"}
    assert (await line.next()).decode() == f"J: {lobby}\n"
    await host.expect(2, line_id)
    await guest.expect(2, line_id)
    # Relays between every pair, ids rewritten to the sender's.
    line.send_raw(f"O: {guest_id}\nsdp from line")
    await guest.expect(4, line_id, "sdp from line")
    guest.send(5, line_id, "answer from guest")
    assert (await line.next()).decode() == f"A: {guest_id}\nanswer from guest"
    line.send_raw("C: 1\ncandidate")
    await host.expect(6, line_id, "candidate")
    host.send(4, line_id, "offer from host")
    assert (await line.next()).decode() == "O: 1\noffer from host"
    # Seal: everyone hears it, then the seal timeout (1 s) closes everyone.
    host.send(7, 0)
    await host.expect(7, 0)
    await guest.expect(7, 0)
    assert (await line.next()).decode() == "S: \n"
    late = await a.connect()
    late.send(0, 0, lobby)
    assert await late.wait_closed() == (4000, "Lobby is sealed")
    late_remote = await b.connect()
    late_remote.send(0, 0, lobby)
    assert await late_remote.wait_closed() == (4000, "Lobby is sealed")
    for client in (host, guest, line):
        assert await client.wait_closed(5) == (1000, "Seal complete")


@pytest_twisted.ensureDeferred
async def test_a_client_server_lobby_and_its_close_reasons_across_nodes(
    shared_nodes: list[Node],
) -> None:
    a, b, c = shared_nodes
    host, lobby = await a.create(mesh=False)
    first, first_id = await b.join(lobby, mesh=False)
    await first.expect(2, 1)
    await first.expect(0, 0, lobby)
    await host.expect(2, first_id)
    second, second_id = await c.join(lobby, mesh=False)
    # Guests see the host only, never each other.
    await second.expect(2, 1)
    await second.expect(0, 0, lobby)
    await host.expect(2, second_id)
    await first.round_trip()
    assert first.pending() == []
    # Relays to and from the host work; between guests they are refused.
    first.send(4, 1, "offer")
    await host.expect(4, first_id, "offer")
    host.send(5, first_id, "answer")
    await first.expect(5, 1, "answer")
    first.send(4, second_id, "sneaky")
    assert await first.wait_closed() == (4000, "Invalid destination")
    # Only the host hears the guest go (PEER_DISCONNECT).
    await host.expect(3, first_id)
    # A guest may not seal.
    second.send(7, 0)
    assert await second.wait_closed() == (4000, "Only host can seal the lobby")
    await host.expect(3, second_id)
    # A name nobody runs.
    stranger = await c.connect()
    stranger.send(0, 0, "NoSuchLobbyHere0")
    assert await stranger.wait_closed() == (4000, "Lobby does not exists")
    # The host leaves: members on other nodes are closed with 4000.
    third, _ = await b.join(lobby, mesh=False)
    await third.expect(2, 1)
    host.sendClose(1000)
    assert await third.wait_closed() == HOST_GONE


@pytest_twisted.ensureDeferred
async def test_the_lobby_limit_counts_over_the_whole_cluster(nodes: list[Node]) -> None:
    a, b, c = nodes
    hosts = [await node.create() for node in (a, b, c)]
    extra = await b.connect()
    extra.send(0, 0, "")
    assert await extra.wait_closed() == (4000, "Too many lobbies open, disconnecting")
    # One closes (on another node): there is room again.
    hosts[0][0].sendClose(1000)
    await hosts[0][0].wait_closed()
    for _ in range(50):
        again = await c.connect()
        again.send(0, 0, "")
        message = await again.next()
        if message["type"] == 1:
            return
        await again.wait_closed()
    raise AssertionError("no room after a lobby closed")


@pytest_twisted.ensureDeferred
async def test_relays_between_two_nodes_keep_their_order(shared_nodes: list[Node]) -> None:
    a, b, _ = shared_nodes
    host, lobby = await a.create()
    guest, guest_id = await b.join(lobby)
    await guest.expect(2, 1)
    await guest.expect(0, 0, lobby)
    await host.expect(2, guest_id)
    count = 2000
    for index in range(count):
        guest.send(6, 1, str(index))
        host.send(6, guest_id, str(index))
    for index in range(count):
        assert (await host.expect(6, guest_id))["data"] == str(index)
        assert (await guest.expect(6, 1))["data"] == str(index)


@pytest_twisted.ensureDeferred
async def test_kill_9_of_an_edge_then_of_an_owner(nodes: list[Node]) -> None:
    a, b, c = nodes
    host, lobby = await a.create()
    gone, gone_id = await b.join(lobby)
    await host.expect(2, gone_id)
    stays, stays_id = await c.join(lobby)
    await host.expect(2, stays_id)
    await stays.expect(2, 1)
    await stays.expect(2, gone_id)
    await stays.expect(0, 0, lobby)
    # The edge of one guest dies: its mates hear it left, within the expiry.
    b.kill()
    message = await with_timeout(host.inbox.get(), FAULT_WAIT)
    assert message == {"type": 3, "id": gone_id, "data": ""}
    message = await with_timeout(stays.inbox.get(), FAULT_WAIT)
    assert message == {"type": 3, "id": gone_id, "data": ""}
    # The owner dies: members elsewhere lose their host.
    a.kill()
    assert await stays.wait_closed(FAULT_WAIT) == HOST_GONE


@pytest_twisted.ensureDeferred
async def test_redis_stopped_and_restarted_mid_lobby(
    redis: RedisServer, two_nodes: list[Node]
) -> None:
    a, b = two_nodes
    remote_host, remote_lobby = await a.create()
    remote_guest, remote_id = await b.join(remote_lobby)
    await remote_host.expect(2, remote_id)
    local_host, local_lobby = await b.create()
    local_guest, local_id = await b.join(local_lobby)
    await local_host.expect(2, local_id)
    await redis.stop()
    await a.process.wait_for("redis unreachable", timeout=FAULT_WAIT)
    # Members of a lobby run elsewhere lose it; the owner sees them go.
    assert await remote_guest.wait_closed(FAULT_WAIT) == HOST_GONE
    await remote_host.expect(3, remote_id)
    # A lobby all on one node goes on.
    local_guest.send(4, 1, "still here")
    await local_host.expect(4, local_id, "still here")
    # What needs Redis is refused for now.
    creator = await a.connect()
    creator.send(0, 0, "")
    assert await creator.wait_closed() == (1013, "Try again later")
    joiner = await a.connect()
    joiner.send(0, 0, local_lobby)
    assert await joiner.wait_closed() == (1013, "Try again later")
    # Redis comes back: the nodes recover by themselves.
    await redis.start()
    await a.reachable()
    await b.reachable()
    late, late_id = await a.join(local_lobby)
    await local_host.expect(2, late_id)
    late.send(4, 1, "across again")
    await local_host.expect(4, late_id, "across again")


@pytest_twisted.ensureDeferred
async def test_a_node_restarted_with_the_same_id(redis: RedisServer, two_nodes: list[Node]) -> None:
    a, b = two_nodes
    host, lobby = await a.create()
    guest, guest_id = await b.join(lobby)
    await host.expect(2, guest_id)
    a.kill()
    restarted = Node("a", redis.url)
    await restarted.start()
    try:
        # The old incarnation is dead at once: its lobby's members are closed.
        assert await guest.wait_closed(FAULT_WAIT) == HOST_GONE
        # The new one serves as any node.
        new_host, new_lobby = await restarted.create()
        other, other_id = await b.join(new_lobby)
        await new_host.expect(2, other_id)
    finally:
        await restarted.stop()


@pytest_twisted.ensureDeferred
async def test_token_auth_holds_across_nodes(redis: RedisServer, tmp_path: Any) -> None:
    """A token's lobby claim is checked where the token was shown (the edge),
    so a player may join its lobby on another node, and only that lobby; the
    lobby's node knows the player by the token's subject."""
    secret = tmp_path / "secret"
    secret.write_text("a-secret-for-the-cluster-test-32-bytes\n")
    auth = TokenAuth(secret.read_text().strip())
    options = ["--token-secret-file", str(secret), "--seal-timeout", "1"]
    a, b = Node("a", redis.url, options), Node("b", redis.url, options)
    await defer.gatherResults([defer.ensureDeferred(n.start()) for n in (a, b)])
    try:
        host = await connect(f"{a.url}/?token={auth.mint(subject='host', lobby='')}")
        host.send(0, 0, "")
        # Each answer waits for Redis: generous waits on a machine other suites load.
        try:
            answer = await host.next(SLOW)
        except defer.TimeoutError:
            # What the nodes said, to tell a lost answer from a slow one.
            closed = host.closed.result if host.closed.called else "still open"
            raise AssertionError(
                f"no ID for the host ({closed}):\n{a.output()}\n{b.output()}"
            ) from None
        assert answer == {"type": 1, "id": 1, "data": "true"}
        lobby = str((await host.next(SLOW))["data"])
        player = await connect(f"{b.url}/?token={auth.mint(subject='p1', lobby=lobby)}")
        player.send(0, 0, lobby)
        joined = await player.next(SLOW)
        assert joined["type"] == 1
        assert await host.next(SLOW) == {"type": 2, "id": joined["id"], "data": ""}
        stranger = await connect(f"{b.url}/?token={auth.mint(subject='p2', lobby='Elsewhere')}")
        stranger.send(0, 0, lobby)
        assert await stranger.wait_closed(SLOW) == (4000, "Not allowed in this lobby")
    finally:
        for node in (a, b):
            await node.stop()
