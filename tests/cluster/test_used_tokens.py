"""Single-use tokens across servers (webrtc_signal/cluster/used_tokens.py):
two in-process signaling services, each with its own TokenAuth, sharing one
real redis-server for the used tokens; real WebSocket upgrades."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest_twisted
import txredisapi
from twisted.internet import reactor, task
from twisted.logger import capturedLogs

from webrtc_signal import TokenAuth
from webrtc_signal.cluster.used_tokens import KEY_PREFIX, RedisUsedTokens
from webrtc_signal.server.tokens import make_token

from ..conftest import RunningServer, ServerMaker
from ..server.test_hooks import raw_status_line
from ..support.redis import RedisServer, redis_fixture
from ..support.wsclient import with_timeout

__all__ = ["redis_fixture"]

SECRET = b"a-test-secret-of-thirty-two-bytes!!"
# The tokens' clock: a real-looking time, so that the claims are real epochs.
NOW = 1_700_000_000.0
JOIN, ID = 0, 1


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(400):  # 20 s at most
        if condition():
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"timed out waiting until {what}")


@dataclass
class Node:
    server: RunningServer
    used: RedisUsedTokens


@dataclass
class Pair:
    a: Node
    b: Node
    clock: task.Clock
    redis: RedisServer


@pytest_twisted.async_yield_fixture
async def pair(redis: RedisServer, make_server: ServerMaker) -> AsyncIterator[Pair]:
    clock = task.Clock()
    clock.advance(NOW)
    nodes: list[Node] = []
    try:
        for _ in range(2):
            used = RedisUsedTokens(redis.url, clock=clock)
            used.startService()
            auth = TokenAuth(SECRET, used_tokens=used, clock=clock)
            nodes.append(Node(await make_server(hooks=auth), used))
        await until(lambda: all(node.used.up for node in nodes), "both stores reach redis")
        yield Pair(nodes[0], nodes[1], clock, redis)
    finally:
        for node in nodes:
            await with_timeout(node.used.stopService(), 5)


def ticket(ttl: float = 60) -> str:
    return make_token(SECRET, now=NOW, ttl=ttl, single_use=True)


async def connects(node: Node, token: str) -> None:
    host = await node.server.connect_to(f"/?token={token}")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)


async def status(node: Node, token: str) -> str:
    return await raw_status_line(node.server, f"/?token={token}")


@pytest_twisted.ensureDeferred
async def test_a_single_use_token_connects_once_across_servers(pair: Pair) -> None:
    once = ticket()
    await connects(pair.a, once)
    assert await status(pair.b, once) == "HTTP/1.1 401 Token already used"
    assert await status(pair.a, once) == "HTTP/1.1 401 Token already used"
    other = ticket()
    await connects(pair.b, other)
    assert await status(pair.a, other) == "HTTP/1.1 401 Token already used"
    # Tokens without jti are not single-use, on either server.
    reusable = make_token(SECRET, now=NOW)
    for node in (pair.a, pair.b, pair.a):
        await connects(node, reusable)


@pytest_twisted.ensureDeferred
async def test_redis_remembers_a_used_token_for_its_remaining_lifetime(pair: Pair) -> None:
    once = ticket(ttl=60)
    # Shown 20 s after it was minted: 40 s left to remember.
    pair.clock.advance(20)
    await connects(pair.a, once)
    jti = jwt.decode(once, options={"verify_signature": False})["jti"]
    connecting = txredisapi.Connection("127.0.0.1", pair.redis.port, reconnect=False)
    redis: Any = await with_timeout(connecting, 5)
    try:
        left = await with_timeout(redis.execute_command("PTTL", KEY_PREFIX + jti), 5)
        value = await with_timeout(redis.get(KEY_PREFIX + jti), 5)
    finally:
        await with_timeout(redis.disconnect(), 5)
    # Real milliseconds pass between the SET and the PTTL: a loaded machine
    # may take seconds, never 30.
    assert 10_000 < left <= 40_000
    assert value == 1  # txredisapi reads "1" back as a number


@pytest_twisted.ensureDeferred
async def test_redis_unreachable_refuses_single_use_tokens_with_503(pair: Pair) -> None:
    used_before = ticket()
    await connects(pair.a, used_before)
    await pair.redis.stop()
    await until(lambda: not pair.a.used.up and not pair.b.used.up, "both stores see redis gone")
    with capturedLogs() as events:
        for _ in range(3):
            assert await status(pair.a, ticket()) == "HTTP/1.1 503 Try again later"
    lines = [event for event in events if "single-use tokens refused" in event["log_format"]]
    # Three refusals within ten seconds of the clock: one line.
    assert [(event["why"], event["refused"]) for event in lines] == [("redis unreachable", 1)]
    # Tokens without jti need no Redis.
    await connects(pair.b, make_token(SECRET, now=NOW))
    await pair.redis.start()
    await until(lambda: pair.a.used.up and pair.b.used.up, "both stores reach redis again")
    await connects(pair.b, ticket())


@pytest_twisted.ensureDeferred
async def test_a_hung_redis_refuses_single_use_tokens_with_503(pair: Pair) -> None:
    process = pair.redis.process
    assert process is not None
    process.transport.signalProcess("STOP")
    try:
        # txredisapi gives up on the reply after REPLY_TIMEOUT (2 s).
        assert await status(pair.a, ticket()) == "HTTP/1.1 503 Try again later"
        # The connection that did not answer is given up at once.
        assert not pair.a.used.up
        assert await status(pair.a, ticket()) == "HTTP/1.1 503 Try again later"
    finally:
        process.transport.signalProcess(signal.SIGCONT)
    await until(lambda: pair.a.used.up, "the store reconnects")
    await connects(pair.a, ticket())
