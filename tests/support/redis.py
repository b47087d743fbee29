"""A real Redis for the cluster tests: Debian's ``redis-server`` on
127.0.0.1 on a port the test held until the moment it started (another start
on a new port if someone took it in that instant), without persistence (``--save ""
--appendonly no``), its files in the test's temporary directory. Stopped
after the test; `RedisServer.stop` and `RedisServer.start` stop and restart
it mid-test on the same port (an outage, as the nodes see it). It is ready
once it answers PING.

Without ``redis-server`` the tests that need it are skipped, unless
WEBRTC_SIGNAL_REQUIRE_REDIS=1 (CI sets it) makes that a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol, task

from .processes import (
    HeldPort,
    PortTaken,
    Spawned,
    poll,
    require_program,
    spawn,
    start_on_a_held_port,
)
from .wsclient import with_timeout

# What redis-server says, then exits, when its port is taken.
PORT_TAKEN = "Address already in use"


def require_redis_server() -> str:
    return require_program(
        "redis-server",
        "apt-get install redis-server, or make redis",
        "WEBRTC_SIGNAL_REQUIRE_REDIS",
        "cluster test",
    )


class _Answer(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


async def answers_ping(port: int, timeout: float = 5) -> bool:
    """Whether a redis-server on 127.0.0.1:``port`` answers PING within
    ``timeout`` seconds."""
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2)
    try:
        client = await with_timeout(endpoint.connect(protocol.Factory.forProtocol(_Answer)), 5)
    except Exception:
        return False
    try:
        client.transport.write(b"PING\r\n")
        for _ in range(int(timeout / 0.02)):
            if b"\r\n" in client.received:
                break
            await task.deferLater(reactor, 0.02)
    finally:
        client.transport.loseConnection()
    return client.received == b"+PONG\r\n"


@dataclass
class RedisServer:
    executable: str
    port: int
    directory: Path
    process: Spawned | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip

    async def start(self, held: HeldPort | None = None) -> None:
        """Start (or restart, on the same port) and wait until it answers
        PING. ``held``: the port this process holds for it, released right
        before the start. `PortTaken` if redis-server found it taken."""
        if held is not None:
            held.release()
        process = self.process = spawn(self.argv())
        try:
            await poll(
                lambda: self._ready(process), f"answering PING on port {self.port}", timeout=20
            )
        except BaseException:
            await self.stop()
            raise

    async def _ready(self, process: Spawned) -> bool:
        if process.ended.called:
            if PORT_TAKEN in process.output:
                raise PortTaken()
            pytest.fail(f"redis-server ended at start:\n{process.output}")
        # Briefly: a port that accepts but never answers is not redis-server.
        return await answers_ping(self.port, timeout=1)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.ended.called:
            return
        process.transport.signalProcess("KILL")
        await with_timeout(process.ended, 5)


async def start_redis(directory: Path) -> RedisServer:
    executable = require_redis_server()

    async def start(held: HeldPort) -> RedisServer:
        server = RedisServer(executable, held.port, directory)
        await server.start(held)
        return server

    return await start_on_a_held_port(start, "redis-server")


@pytest_twisted.async_yield_fixture(name="redis")
async def redis_fixture(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A running redis-server for one test, as the fixture ``redis`` (import
    ``redis_fixture`` into the test module)."""
    server = await start_redis(tmp_path)
    try:
        yield server
    finally:
        await stop_and_wait(server)


@pytest_twisted.async_yield_fixture(name="module_redis", scope="module")
async def module_redis_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RedisServer]:
    """One redis-server for a test module's tests that stop nothing, as the
    fixture ``module_redis`` (import ``module_redis_fixture``)."""
    server = await start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        await stop_and_wait(server)


async def stop_and_wait(server: RedisServer) -> None:
    with contextlib.suppress(defer.TimeoutError):
        await server.stop()
