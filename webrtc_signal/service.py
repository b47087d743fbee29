"""`SignalingService`: what twistd runs and what a game server embeds.

This is where the layers meet: the core (`protocol`), the engine that runs
it, the WebSocket adapter and web resources (`server`), and, when the
settings name a Redis, the cluster node (`cluster`) that shares lobbies with
other processes. Nothing below this module knows which of those it is part
of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from . import __version__
from .config import SignalingConfig
from .protocol.core import Signaling
from .protocol.hooks import LobbyInfo
from .protocol.reasons import CloseReason
from .server import web
from .server.admission import Admission, HandshakeLimits
from .server.drain import Drain
from .server.engine import ConnectionHandle, Engine
from .server.event_log import LogObserver
from .server.front import FrontDoorFactory
from .server.game_hooks import Hooks, join_policy
from .server.ice_servers import Authenticate, IceServers, IceServersResource
from .server.lobbies import LOBBIES_PATH, LobbiesResource, LocalLobbies, peer_address
from .server.log_limits import LogLimits
from .server.metrics import SignalingMetrics
from .server.observers import Observer
from .server.pool_metrics import PoolMetrics
from .server.websocket import SignalingServerFactory

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .cluster.node import ClusterNode
    from .server.admin import Control as AdminControl

_log = Logger(namespace="webrtc_signal")


class SignalingService(Service):
    """A signaling server with a lifetime.

    Give it an ``endpoint`` to listen on a port of its own, or none and mount
    `resources()` on an existing ``twisted.web`` site. Either way, add it to
    your service tree: stopping it closes every client with 1001 and cancels
    every timer, and `stopService` fires once the clients are gone (or after
    ``shutdown_timeout`` seconds).

    A game server takes part through ``hooks`` (an object with
    ``authenticate`` and/or ``authorize_join``; e.g.
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
        hooks: Hooks | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ):
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.config = config = config or SignalingConfig()
        self.clock = clock
        self.node: ClusterNode | None = None
        sources: dict[str, Any] = {}
        if config.cluster.redis_url:
            # Imported only here: a single server never loads txredisapi.
            from .cluster.node import ClusterNode

            self.node = ClusterNode(config.cluster, config.core.max_lobbies, clock)
            sources = self.node.sources()
        # Its handles: this server's connections, and a cluster's remote peers.
        core: Signaling[ConnectionHandle] = Signaling(
            config.core, authorize_join=join_policy(hooks), **sources
        )
        self.engine = engine = Engine(core, config.server, clock)
        # The server's log first, then its metrics (an observer that only
        # adds to integers); the game server adds its own.
        # One throttle for every log line a client can cause.
        self.log_limits = LogLimits(clock, ipv6_prefix=config.core.ipv6_prefix)
        engine.observers.add(LogObserver(self.log_limits))
        self.metrics = SignalingMetrics(core, clock, engine.traffic, metrics_registry)
        engine.observers.add(self.metrics.observe)
        self.admission = Admission(
            config.server,
            config.core.ipv6_prefix,
            engine.traffic,
            engine.run,
            hooks,
            log_limits=self.log_limits,
        )
        self.factory = SignalingServerFactory(engine, self.admission)
        # Who may fetch /ice-servers: query -> identity, or raise Unauthorized.
        # Hooks that check tokens (TokenAuth) check them there too, unless
        # the embedder says otherwise.
        if authenticate_ice is None:
            authenticate_ice = getattr(hooks, "authenticate_ice", None)
        self.ice = IceServers(config.ice, clock, authenticate_ice)
        # GET /lobbies: this server's listed lobbies (a cluster node may set
        # ``lobbies_resource.directory`` to one spanning every node); read
        # with the same check as /ice-servers.
        self.lobbies_resource = LobbiesResource(
            LocalLobbies(core),
            clock,
            rate=config.server.max_list_rate,
            ipv6_prefix=config.core.ipv6_prefix,
            client_address=self._http_client_address,
            authenticate=authenticate_ice,
        )
        self.pool_metrics = PoolMetrics(
            core, clock, lambda: self.lobbies_resource.answers, self.metrics.registry
        )
        engine.observers.add(self.pool_metrics.observe)
        if self.node is not None:
            self.node.attach(engine)
            # The list spans every node of the cluster.
            self.lobbies_resource.directory = self.node.lobby_directory()
            self.node.register_metrics(self.metrics.registry)
        self.endpoint = endpoint
        self.shutdown_timeout = shutdown_timeout
        self.port: IListeningPort | None = None
        # Fires with the port (None without an endpoint) once the service
        # listens; safe to take before the service starts.
        self.listening: Deferred[IListeningPort | None] = Deferred()
        # Set once a start has asked the endpoint to listen, so that twistd's
        # privilegedStartService and startService listen only once.
        self._listen_started = False

    # -- what an embedding site mounts ---------------------------------------------

    def resource(self) -> WebSocketResource:
        """A ``twisted.web`` resource that speaks the signaling protocol, to
        ``putChild`` beside the game's other resources."""
        return WebSocketResource(self.factory)

    def resources(self) -> dict[bytes, Resource]:
        """Every resource the standalone port serves, by the name it serves
        it under: the WebSocket (``b"signal"``, `resource`), ``b"healthz"``,
        ``b"ice-servers"``, ``b"lobbies"`` (the public lobby list) and, with
        the demo on, the demo's page and files (``b"demo"``). ``putChild``
        those a site wants."""
        found: dict[bytes, Resource] = {
            b"signal": cast(Resource, self.resource()),
            **self._http_resources(),
        }
        if self.config.server.serve_demo:
            found[b"demo"] = web.DemoResource()
        return found

    def _http_resources(self) -> dict[bytes, Resource]:
        return {
            web.HEALTH_PATH: web.HealthResource(self.health),
            web.ICE_SERVERS_PATH: self.ice_servers_resource(),
            LOBBIES_PATH: self.lobbies_resource,
        }

    def _http_client_address(self, request: Any) -> str:
        """The client a plain HTTP request stands for, as for an upgrade."""
        return self.admission.client_address(
            peer_address(request), request.getHeader("x-forwarded-for")
        )

    def site(self) -> web.SignalingSite:
        """The web site the standalone port answers plain HTTP requests with."""
        root = web.SignalingRoot(self._http_resources(), self.config.server.serve_demo)
        # An HTTP connection holds a handshake slot of its address while it
        # lasts: silence ends it as soon as an upgrade would have to be done.
        idle = self.config.server.handshake_timeout or web.DEFAULT_IDLE_TIMEOUT
        return web.SignalingSite(root, self.clock, idle)

    def ice_servers(self, identity: object = None) -> list[dict[str, Any]]:
        """The ``iceServers`` list for a client, with TURN credentials minted
        now: what ``GET /ice-servers`` answers. ``identity`` (a string, or
        an object with a ``subject``) names the TURN user; None, a random tag."""
        return self.ice.servers(identity)

    def ice_servers_resource(self) -> IceServersResource:
        """``GET /ice-servers`` as a ``twisted.web`` resource, to
        ``putChild(b"ice-servers", ...)`` beside `resource()`."""
        return IceServersResource(self.ice)

    def health(self) -> dict[str, str | int]:
        """What ``GET /healthz`` answers (see `Engine.health`)."""
        return self.engine.health()

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
        self.engine.observers.add(observer)

    def remove_observer(self, observer: Observer) -> None:
        self.engine.observers.remove(observer)

    # -- control -------------------------------------------------------------------

    def lobbies(self) -> list[LobbyInfo]:
        """Every lobby now, reserved ones included."""
        return self.engine.control.lobbies()

    def lobby(self, name: str) -> LobbyInfo | None:
        return self.engine.control.lobby(name)

    def close_lobby(self, name: str, reason: str = CloseReason.CLOSED_BY_SERVER.text) -> bool:
        """Close every member of lobby ``name`` with 4000 and ``reason``; the
        lobby is gone (`LobbyClosed` follows). False if there is no such lobby."""
        return self.engine.control.close_lobby(name, reason)

    def seal_lobby(self, name: str) -> bool:
        """Seal lobby ``name`` as if its host had: every member gets SEAL, no
        one may join any more, and after the seal timeout its members are
        closed with 1000 `Seal complete`. Sealing a sealed lobby changes
        nothing; an unclaimed reservation is sealed too (nobody can claim it
        any more; it ends at its seal timeout or its reservation's end,
        whichever is first). False if there is no such lobby."""
        return self.engine.control.seal_lobby(name)

    def kick(self, peer_id: int, reason: str = CloseReason.KICKED.text) -> bool:
        """Close peer ``peer_id`` (`PeerInfo.peer_id`) with 4000 and
        ``reason``. Its lobby sees it go as if it had disconnected (a host's
        lobby closes). False if there is no such peer."""
        return self.engine.control.kick(peer_id, reason)

    @property
    def admin_control(self) -> AdminControl:
        """What the admin API (`server.admin.AdminResource`) drives: these
        control methods on a single server; on a cluster node, every lobby of
        the cluster (a command goes to the lobby's node through the bus, and
        the answers are Deferreds). The methods above stay this node's own."""
        if self.node is not None:
            return self.node.control
        return self.engine.control

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0, size: int | None = None) -> str:
        """Create a lobby before its host and return its name, to hand to the
        players a matchmaker picked. The first JOIN of that name makes its
        host (id 1, in this lobby's mode); later ones join as usual.
        Unclaimed after ``ttl`` seconds it is gone. ``size`` limits its
        members (host included) instead of ``max_lobby_size``. It counts
        against ``max_lobbies``: at the limit this raises `Refused` (status 503)."""
        return self.engine.control.reserve_lobby(mesh, ttl, size)

    # -- lifetime ------------------------------------------------------------------

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

    def startService(self) -> None:
        """Start the service; listen on ``endpoint`` unless
        `privilegedStartService` already did (an embedder that only calls
        ``startService`` gets the same)."""
        if not self._listen_started:
            self._listen()
        if self.node is not None:
            self.node.start()
        super().startService()  # type: ignore[no-untyped-call]

    def port_factory(self) -> FrontDoorFactory:
        """What the service's own port serves: WebSocket upgrades and the
        web resources, behind the front door."""
        server = self.config.server
        handshakes = HandshakeLimits(
            server, self.config.core.ipv6_prefix, self.engine.traffic, self.log_limits
        )
        return FrontDoorFactory(self.factory, self.site(), handshakes, self.clock)

    def _listen(self) -> None:
        if self.listening.called:
            # Started again after a stop: a fresh Deferred for the new port.
            self.listening = Deferred()
        if self.endpoint is None:
            self._listen_started = True
            self.listening.callback(None)
            return
        waiting = self.endpoint.listen(self.port_factory())
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

    @property
    def drain(self) -> Drain | None:
        """The drain under way, if any."""
        return self.engine.drain

    def stopService(self) -> Deferred[None]:
        """Stop: at once, or with ``drain_timeout`` set in the config, once
        the open lobbies are gone or the timeout has passed (see drain.py).
        Either way every client left is closed with 1001."""
        super().stopService()  # type: ignore[no-untyped-call]
        self._listen_started = False
        timeout = self.config.server.drain_timeout
        engine = self.engine
        if timeout > 0 and engine.core.accepting and engine.drain is None:
            # The port stays open meanwhile: newcomers get 503, /healthz "draining".
            ended = engine.start_drain(timeout)
            return ended.addCallback(lambda _: self._stop())
        return self._stop()

    def end_drain(self) -> None:
        """End a drain under way now (twistd: on a second SIGTERM)."""
        if self.engine.drain is not None:
            self.engine.drain.end_now()

    def _stop(self) -> Deferred[None]:
        port, self.port = self.port, None
        stopped = maybeDeferred(port.stopListening) if port is not None else None
        closed = self.engine.shutdown(self.shutdown_timeout)
        if stopped is not None:
            closed.addCallback(lambda _: stopped)
        node = self.node
        if node is not None:
            closed.addCallback(lambda _: node.stop())
        closed.addCallback(lambda _: _log.info("webrtc-signal stopped"))
        return closed
