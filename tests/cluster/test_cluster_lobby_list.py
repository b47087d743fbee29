"""GET /lobbies across nodes (docs/matchmaking.md, docs/cluster.md): any
node lists every node's listed lobbies, newest first, with the same pages,
cursor, filters and limit as one server; a lobby leaves the list at once
when it seals, fills or closes, and a full one comes back in its place when
a member leaves. Without Redis a node lists its own. Nodes in the test's
process, one real redis-server, real HTTP and WebSocket clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import pytest_twisted
from twisted.internet import reactor, task

from ..support.cluster import InProcessNode, start_in_process
from ..support.http import http_get
from ..support.redis import RedisServer, redis_fixture
from ..support.wsclient import RecordingClient

__all__ = ["redis_fixture"]

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, SEAL = 0, 1, 2, 3, 7


@pytest_twisted.async_yield_fixture
async def nodes(redis: RedisServer) -> AsyncIterator[list[InProcessNode]]:
    started: list[InProcessNode] = []
    try:
        for name in ("a", "b", "c"):
            started.append(await start_in_process(name, redis.url))
        yield started
    finally:
        for node in started:
            await node.stop()


async def listing(node: InProcessNode, query: str = "") -> Any:
    status, _, body = await http_get(node.port, f"/lobbies{query}")
    assert status == 200, body
    return json.loads(body)


def names(page: Any) -> list[str]:
    return [entry["name"] for entry in page["lobbies"]]


async def until_listed(
    node: InProcessNode, wanted: Callable[[Any], bool], query: str = "", what: str = ""
) -> Any:
    """The node's list once ``wanted`` holds of it (an owner writes its
    lobbies to Redis once per batch of input: a round trip away)."""
    for _ in range(200):  # 10 s at most
        page = await listing(node, query)
        if wanted(page):
            return page
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"the list of node {node.service.config.node_id} never {what}: {page}")


async def host(
    node: InProcessNode, title: str, mesh: bool = True, extra: str = ""
) -> tuple[RecordingClient, str]:
    client = await node.connect(f"/?listed=1&title={quote(title)}{extra}")
    client.send(JOIN, 0 if mesh else 1, "")
    await client.expect(ID, 1)
    return client, (await client.expect(JOIN))["data"]


async def join(node: InProcessNode, lobby: str) -> tuple[RecordingClient, int]:
    client = await node.connect()
    client.send(JOIN, 0, lobby)
    my_id = (await client.next(10))["id"]
    while (await client.next(10))["type"] != JOIN:
        pass
    return client, my_id


@pytest_twisted.ensureDeferred
async def test_a_listed_lobby_of_one_node_is_listed_by_another_until_it_seals(
    nodes: list[InProcessNode],
) -> None:
    a, b, c = nodes
    owner, lobby = await host(a, "Friday night", extra="&size=4")
    page = await until_listed(b, lambda page: lobby in names(page), what="showed the lobby")
    assert page == {
        "lobbies": [
            {
                "name": lobby,
                "title": "Friday night",
                "members": 1,
                "size": 4,
                "mesh": True,
                "age": 0,
            }
        ],
        "next": None,
    }
    # A player from a third node joins: every node shows two members.
    guest, guest_id = await join(c, lobby)
    await owner.expect(PEER_CONNECT, guest_id)
    await until_listed(b, lambda page: page["lobbies"][0]["members"] == 2, what="counted two")
    # Sealed: off every node's list at once (the owner's next write).
    owner.send(SEAL)
    await owner.expect(SEAL)
    await guest.expect(SEAL)
    for node in nodes:
        assert lobby not in names(await until_listed(node, lambda page: lobby not in names(page)))


@pytest_twisted.ensureDeferred
async def test_pages_span_the_nodes_newest_first_with_filters_and_limit(
    nodes: list[InProcessNode],
) -> None:
    a, b, c = nodes
    made = []
    for index, node in enumerate((a, b, c, a, b)):
        _, lobby = await host(node, f"Game {index}", mesh=index != 2)
        made.append(lobby)
        # Each is written before the next is made: creation order is list order.
        await until_listed(c, lambda page, lobby=lobby: lobby in names(page), what="listed it")
    unlisted = await b.connect()
    unlisted.send(JOIN, 0, "")
    await unlisted.expect(ID, 1)
    newest_first = list(reversed(made))
    assert names(await listing(b)) == newest_first
    # Pages of two, asked of different nodes, follow their cursors.
    first = await listing(a, "?limit=2")
    assert names(first) == newest_first[:2] and first["next"] is not None
    # A lobby created meanwhile does not shift the later pages.
    _, newer = await host(c, "Game 5")
    await until_listed(b, lambda page: newer in names(page), what="listed the newer one")
    second = await listing(b, f"?limit=2&cursor={first['next']}")
    assert names(second) == newest_first[2:4] and second["next"] is not None
    last = await listing(c, f"?limit=2&cursor={second['next']}")
    assert names(last) == newest_first[4:] and last["next"] is None
    # The filters, applied by Redis, as one server applies them.
    assert names(await listing(a, "?q=GAME%203")) == [made[3]]
    assert names(await listing(a, "?mode=client-server")) == [made[2]]
    assert names(await listing(a, "?mode=mesh&q=game&limit=3")) == [newer, made[4], made[3]]
    assert names(await listing(a, "?q=nothing")) == []


@pytest_twisted.ensureDeferred
async def test_a_full_lobby_leaves_the_list_and_comes_back_in_its_place(
    nodes: list[InProcessNode],
) -> None:
    a, b, c = nodes
    owner, full = await host(a, "Pair", extra="&size=2")
    _, later = await host(c, "Later")
    await until_listed(b, lambda page: names(page) == [later, full], what="listed both")
    guest, guest_id = await join(b, full)
    await owner.expect(PEER_CONNECT, guest_id)
    await until_listed(b, lambda page: names(page) == [later], what="dropped the full one")
    guest.sendClose(1000)
    await owner.expect(PEER_DISCONNECT, guest_id)
    await until_listed(b, lambda page: names(page) == [later, full], what="listed it again")


@pytest_twisted.ensureDeferred
async def test_a_closed_lobby_leaves_every_list(nodes: list[InProcessNode]) -> None:
    a, b, _ = nodes
    owner, lobby = await host(a, "Short")
    await until_listed(b, lambda page: lobby in names(page), what="listed it")
    owner.sendClose(1000)
    await until_listed(b, lambda page: lobby not in names(page), what="dropped it")
    assert a.service.close_lobby(lobby) is False


@pytest_twisted.ensureDeferred
async def test_without_redis_a_node_lists_its_own_lobbies(
    redis: RedisServer, nodes: list[InProcessNode]
) -> None:
    a, b, _ = nodes
    _, remote = await host(a, "Elsewhere")
    _, local = await host(b, "Here")
    await until_listed(b, lambda page: set(names(page)) == {remote, local}, what="listed both")
    await redis.stop()
    assert b.service.node is not None
    for _ in range(200):
        if not b.service.node.bus.up:
            break
        await task.deferLater(reactor, 0.05)
    # Only lobbies this node runs can be joined now: those are listed.
    assert names(await listing(b)) == [local]
