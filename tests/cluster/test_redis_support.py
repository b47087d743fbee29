"""The redis-server the cluster tests run: up, stopped, and back on the same port."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import endpoints, protocol

from ..support.redis import RedisServer, redis_fixture

__all__ = ["redis_fixture"]


class _Ping(protocol.Protocol):
    def __init__(self) -> None:
        self.answer = b""

    def dataReceived(self, data: bytes) -> None:
        self.answer += data


async def _ping(port: int) -> bool:
    from twisted.internet import reactor, task

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1)
    try:
        client = await endpoint.connect(protocol.Factory.forProtocol(_Ping))
    except Exception:
        return False
    client.transport.write(b"PING\r\n")
    for _ in range(50):
        if client.answer:
            break
        await task.deferLater(reactor, 0.02)
    client.transport.loseConnection()
    return client.answer == b"+PONG\r\n"


@pytest_twisted.ensureDeferred
async def test_redis_stops_and_restarts_on_the_same_port(redis: RedisServer) -> None:
    assert await _ping(redis.port)
    port = redis.port
    await redis.stop()
    assert not await _ping(port)
    await redis.start()
    assert redis.port == port
    assert await _ping(port)
