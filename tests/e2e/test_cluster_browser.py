"""The browser demo across a cluster: two headless Chromium pages, each
served by and signaling to a different twistd node (one redis-server), share
a lobby, open a data channel, chat, and are sealed by the owner's timer.
The steps are in cluster.e2e.mjs; WebRTC stays on 127.0.0.1 (loopback.mjs)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator

import pytest_twisted

from ..support.cluster import Node, running_nodes
from ..support.redis import RedisServer, redis_fixture
from .test_demo_browser import ARTIFACTS, loopback_pairs, run_node

__all__ = ["redis_fixture"]


@pytest_twisted.async_yield_fixture
async def two_nodes(redis: RedisServer) -> AsyncIterator[list[Node]]:
    # The owner's seal timer closes both pages' signaling a second after the
    # seal; their data channel was open before it.
    async for started in running_nodes(redis.url, ["n1", "n2"], ["--seal-timeout", "1"]):
        yield started


@pytest_twisted.ensureDeferred
async def test_two_pages_on_two_nodes_connect_chat_and_seal(two_nodes: list[Node]) -> None:
    first, second = two_nodes
    artifacts = ARTIFACTS / "cluster"
    shutil.rmtree(artifacts, ignore_errors=True)
    run = run_node(
        "cluster.e2e.mjs",
        f"http://127.0.0.1:{first.port}/",
        f"http://127.0.0.1:{second.port}/",
        str(artifacts),
    )
    assert await run.finished(120) == 0, run.output
    assert "[e2e] all scenarios passed" in run.output
    loopback_pairs(run.output, at_least=2)
    # The first node owns the lobby; the second bridged its page there, under
    # the id the guest has on both nodes, and closed it for the owner's seal.
    assert first.process is not None and second.process is not None
    joined = re.search(r"peer (\d+) joined lobby (\w+)", first.process.output)
    assert joined is not None, first.process.output
    guest_id, lobby = joined.groups()
    assert f"created mesh lobby {lobby}" in first.process.output
    assert "created" not in second.process.output
    assert f"closing peer {guest_id} (lobby -): 1000 Seal complete" in second.process.output
    assert (artifacts / "cluster-guest-sealed.png").stat().st_size > 10_000
