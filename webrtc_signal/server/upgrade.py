"""The WebSocket upgrade of a connection: the admission checks, the game
server's ``authenticate`` hook, and refusals answered as HTTP with one log
line of ours (none of Autobahn's)."""

from __future__ import annotations

from typing import Any, Protocol

from autobahn.websocket.types import ConnectionDeny
from autobahn.websocket.types import ConnectionRequest as AutobahnRequest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ..protocol.access import normalize_address
from ..protocol.hooks import ConnectionRequest
from ..protocol.pools import BadLobbyRequest, LobbyRequest, parse_lobby_request
from ..protocol.reasons import UpgradeRefusal
from . import _internals as internals
from .admission import UpgradeRefused
from .connection_output import ConnectionOutput, peer_host
from .logs import QuietLogger

_log = QuietLogger(namespace="webrtc_signal")


class FrontDoorLike(Protocol):
    def upgraded(self) -> None: ...


class UpgradeHandling(ConnectionOutput):
    # The client's address after any trusted proxy header, set at the upgrade.
    real_address = ""
    # The key this connection is counted under per address ("" = not counted).
    counted_key = ""
    # What the authenticate hook said, and its answer while it is awaited.
    identity: object = None
    authenticating: Deferred[Any] | None = None
    # The connection was lost (possibly before the handshake finished).
    gone = False
    # The standalone port's front door, told when the upgrade completes.
    front: FrontDoorLike | None = None
    # What the URL asks of the lobby (a quick-match pool, a listing).
    lobby_request: LobbyRequest | None = None
    # The body of a refusal that explains itself (which parameter is bad).
    refusal_body = b""

    def onConnect(  # type: ignore[override]  # Autobahn accepts a Deferred of its answer
        self, request: AutobahnRequest
    ) -> Deferred[None] | None:
        factory = self.factory
        engine = factory.engine
        admission = factory.admission
        self.real_address = address = admission.client_address(
            peer_host(self.transport), request.headers.get("x-forwarded-for")
        )
        try:
            # Autobahn reports a missing Origin header as "".
            self.counted_key = admission.admit(
                address,
                request.origin or None,
                internals.connection_count(factory),
                engine.core.draining,
            )
            self.lobby_request = self._lobby_request(request)
            answer = admission.authenticate(
                ConnectionRequest(
                    address, request.path, request.params, request.headers, request.origin
                )
            )
        except UpgradeRefused as refusal:
            raise ConnectionDeny(refusal.status, refusal.reason) from None
        if answer is None:
            return None
        self.authenticating = answer
        return answer.addCallbacks(self._authenticated, self._refused)

    def _lobby_request(self, request: AutobahnRequest) -> LobbyRequest | None:
        """What the URL asks of the lobby; `UpgradeRefused` (400) naming the
        bad parameter, before the game server is asked anything."""
        core = self.factory.engine.core
        try:
            return parse_lobby_request(request.path, request.params, core.config.max_lobby_size)
        except BadLobbyRequest as bad:
            self.refusal_body = f"{bad}\n".encode()
            raise self.factory.admission.refuse(UpgradeRefusal.BAD_REQUEST) from None

    def _authenticated(self, identity: object) -> Deferred[None] | None:
        self.authenticating = None
        if self.gone:
            return Deferred()  # nobody to open: never answered, collected with it
        self.identity = identity
        return None

    def _refused(self, failure: Failure) -> Deferred[None]:
        self.authenticating = None
        if self.gone or not failure.check(UpgradeRefused):
            return Deferred()
        refusal: UpgradeRefused = failure.value  # type: ignore[assignment]
        raise ConnectionDeny(refusal.status, refusal.reason)

    def client_address(self) -> str:
        """The client's IP address, as text ("" if the transport has none)."""
        return self.real_address or normalize_address(peer_host(self.transport))

    def failHandshake(
        self, reason: str, code: int = 400, responseHeaders: object | None = None
    ) -> None:
        """Answer a refused upgrade with its HTTP status and close, as
        Autobahn does, but without its two log lines (the refusal has its
        own, once; see admission): an HTTP answer is how such an exchange is
        meant to end."""
        internals.mark_ended_cleanly(self)
        _log.debug("refused an upgrade: {code} {reason}", code=code, reason=reason)
        body = self.refusal_body
        if body:
            # Which parameter was wrong, for the developer reading the answer.
            responseHeaders = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ]
        self.sendHttpErrorResponse(code, reason, responseHeaders)  # type: ignore[no-untyped-call]
        if body:
            self.sendData(body)
        self.dropConnection(abort=False)
