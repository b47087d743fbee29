"""A cluster node tells the truth about Redis: a twistd node (real
redis-server) answers ``GET /healthz`` 503 degraded and shows
``webrtc_signal_cluster_connected 0`` while Redis is down (when it closes
every new lobby with 1013), and 200 / 1 again soon after Redis is back."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ..support.cluster import Node
from ..support.http import http_get
from ..support.redis import RedisServer, redis_fixture

__all__ = ["redis_fixture"]

NODE_PERIOD = 1.0
GAUGE = re.compile(r"^webrtc_signal_cluster_connected (\S+)$", re.M)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> float:
    """Poll ``check`` every 20 ms (bounded); the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        await task.deferLater(reactor, 0.02)
    return time.monotonic() - started


@pytest_twisted.async_yield_fixture
async def node(redis: RedisServer) -> AsyncIterator[Node]:
    # The default --cluster-period, whose bound the recovery is held to.
    started = Node(
        "a",
        redis.url,
        [
            "--metrics",
            "tcp:0:interface=127.0.0.1",
            "--cluster-period",
            str(NODE_PERIOD),
            "--cluster-expiry",
            str(3 * NODE_PERIOD),
        ],
    )
    try:
        await started.start()
        yield started
    finally:
        await started.stop()


def metrics_port(node: Node) -> int:
    """From the node's --port-file: the signaling port, then the metrics one."""
    (port,) = node.side_ports
    return port


async def health(node: Node) -> tuple[int, dict[str, object]]:
    status, _, body = await http_get(node.port, "/healthz")
    return status, json.loads(body)


async def gauge(port: int) -> float:
    status, _, body = await http_get(port, "/metrics", "Connection: close\r\n")
    assert status == 200
    match = GAUGE.search(body.decode())
    assert match is not None, body.decode()
    return float(match.group(1))


@pytest_twisted.ensureDeferred
async def test_healthz_and_the_gauge_follow_redis(redis: RedisServer, node: Node) -> None:
    port = metrics_port(node)
    assert await health(node) == (200, {"status": "ok", "peers": 0, "lobbies": 0})
    assert await gauge(port) == 1.0
    host, _ = await node.create()

    await redis.stop()

    async def degraded() -> bool:
        return (await health(node))[0] == 503

    await until(degraded, "503 once redis is gone")
    assert await health(node) == (
        503,
        {"status": "degraded", "reason": "redis unreachable", "peers": 1, "lobbies": 1},
    )
    assert await gauge(port) == 0.0
    # What the 503 stands for: no new lobby on this node meanwhile.
    newcomer = await node.connect()
    newcomer.send(0, 0, "")
    assert await newcomer.wait_closed() == (1013, "Try again later")
    # The lobby it runs goes on.
    assert not host.closed.called

    await redis.start()

    async def healthy() -> bool:
        return (await health(node))[0] == 200

    took = await until(healthy, "200 once redis is back")
    assert await gauge(port) == 1.0
    # Within one --cluster-period of Redis answering again: the bus retries
    # at least every three quarters of a period, then registers at once.
    # Half a second more for the polling and a machine busy with other tests.
    assert took < NODE_PERIOD + 0.5, took
