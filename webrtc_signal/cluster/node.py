"""A cluster node: what makes a server one of several sharing lobbies
through Redis (docs/cluster.md). The service builds one when its settings
name a Redis: the node gives the core its sources of names and ids, then
joins the engine as its router."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from ..protocol.names import RandomLobbyNames
from ..server.engine import ConnectionHandle, Engine
from .bridge import ClusterBridge
from .config import ClusterConfig
from .control import ClusterControl
from .ids import ClusterPeerIds
from .listing import ClusterLobbyDirectory
from .redis_bus import RedisBus


class ClusterNode:
    def __init__(self, config: ClusterConfig, max_lobbies: int, clock: IReactorTime) -> None:
        self.config = config
        self.max_lobbies = max_lobbies
        self.clock = clock
        self.node_id = config.node_id or f"node-{secrets.token_hex(4)}"
        self.bus = RedisBus(
            config.redis_url, self.node_id, clock, config.cluster_period, config.cluster_expiry
        )
        # Peer ids unique cluster-wide; lobby names are claimed in Redis
        # before a lobby is created, so the single server's source serves.
        self.peer_ids = ClusterPeerIds(self.bus, random.Random())
        self.lobby_names = RandomLobbyNames()
        self.bridge: ClusterBridge | None = None

    def sources(self) -> dict[str, Any]:
        """The core's constructor arguments for its names and ids."""
        return {"lobby_names": self.lobby_names, "peer_ids": self.peer_ids}

    def attach(self, engine: Engine[ConnectionHandle]) -> None:
        """Become ``engine``'s router."""
        self.bridge = ClusterBridge(
            engine,
            self.bus,
            self.peer_ids,
            self.lobby_names,
            self.max_lobbies,
            self.clock,
            self.config.cluster_period,
        )
        engine.router = self.bridge

    @property
    def control(self) -> ClusterControl:
        """What the admin API drives on this node: every lobby of the
        cluster (see `control`). Once `attach`ed."""
        assert self.bridge is not None, "attach the node to an engine first"
        return self.bridge.control

    def lobby_directory(self) -> ClusterLobbyDirectory:
        """``GET /lobbies`` across every node (see `listing`). Once `attach`ed."""
        assert self.bridge is not None, "attach the node to an engine first"
        return ClusterLobbyDirectory(self.bridge.core, self.bus)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Add this node's own metrics to ``registry`` (the service's)."""
        registry.register(ClusterMetrics(self))

    def connected(self) -> bool:
        """Whether this node reaches Redis, so that it can create lobbies and
        reach the others (what ``/healthz`` and the gauge tell)."""
        return self.bridge is not None and self.bridge.problem() is None

    def start(self) -> None:
        if self.bridge is not None:
            self.bridge.start()

    def stop(self) -> Deferred[Any]:
        if self.bridge is None:
            return succeed(None)
        stopped: Deferred[Any] = self.bridge.stop()
        return stopped


class ClusterMetrics(Collector):
    """``webrtc_signal_cluster_connected``, read at each scrape."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "webrtc_signal_cluster_connected",
            "1 while this cluster node reaches Redis and can create lobbies; 0 while it "
            "cannot (GET /healthz then answers 503 degraded).",
            value=1 if self.node.connected() else 0,
        )
