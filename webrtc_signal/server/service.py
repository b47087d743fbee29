"""The Twisted service: what twistd runs, and what a game server embeds."""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.config import SignalingConfig
from .adapter import SignalingServerFactory
from .drain import Drain
from .health import health

_log = Logger(namespace="webrtc_signal")


class SignalingService(Service):
    """A signaling server with a lifetime.

    Give it an ``endpoint`` to listen on a port of its own, or none and mount
    `resource()` on an existing ``twisted.web`` site. Either way, add it to
    your service tree: stopping it closes every client with 1001 and cancels
    every timer, and `stopService` fires once the clients are gone (or after
    ``shutdown_timeout`` seconds).
    """

    name = "webrtc-signal"

    def __init__(
        self,
        config: SignalingConfig | None = None,
        endpoint: IStreamServerEndpoint | None = None,
        clock: IReactorTime | None = None,
        shutdown_timeout: float = 5.0,
    ):
        self.factory = SignalingServerFactory(config, clock)
        self.endpoint = endpoint
        self.shutdown_timeout = shutdown_timeout
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort | None] = Deferred()
        self.drain: Drain | None = None

    def resource(self) -> WebSocketResource:
        """A ``twisted.web`` resource that speaks the signaling protocol, to
        ``putChild`` beside the game's other resources."""
        return WebSocketResource(self.factory)

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
        """Stop: at once, or with ``drain_timeout`` set in the config, once
        the open lobbies are gone or the timeout has passed (see drain.py).
        Either way every client left is closed with 1001."""
        super().stopService()
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
        closed.addCallback(lambda _: _log.info("webrtc-signal stopped"))
        return closed
