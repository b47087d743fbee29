"""Cluster nodes for the tests: real ``twistd -n webrtc-signal --redis ...``
processes on 127.0.0.1, each on a port the kernel picked (read from its
``--port-file``), all sharing one redis-server."""

from __future__ import annotations

from dataclasses import dataclass, field

from .processes import Spawned
from .twistd import start_twistd
from .wsclient import RecordingClient, connect, with_timeout

# Short liveness periods keep the fault tests quick (the defaults are 1 s / 3 s).
PERIOD = 0.2
EXPIRY = 0.8


@dataclass
class Node:
    node_id: str
    redis_url: str
    extra: list[str] = field(default_factory=list)
    process: Spawned | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process, (self.port,) = await start_twistd(
            "--redis", self.redis_url, "--node-id", self.node_id,
            "--cluster-period", str(PERIOD), "--cluster-expiry", str(EXPIRY),
            "--ping-interval", "0",
            *self.extra,
        )  # fmt: skip
        await self.process.wait_for("redis reachable", timeout=10)

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
