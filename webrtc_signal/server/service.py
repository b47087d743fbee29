"""The Twisted service: what twistd runs, and what a game server embeds."""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.config import SignalingConfig
from ..protocol.hooks import LobbyInfo
from ..protocol.reasons import CloseReason
from .adapter import SignalingServerFactory
from .hooks import Observer

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
    """

    name = "webrtc-signal"

    def __init__(
        self,
        config: SignalingConfig | None = None,
        endpoint: IStreamServerEndpoint | None = None,
        clock: IReactorTime | None = None,
        shutdown_timeout: float = 5.0,
        hooks: object = None,
    ):
        self.factory = SignalingServerFactory(config, clock, hooks=hooks)
        self.endpoint = endpoint
        self.shutdown_timeout = shutdown_timeout
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort | None] = Deferred()

    def resource(self) -> WebSocketResource:
        """A ``twisted.web`` resource that speaks the signaling protocol, to
        ``putChild`` beside the game's other resources."""
        return WebSocketResource(self.factory)

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

    def kick(self, peer_id: int, reason: str = CloseReason.KICKED.text) -> bool:
        """Close peer ``peer_id`` (`PeerInfo.peer_id`) with 4000 and
        ``reason``. Its lobby sees it go as if it had disconnected (a host's
        lobby closes). False if there is no such peer."""
        return self.factory.kick(peer_id, reason)

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0) -> str:
        """Create a lobby before its host and return its name, to hand to the
        players a matchmaker picked. The first JOIN of that name makes its
        host (id 1, in this lobby's mode); later ones join as usual.
        Unclaimed after ``ttl`` seconds it is gone. It counts against
        ``max_lobbies``: at the limit this raises `Refused` (status 503)."""
        return self.factory.reserve_lobby(mesh, ttl)

    # -- lifetime ------------------------------------------------------------------

    def startService(self) -> None:
        """Start listening on ``endpoint``, if there is one. `listening` fires
        with the port once it is open. A failure to listen that the endpoint
        reports at once (a port in use, say) is raised from here, so that a
        program starting the service stops instead of listening nowhere."""
        super().startService()
        if self.endpoint is None:
            self.listening = succeed(None)
            return
        self.listening = self.endpoint.listen(self.factory)
        self.listening.addCallback(self._listening)
        if self.listening.called and isinstance(self.listening.result, Failure):
            failure = self.listening.result
            # Raised here instead, so not "unhandled" in the Deferred.
            self.listening.addErrback(lambda _: None)
            self.running = False
            failure.raiseException()

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = port.getHost()
        _log.info(
            "webrtc-signal listening on {host} port {port}",
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", None),
        )
        return port

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        stopped = maybeDeferred(port.stopListening) if port is not None else None
        closed = self.factory.shutdown(self.shutdown_timeout)
        if stopped is not None:
            closed.addCallback(lambda _: stopped)
        closed.addCallback(lambda _: _log.info("webrtc-signal stopped"))
        return closed
