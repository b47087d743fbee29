"""A game server's hooks, as the server runs them.

The hooks object (``SignalingService(..., hooks=...)``) may have either or
both methods of `Hooks`; a missing one allows everything. Here they are
wrapped so that whatever a hook does, the server goes on: a `Refused` is an
answer, anything else is logged and refuses (500 at the upgrade, 1011 on a
JOIN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.hooks import ConnectionRequest, JoinPolicy, PeerInfo, Refused
from ..protocol.reasons import CustomReason, Reason
from .control import close_reason

_log = Logger(namespace="webrtc_signal")

# A hook that failed: the peer did nothing wrong, the server did (RFC 6455, 7.4.1).
INTERNAL_ERROR = CustomReason(1011, "Internal server error")


class Authenticator(Protocol):
    def authenticate(self, request: ConnectionRequest) -> object:
        """Called during the WebSocket opening handshake: return the peer's
        identity (any object, None = anonymous), or a Deferred of it, or raise
        `Refused` (also as a failed Deferred) to answer the upgrade with its
        HTTP status and reason."""


class JoinAuthorizer(Protocol):
    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        """Called before a JOIN is applied (``lobby`` is "" when creating);
        raise `Refused` to close the peer with 4000 and its reason."""


# A hooks object has either method or both (`webrtc_signal.TokenAuth` has both).
Hooks = Authenticator | JoinAuthorizer


def join_policy(hooks: Hooks | None) -> JoinPolicy | None:
    """The core's `JoinPolicy` for ``hooks.authorize_join``, if it has one."""
    method = getattr(hooks, "authorize_join", None)
    if method is None:
        return None

    def policy(peer: PeerInfo, lobby: str, create: bool) -> Reason | None:
        try:
            method(peer, lobby, create)
        except Refused as refusal:
            return close_reason(4000, refusal.reason)
        except Exception:
            _log.failure(
                "authorize_join failed for peer {peer_id} (lobby {lobby!r}): closing it",
                peer_id=peer.peer_id,
                lobby=lobby,
            )
            return INTERNAL_ERROR
        return None

    return policy


def authenticate(
    method: Callable[[ConnectionRequest], Any], request: ConnectionRequest
) -> Deferred[Any]:
    """Run ``method`` on ``request``: fires with the identity, or fails with
    `Refused` (the hook's own, or 500 for any other error, which is logged)."""
    running = maybeDeferred(method, request)

    def failed(failure: Failure) -> Failure:
        if failure.check(Refused, CancelledError):
            return failure
        _log.failure(
            "authenticate failed for a connection from {address}: refusing it (500)",
            failure,
            address=request.address,
        )
        return Failure(Refused("Internal server error", status=500))

    return running.addErrback(failed)
