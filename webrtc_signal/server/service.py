"""The Twisted service: what twistd runs, and what a game server embeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from .. import __version__
from ..protocol.config import SignalingConfig
from ..protocol.hooks import LobbyInfo
from ..protocol.reasons import CloseReason
from .adapter import SignalingServerFactory
from .drain import Drain
from .health import health
from .hooks import Observer
from .ice import Authenticate, IceServersResource
from .metrics import SignalingMetrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_log = Logger(namespace="webrtc_signal")


class SignalingService(Service):
    """A signaling server with a lifetime.

    Give it an ``endpoint`` to listen on a port of its own, or none and mount
    `resource()` on an existing ``twisted.web`` site. Either way, add it to
    your service tree: stopping it closes every client with 1001 and cancels
    every timer, and `stopService` fires once the clients are gone (or after
    ``shutdown_timeout`` seconds).

    A game server takes part through ``hooks`` (an object with
    ``authenticate`` and/or ``authorize_join``, see `hooks.Hooks`; e.g.
    `webrtc_signal.TokenAuth`), observers (`add_observer`: every event of
    `webrtc_signal.events`, in order) and the control methods below. All of
    them run in the reactor thread.

    Its Prometheus metrics (see `metrics`) are in ``metrics_registry``, by
    default a registry of its own (not prometheus_client's global one, so
    that two services in a process do not collide); `metrics_resource`
    serves them.
    """

    name = "webrtc-signal"

    def __init__(
        self,
        config: SignalingConfig | None = None,
        endpoint: IStreamServerEndpoint | None = None,
        clock: IReactorTime | None = None,
        shutdown_timeout: float = 5.0,
        authenticate_ice: Authenticate | None = None,
        hooks: object = None,
        metrics_registry: CollectorRegistry | None = None,
    ):
        self.factory = SignalingServerFactory(config, clock, hooks=hooks)
        # After the log: an observer that only adds to integers.
        self.metrics = SignalingMetrics(self.factory, metrics_registry)
        self.factory.add_observer(self.metrics.observe)
        # Who may fetch /ice-servers: query -> identity, or raise Unauthorized.
        # Hooks that check tokens (TokenAuth) check them there too, unless
        # the embedder says otherwise.
        if authenticate_ice is None:
            authenticate_ice = getattr(hooks, "authenticate_ice", None)
        self.factory.ice.authenticate = authenticate_ice
        config = self.factory.config
        if config.redis_url:
            self._make_cluster_node()
        self.endpoint = endpoint
        self.shutdown_timeout = shutdown_timeout
        self.port: IListeningPort | None = None
        # Fires with the port (None without an endpoint) once the service
        # listens; safe to take before the service starts.
        self.listening: Deferred[IListeningPort | None] = Deferred()
        # Set once a start has asked the endpoint to listen, so that twistd's
        # privilegedStartService and startService listen only once.
        self._listen_started = False
        self.drain: Drain | None = None

    def _make_cluster_node(self) -> None:
        """A node of a cluster (docs/cluster.md): imported only then, so a
        single node never needs txredisapi."""
        import secrets

        from ..cluster.bridge import ClusterBridge
        from ..cluster.redis_bus import RedisBus

        factory = self.factory
        config = factory.config
        node_id = config.node_id or f"node-{secrets.token_hex(4)}"
        bus = RedisBus(
            config.redis_url, node_id, factory.clock, config.cluster_period, config.cluster_expiry
        )
        factory.cluster = ClusterBridge(factory, bus, factory.clock, config.cluster_period)

    def resource(self) -> WebSocketResource:
        """A ``twisted.web`` resource that speaks the signaling protocol, to
        ``putChild`` beside the game's other resources."""
        return WebSocketResource(self.factory)

    def privilegedStartService(self) -> None:
        """Open the port, as Twisted's own StreamServerEndpointService does:
        twistd calls this before it drops root (``--uid``/``--gid``), so a
        port below 1024 can be opened and then served without privileges.
        `listening` fires with the port once it is open. A failure to listen
        that the endpoint reports at once (a port in use, say) is raised from
        here, so that a program starting the service stops instead of
        listening nowhere."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self._listen()

    def ice_servers(self, identity: object = None) -> list[dict[str, Any]]:
        """The ``iceServers`` list for a client, with TURN credentials minted
        now: what ``GET /ice-servers`` answers. ``identity`` (a string, or
        an object with a ``subject``) names the TURN user; None, a random tag."""
        return self.factory.ice.servers(identity)

    def ice_servers_resource(self) -> IceServersResource:
        """``GET /ice-servers`` as a ``twisted.web`` resource, to
        ``putChild(b"ice-servers", ...)`` beside `resource()`."""
        return IceServersResource(self.factory.ice)

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The ``prometheus_client`` registry holding this service's metrics."""
        return self.metrics.registry

    def metrics_resource(self) -> Resource:
        """``GET`` of the metrics in Prometheus' text format, as a
        ``twisted.web`` resource (prometheus_client's own), to ``putChild(b"metrics",
        ...)`` on a site that only the monitoring reaches, never the players'."""
        # Imported here: it imports the reactor, which must not be installed
        # by importing this module.
        from prometheus_client.twisted import MetricsResource

        resource: Resource = MetricsResource(self.metrics.registry)  # type: ignore[no-untyped-call,assignment]
        return resource

    # -- observers ---------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(event)`` for every event from now on, in order. An
        observer that raises is logged; the server and the other observers
        go on. It may call the control methods: their events come after the
        one being handed out."""
        self.factory.add_observer(observer)

    def remove_observer(self, observer: Observer) -> None:
        self.factory.remove_observer(observer)

    # -- control -------------------------------------------------------------------

    def lobbies(self) -> list[LobbyInfo]:
        """Every lobby now, reserved ones included."""
        return self.factory.lobbies()

    def lobby(self, name: str) -> LobbyInfo | None:
        return self.factory.lobby(name)

    def close_lobby(self, name: str, reason: str = CloseReason.CLOSED_BY_SERVER.text) -> bool:
        """Close every member of lobby ``name`` with 4000 and ``reason``; the
        lobby is gone (`LobbyClosed` follows). False if there is no such lobby."""
        return self.factory.close_lobby(name, reason)

    def seal_lobby(self, name: str) -> bool:
        """Seal lobby ``name`` as if its host had: every member gets SEAL, no
        one may join any more, and after the seal timeout its members are
        closed with 1000 `Seal complete`. Sealing a sealed lobby changes
        nothing; an unclaimed reservation is sealed too (nobody can claim it
        any more; it ends at its seal timeout or its reservation's end,
        whichever is first). False if there is no such lobby."""
        return self.factory.seal_lobby(name)

    def kick(self, peer_id: int, reason: str = CloseReason.KICKED.text) -> bool:
        """Close peer ``peer_id`` (`PeerInfo.peer_id`) with 4000 and
        ``reason``. Its lobby sees it go as if it had disconnected (a host's
        lobby closes). False if there is no such peer."""
        return self.factory.kick(peer_id, reason)

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0, size: int | None = None) -> str:
        """Create a lobby before its host and return its name, to hand to the
        players a matchmaker picked. The first JOIN of that name makes its
        host (id 1, in this lobby's mode); later ones join as usual.
        Unclaimed after ``ttl`` seconds it is gone. ``size`` limits its
        members (host included) instead of ``max_lobby_size``. It counts
        against ``max_lobbies``: at the limit this raises `Refused` (status 503)."""
        return self.factory.reserve_lobby(mesh, ttl, size)

    # -- lifetime ------------------------------------------------------------------

    def startService(self) -> None:
        """Start the service; listen on ``endpoint`` unless
        `privilegedStartService` already did (an embedder that only calls
        ``startService`` gets the same)."""
        if not self._listen_started:
            self._listen()
        if self.factory.cluster is not None:
            self.factory.cluster.start()
        super().startService()  # type: ignore[no-untyped-call]

    def _listen(self) -> None:
        if self.listening.called:
            # Started again after a stop: a fresh Deferred for the new port.
            self.listening = Deferred()
        if self.endpoint is None:
            self._listen_started = True
            self.listening.callback(None)
            return
        waiting = self.endpoint.listen(self.factory)
        waiting.addCallback(self._listening)
        if waiting.called and isinstance(waiting.result, Failure):
            failure = waiting.result
            # Raised here instead, so not "unhandled" in the Deferred.
            waiting.addErrback(lambda _: None)
            failure.raiseException()
        self._listen_started = True
        waiting.chainDeferred(self.listening)  # type: ignore[arg-type]

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = port.getHost()
        _log.info(
            "webrtc-signal {version} listening on {host} port {port}",
            version=__version__,
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", None),
        )
        return port

    def stopService(self) -> Deferred[None]:
        """Stop: at once, or with ``drain_timeout`` set in the config, once
        the open lobbies are gone or the timeout has passed (see drain.py).
        Either way every client left is closed with 1001."""
        super().stopService()  # type: ignore[no-untyped-call]
        self._listen_started = False
        timeout = self.factory.config.drain_timeout
        if timeout > 0 and self.factory.signaling.accepting and self.drain is None:
            # The port stays open meanwhile: newcomers get 503, /healthz "draining".
            self.drain = Drain(self.factory, timeout)
            ended = self.drain.start()
            return ended.addCallback(lambda _: self._stop())
        return self._stop()

    def end_drain(self) -> None:
        """End a drain under way now (twistd: on a second SIGTERM)."""
        if self.drain is not None:
            self.drain.end_now()

    def health(self) -> dict[str, str | int]:
        """What ``GET /healthz`` answers on the service's own port, for a
        program that mounts `resource()` on its own site."""
        return health(self.factory.signaling)

    def _stop(self) -> Deferred[None]:
        port, self.port = self.port, None
        stopped = maybeDeferred(port.stopListening) if port is not None else None
        closed = self.factory.shutdown(self.shutdown_timeout)
        if stopped is not None:
            closed.addCallback(lambda _: stopped)
        cluster = self.factory.cluster
        if cluster is not None:
            closed.addCallback(lambda _: cluster.stop())
        closed.addCallback(lambda _: _log.info("webrtc-signal stopped"))
        return closed
