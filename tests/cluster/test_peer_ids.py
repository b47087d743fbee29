"""Peer ids unique across the cluster (webrtc_signal/cluster/ids.py): three
in-process nodes on one real redis-server, whose cores draw ids from the
*same* seeded sequence, so that any id handed out without a cluster-wide
claim would be handed out by every node."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_twisted
from twisted.internet import defer, endpoints, reactor, task

from webrtc_signal import SignalingConfig, SignalingService
from webrtc_signal.cluster.ids import LOW
from webrtc_signal.events import Event, PeerConnected

from ..support.redis import RedisServer, redis_fixture
from ..support.wsclient import RecordingClient, connect

__all__ = ["redis_fixture"]


@dataclass
class InProcessNode:
    service: SignalingService
    port: int
    connected: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def observe(self, event: Event) -> None:
        if type(event) is PeerConnected:
            self.connected.append(event.peer.peer_id)


async def start_node(name: str, redis_url: str) -> InProcessNode:
    config = SignalingConfig(
        redis_url=redis_url,
        node_id=name,
        cluster_period=0.2,
        cluster_expiry=0.8,
        ping_interval=0,
        max_message_rate=0,
    )
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    service = SignalingService(config, endpoint)
    assert service.node is not None
    # The same sequence on every node (the core's ids come from the pool,
    # which draws from it).
    service.node.peer_ids.rng = random.Random(1234)
    service.startService()
    port: Any = await service.listening
    node = InProcessNode(service, port.getHost().port)
    service.add_observer(node.observe)
    return node


async def until(condition: Any, what: str) -> None:
    for _ in range(200):  # 10 s at most
        if condition():
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"timed out waiting until {what}")


@pytest_twisted.async_yield_fixture
async def three(redis: RedisServer) -> AsyncIterator[list[InProcessNode]]:
    nodes: list[InProcessNode] = []
    try:
        for name in ("a", "b", "c"):
            nodes.append(await start_node(name, redis.url))
        for node in nodes:
            cluster = node.service.node.bridge
            assert cluster is not None
            await until(lambda c=cluster: len(c.ids.free) >= LOW, "a pool is filled")
        yield nodes
    finally:
        await defer.gatherResults([node.service.stopService() for node in nodes])


async def join(url: str, lobby: str) -> tuple[RecordingClient, int]:
    client = await connect(url)
    client.send(0, 0, lobby)
    identity = await client.expect(1, None, "true")
    return client, int(identity["id"])


@pytest_twisted.ensureDeferred
async def test_peer_ids_are_unique_across_three_nodes(three: list[InProcessNode]) -> None:
    hosts: list[tuple[RecordingClient, str]] = []
    for node in three:
        host = await connect(node.url)
        host.send(0, 0, "")
        await host.expect(1, 1, "true")
        hosts.append((host, str((await host.expect(0, 0))["data"])))
    seen: dict[int, str] = {}
    clients: list[RecordingClient] = []
    for owner_index, (_, lobby) in enumerate(hosts):
        for edge_index, edge in enumerate(three):
            # Local guests, and guests from the other two nodes.
            for _ in range(8 if edge_index == owner_index else 4):
                client, peer_id = await join(edge.url, lobby)
                clients.append(client)
                assert peer_id not in seen, f"id {peer_id} given twice ({seen[peer_id]})"
                seen[peer_id] = f"node {edge_index}, lobby of node {owner_index}"
                # A peer has one id everywhere: its edge's and its owner's.
                assert peer_id in edge.connected
                assert peer_id in three[owner_index].connected
    assert len(seen) == 3 * (8 + 4 + 4)
    for client in clients:
        client.sendClose(1000)
    for host, _ in hosts:
        host.sendClose(1000)


@pytest_twisted.ensureDeferred
async def test_an_owner_refuses_a_remote_peer_whose_id_it_has(
    three: list[InProcessNode],
) -> None:
    a, b, _ = three
    host = await connect(a.url)
    host.send(0, 0, "")
    await host.expect(1, 1, "true")
    lobby = str((await host.expect(0, 0))["data"])
    local, local_id = await join(a.url, lobby)
    await host.expect(2, local_id)
    # A clash, as after an outage: node b hands out an id that a's peer has.
    cluster = b.service.node.bridge
    assert cluster is not None
    cluster.ids.free.append(local_id)
    clashing = await connect(b.url)
    clashing.send(0, 0, lobby)
    assert await clashing.wait_closed() == (1013, "Try again later")
    # The lobby and its peer with that id go on.
    local.send(4, 1, "still mine")
    await host.expect(4, local_id, "still mine")
    other, other_id = await join(b.url, lobby)
    assert other_id != local_id
    await host.expect(2, other_id)
