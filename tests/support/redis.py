"""A real Redis for the cluster tests: Debian's ``redis-server`` on
127.0.0.1 with a random free port, without persistence (``--save ""
--appendonly no``), its files in the test's temporary directory. Stopped
after the test; `RedisServer.stop` and `RedisServer.start` stop and restart
it mid-test on the same port (an outage, as the nodes see it).

Without ``redis-server`` the tests that need it are skipped, unless
WEBRTC_SIGNAL_REQUIRE_REDIS=1 (CI sets it) makes that a failure.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_twisted
from twisted.internet import defer

from .processes import Spawned, require_program, spawn, until_listening
from .wsclient import with_timeout


def require_redis_server() -> str:
    return require_program(
        "redis-server",
        "apt-get install redis-server, or make redis",
        "WEBRTC_SIGNAL_REQUIRE_REDIS",
        "cluster test",
    )


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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

    async def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers."""
        self.process = spawn(self.argv())
        try:
            await until_listening(self.port, self.process, "redis-server")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process = self.process
        if process is None or process.ended.called:
            return
        process.transport.signalProcess("KILL")
        await with_timeout(process.ended, 5)


async def start_redis(directory: Path) -> RedisServer:
    server = RedisServer(require_redis_server(), free_tcp_port(), directory)
    await server.start()
    return server


@pytest_twisted.async_yield_fixture(name="redis")
async def redis_fixture(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A running redis-server for one test, as the fixture ``redis`` (import
    ``redis_fixture`` into the test module)."""
    server = await start_redis(tmp_path)
    try:
        yield server
    finally:
        await stop_and_wait(server)


async def stop_and_wait(server: RedisServer) -> None:
    with contextlib.suppress(defer.TimeoutError):
        await server.stop()
