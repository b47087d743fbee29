from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import settings
from twisted.internet import endpoints, task

from webrtc_signal import SignalingConfig
from webrtc_signal.server.engine import Engine
from webrtc_signal.server.websocket import SignalingServerFactory
from webrtc_signal.service import SignalingService

from .support import wheel

# aiortc's ICE on 127.0.0.1 only, here and in every child process; each test
# is checked for it (tests/support/loopback_ice).
from .support.loopback_ice.plugin import (  # noqa: F401 (hooks and fixtures)
    _ice_stays_on_loopback,
    ice_log,
    pytest_configure,
    pytest_unconfigure,
)
from .support.wsclient import RecordingClient, connect, with_timeout


def _reactor() -> Any:
    # Imported when used: conftest loads before pytest-twisted installs the
    # reactor the suite runs on (asyncio, for aiortc), and importing it here
    # would install the default one first.
    from twisted.internet import reactor

    return reactor


@dataclass
class RunningServer:
    """A server on 127.0.0.1 with a random port; its timers run on ``clock``."""

    service: SignalingService
    clock: task.Clock
    url: str
    clients: list[RecordingClient] = field(default_factory=list)

    @property
    def factory(self) -> SignalingServerFactory:
        return self.service.factory

    @property
    def engine(self) -> Engine[Any]:
        return self.service.engine

    def core_timers(self) -> int:
        """The core's timers running on the clock now (join, seal, age and
        reservation deadlines; not the keepalive ticker)."""
        return sum(
            1
            for call in self.clock.getDelayedCalls()
            if getattr(call.func, "__name__", "") == "_timer_fired"
        )

    async def connect(self, raw: bool = False, **kwargs: Any) -> RecordingClient:
        client = await connect(self.url, raw=raw, **kwargs)
        self.clients.append(client)
        return client

    async def connect_to(self, path: str, **kwargs: Any) -> RecordingClient:
        """Connect to ``path`` (with any query string) on this server."""
        client = await connect(self.url + path, **kwargs)
        self.clients.append(client)
        return client

    async def create(self, mesh: bool = True) -> tuple[RecordingClient, str]:
        """Connect a client that creates a lobby; returns it and the lobby name."""
        host = await self.connect()
        host.send(0, 0 if mesh else 1, "")
        await host.expect(1, 1, "true" if mesh else "")
        joined = await host.expect(0, 0)
        return host, joined["data"]

    async def join(self, lobby: str) -> tuple[RecordingClient, int]:
        """Connect a client that joins ``lobby`` and reads up to its JOIN."""
        client = await self.connect()
        client.send(0, 0, lobby)
        my_id = (await client.expect(1))["id"]
        while (message := await client.next())["type"] != 0:
            assert message["type"] == 2, message
        assert message == {"type": 0, "id": 0, "data": lobby}
        return client, my_id


async def start_server(
    config: SignalingConfig | None = None,
    endpoint: Any = None,
    scheme: str = "ws",
    host: str = "127.0.0.1",
    hooks: object = None,
) -> RunningServer:
    clock = task.Clock()
    if endpoint is None:
        endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    service = SignalingService(config, endpoint, clock=clock, hooks=hooks)
    service.startService()
    await with_timeout(service.listening, 5)
    port = service.port.getHost().port
    return RunningServer(service, clock, f"{scheme}://{host}:{port}")


async def stop_server(server: RunningServer) -> None:
    for client in server.clients:
        client.dropConnection(abort=True)
    await with_timeout(server.service.stopService(), 5)


ServerMaker = Callable[..., Awaitable[RunningServer]]


@pytest_twisted.async_yield_fixture
async def make_server() -> AsyncIterator[ServerMaker]:
    """Start servers with a given config; all are stopped after the test."""
    running: list[RunningServer] = []

    async def make(config: SignalingConfig | None = None, **kwargs: Any) -> RunningServer:
        server = await start_server(config, **kwargs)
        running.append(server)
        return server

    yield make
    for server in running:
        await stop_server(server)


@pytest_twisted.async_yield_fixture
async def server(make_server: ServerMaker) -> AsyncIterator[RunningServer]:
    yield await make_server()


# Hypothesis's per-example deadline measures wall time, which a loaded CI
# machine (or a browser test next door) stretches: a deadline there fails
# tests for slowness, not for a wrong answer. Their sizes are bounded instead.
settings.register_profile("webrtc-signal", deadline=None)
settings.load_profile("webrtc-signal")


# The files whose tests take longest (browsers, benchmark smoke runs, clusters,
# documented programs, the long hypothesis runs), in rough order of their
# running time. Their tests are handed out first, so that the workers share
# them from the start instead of one worker finishing a long test while the
# others have run out of work.
LONG_RUNNING_FIRST = (
    "tests/e2e/test_demo_browser.py",
    "tests/bench/test_bench.py",
    "tests/test_docs_snippets.py",
    "tests/e2e/",
    "tests/cluster/",
    "tests/protocol/test_core_state_machine.py",
    "tests/client/test_tls.py",
    "tests/client/test_cli_lifecycle.py",
    "tests/protocol/test_codec.py",
    "tests/server/test_twistd",
    "tests/server/test_usage.py",
    "tests/server/test_tokens.py",
    "tests/rtc/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        for position, prefix in enumerate(LONG_RUNNING_FIRST):
            if item.nodeid.startswith(prefix):
                return position
        return len(LONG_RUNNING_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


# Tests marked ``unmeasured`` run with coverage measurement paused: the long
# property-based and load runs, which go through the same lines thousands of
# times and under the tracer take about twice the CPU (the rest of the suite
# reaches their lines: pausing them left the total unchanged). Coverage, when
# measuring, is paused and resumed around the test's call alone (the marker
# is declared in setup.cfg).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    measuring = _measuring() if item.get_closest_marker("unmeasured") else None
    if measuring is None:
        return (yield)
    measuring.stop()
    try:
        return (yield)
    finally:
        measuring.start()


def _measuring() -> Any:
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


def _wheel_directory(factory: pytest.TempPathFactory) -> Path:
    # pytest-xdist workers each have a base directory inside a shared one.
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "wheel"


@pytest.fixture(scope="session", autouse=True)
def _wheel_in_the_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Start building the wheel before the first test, in the background, if
    a test needs it: by the time that test runs, it is built and installed."""
    if any(
        wheel.FIXTURES & set(getattr(item, "fixturenames", ())) for item in request.session.items
    ):
        wheel.start(_wheel_directory(tmp_path_factory))


@pytest.fixture(scope="session")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> wheel.Distributions:
    """The sdist and wheel of this checkout, and a fresh venv holding the wheel."""
    return wheel.ready(_wheel_directory(tmp_path_factory))


@pytest.fixture(scope="session")
def fresh_venv(distributions: wheel.Distributions) -> Path:
    """A new venv holding the built wheel and its dependencies, nothing else."""
    return distributions.venv
