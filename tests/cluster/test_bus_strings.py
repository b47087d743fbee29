"""Strings the bus must carry as a single node would: a lone surrogate
(valid JSON, ``"\\ud800"``, but no UTF-8) in a lobby name and inside relayed
data. A single server and a two-node cluster (real twistd processes, real
redis-server) give the same answers, every innocent message of a batch is
delivered, and neither node logs a critical line or a traceback."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_twisted

from ..conftest import RunningServer, ServerMaker
from ..support.cluster import Node, running_nodes
from ..support.rawws import RawWebSocket, raw_cleanup, raw_connect
from ..support.redis import RedisServer, redis_fixture
from ..support.wsframes import frame

__all__ = ["raw_cleanup", "redis_fixture"]

JOIN, ID, PEER_CONNECT, OFFER = 0, 1, 2, 4
# Sent as JSON escapes: the text on the wire is plain ASCII.
LONE = "\\ud800"
EVIL_NAME = f'{{"type":0,"id":0,"data":"{LONE}"}}'
EVIL_NAME_INSIDE = f'{{"type":0,"id":0,"data":"Abc{LONE}def0123456789"}}'


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Setup:
    """Where the host connects, and where the others do."""

    host_url: str
    guest_url: str


async def connect(url: str) -> RawWebSocket:
    client = await raw_connect(port_of(url))
    assert client.status == 101, client.response_head
    return client


async def text(client: RawWebSocket) -> str:
    """The next text frame, as the raw text the server wrote."""
    while True:
        opcode, payload = await client.next_frame()
        if opcode == 1:
            return payload.decode("utf-8")


async def answers(setup: Setup) -> dict[str, object]:
    """What a setup answers to lone surrogates, with the ids it chose
    replaced by names (they are random)."""
    seen: dict[str, object] = {}
    # A JOIN of a name with a lone surrogate, alone or inside: on the node
    # that does not run the lobby (on a cluster, it would have to ask Redis).
    for label, request in (("name", EVIL_NAME), ("name inside", EVIL_NAME_INSIDE)):
        stranger = await connect(setup.guest_url)
        stranger.send(request)
        seen[f"join {label}"] = await stranger.wait_close()
    host = await connect(setup.host_url)
    host.send_json(JOIN, 0, "")
    assert (await host.next_json())["type"] == ID
    lobby = (await host.next_json())["data"]
    guest = await connect(setup.guest_url)
    guest.send_json(JOIN, 0, lobby)
    guest_id = (await guest.next_json())["id"]
    assert (await guest.next_json())["type"] == PEER_CONNECT
    assert (await guest.next_json())["data"] == lobby
    assert (await host.next_json()) == {"type": PEER_CONNECT, "id": guest_id, "data": ""}
    # Three relays in one TCP write, so in one batch of input (and one bus
    # message between nodes): the one in the middle carries a lone surrogate.
    batch = [
        '{"type":4,"id":1,"data":"innocent before"}',
        f'{{"type":4,"id":1,"data":"evil {LONE} data"}}',
        '{"type":4,"id":1,"data":"innocent after"}',
    ]
    guest.transport.write(b"".join(frame(m.encode(), mask=os.urandom(4)) for m in batch))
    relayed = [await text(host) for _ in batch]
    seen["relayed to the host"] = [m.replace(str(guest_id), "<guest>") for m in relayed]
    # And back, to a JSON peer and to a line-protocol one.
    line = await connect(setup.guest_url)
    line.send(f"J: {lobby}\n")
    line_id = int((await text(line))[3:].strip())
    for _ in range(2):
        assert (await text(line)).startswith("N: ")
    assert await text(line) == f"J: {lobby}\n"
    assert await text(guest) == f'{{"type":2,"id":{line_id},"data":""}}'
    assert await text(host) == f'{{"type":2,"id":{line_id},"data":""}}'
    host.send(f'{{"type":5,"id":{guest_id},"data":"answer {LONE}"}}')
    host.send(f'{{"type":5,"id":{line_id},"data":"answer {LONE}"}}')
    seen["relayed to the guest"] = await text(guest)
    seen["relayed to the line peer"] = await text(line)
    # Everyone is still connected and the lobby still works.
    guest.send_json(OFFER, 1, "still here")
    seen["after"] = (await text(host)).replace(str(guest_id), "<guest>")
    return seen


@pytest_twisted.async_yield_fixture
async def two_nodes(redis: RedisServer) -> AsyncIterator[list[Node]]:
    async for nodes in running_nodes(redis.url, ("a", "b"), []):
        yield nodes


@pytest_twisted.ensureDeferred
async def test_lone_surrogates_get_the_same_answers_on_one_node_and_on_a_cluster(
    make_server: ServerMaker, two_nodes: list[Node]
) -> None:
    single: RunningServer = await make_server()
    on_one_node = await answers(Setup(single.url, single.url))
    a, b = two_nodes
    on_a_cluster = await answers(Setup(a.url, b.url))
    assert on_a_cluster == on_one_node
    # What that answer is: a name that cannot exist does not; data is
    # relayed as it came, the surrogate escaped again (a line peer, whose
    # framing is UTF-8 text, gets "?" for it); nothing innocent is lost.
    assert on_one_node == {
        "join name": (4000, "Lobby does not exists"),
        "join name inside": (4000, "Lobby does not exists"),
        "relayed to the host": [
            '{"type":4,"id":<guest>,"data":"innocent before"}',
            f'{{"type":4,"id":<guest>,"data":"evil {LONE} data"}}',
            '{"type":4,"id":<guest>,"data":"innocent after"}',
        ],
        "relayed to the guest": f'{{"type":5,"id":1,"data":"answer {LONE}"}}',
        "relayed to the line peer": "A: 1\nanswer ?",
        "after": '{"type":4,"id":<guest>,"data":"still here"}',
    }
    for node in two_nodes:
        assert node.process is not None
        output = node.process.output
        assert not re.search(r"#critical\]|Traceback|InvalidData", output), output
