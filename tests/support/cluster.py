"""Cluster nodes for the tests: real ``twistd -n webrtc-signal --redis ...``
processes on 127.0.0.1, each on a port the kernel picked (read from its
``--port-file``), all sharing one redis-server (`Node`); and nodes in the
test's own process on an injected clock (`InProcessNode`), whose timers, the
admin API's included, the test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, endpoints, task

from webrtc_signal import SignalingConfig, SignalingService
from webrtc_signal.server.admin import AdminResource, AdminSite

from .processes import Spawned
from .twistd import start_twistd
from .wsclient import RecordingClient, connect, with_timeout

# Short liveness periods keep the fault tests quick (the defaults are 1 s / 3 s).
PERIOD = 0.2
EXPIRY = 0.8
# The join timeout of test nodes: a JOIN waits for Redis round trips, which a
# machine busy with other suites can stretch past the default 1 s.
JOIN_TIMEOUT = "30"
ADMIN_TOKEN = b"admin-token-for-cluster-tests-0123456789"


@dataclass
class Node:
    node_id: str
    redis_url: str
    extra: list[str] = field(default_factory=list)
    process: Spawned | None = None
    port: int = 0
    side_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process, ports = await start_twistd(
            "--redis", self.redis_url, "--node-id", self.node_id,
            "--cluster-period", str(PERIOD), "--cluster-expiry", str(EXPIRY),
            "--ping-interval", "0", "--join-timeout", JOIN_TIMEOUT,
            *self.extra,
        )  # fmt: skip
        # The signaling port, then --metrics and --admin if given.
        self.port, self.side_ports = ports[0], ports[1:]
        await self.reachable()

    async def reachable(self, timeout: float = 10) -> None:
        """Wait for the node's next "redis reachable" line: its bus, not the
        single-use token store, which says so first (and a node takes no
        lobby until its bus is up)."""
        assert self.process is not None
        await self.process.wait_for(f"cluster node {self.node_id}: redis reachable", timeout)

    def output(self) -> str:
        """What the node has logged so far, for a failing test's message."""
        text = self.process.output if self.process is not None else ""
        return f"--- node {self.node_id}:\n{text}"

    def kill(self) -> None:
        """kill -9: no goodbye to Redis or to anyone."""
        if self.process is not None and not self.process.ended.called:
            self.process.transport.signalProcess("KILL")

    async def stop(self) -> None:
        process = self.process
        if process is None or process.ended.called:
            return
        process.transport.signalProcess("TERM")
        try:
            await with_timeout(process.ended, 10)
        except Exception:
            process.transport.signalProcess("KILL")
            await with_timeout(process.ended, 5)

    async def connect(self, raw: bool = False) -> RecordingClient:
        return await connect(self.url, raw=raw)

    async def create(self, mesh: bool = True) -> tuple[RecordingClient, str]:
        host = await self.connect()
        host.send(0, 0 if mesh else 1, "")
        await host.expect(1, 1, "true" if mesh else "")
        joined = await host.expect(0, 0)
        return host, str(joined["data"])

    async def join(self, lobby: str, mesh: bool = True) -> tuple[RecordingClient, int]:
        """A JSON client that joins ``lobby`` and reads its ID (not its
        PEER_CONNECTs: those come before the JOIN answer)."""
        client = await self.connect()
        client.send(0, 0, lobby)
        identity = await client.expect(1, None, "true" if mesh else "")
        return client, int(identity["id"])


async def running_nodes(
    redis_url: str, names: Sequence[str], options: Sequence[str]
) -> AsyncIterator[list[Node]]:
    """twistd nodes ``names`` on one Redis, started together, stopped after.
    A test starts only the nodes it talks to: each costs a second of CPU."""
    started = [Node(name, redis_url, list(options)) for name in names]
    try:
        await defer.gatherResults(
            [defer.ensureDeferred(node.start()) for node in started], consumeErrors=True
        )
        yield started
    finally:
        for node in started:
            await node.stop()


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@dataclass
class InProcessNode:
    """A cluster node in the test's process, its timers on ``clock`` (a
    `task.Clock` the test advances), its admin API on a port of its own.
    Its liveness in Redis lasts `InProcessNode.EXPIRY` seconds of real time
    without a refresh, longer than any test: refreshes wait for the clock."""

    EXPIRY = 600.0

    service: SignalingService
    clock: task.Clock
    port: int
    admin_port: int
    admin: Any = None
    clients: list[RecordingClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def connect(self, path: str = "/", raw: bool = False) -> RecordingClient:
        client = await connect(self.url + path, raw=raw)
        self.clients.append(client)
        return client

    async def stop(self) -> None:
        for client in self.clients:
            client.dropConnection(abort=True)
        if self.admin is not None:
            await with_timeout(defer.maybeDeferred(self.admin.stopListening), 5)
        await with_timeout(self.service.stopService(), 10)


async def start_in_process(
    name: str, redis_url: str, hooks: object = None, **settings: Any
) -> InProcessNode:
    """A node named ``name`` on ``redis_url`` with these `SignalingConfig`
    settings (no list rate limit, no message rate limit, no pings unless
    given) and game server ``hooks``, started and registered in Redis."""
    defaults: dict[str, Any] = {
        "cluster_period": InProcessNode.EXPIRY / 2,
        "cluster_expiry": InProcessNode.EXPIRY,
        "ping_interval": 0,
        "max_message_rate": 0,
        "max_list_rate": 0,
    }
    config = SignalingConfig(redis_url=redis_url, node_id=name, **{**defaults, **settings})
    clock = task.Clock()
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    service = SignalingService(config, endpoint, clock=clock, hooks=hooks)
    service.startService()
    port = (await with_timeout(service.listening, 10)).getHost().port
    resource = AdminResource(
        service.admin_control, ADMIN_TOKEN, clock=clock, max_lobby_size=config.max_lobby_size
    )
    admin_endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    admin = await with_timeout(admin_endpoint.listen(AdminSite(resource)), 10)
    node = InProcessNode(service, clock, port, admin.getHost().port, admin)
    assert service.node is not None
    for _ in range(400):  # 20 s at most
        if service.node.bus.up:
            return node
        await task.deferLater(_reactor(), 0.05)
    await node.stop()
    raise AssertionError(f"node {name} did not reach redis")
