"""A game server's hooks and observers, as the adapter runs them.

The hooks object (``SignalingService(..., hooks=...)``) may have either or
both methods of `Hooks`; a missing one allows everything. Here they are
wrapped so that whatever a hook does, the server goes on: a `Refused` is an
answer, anything else is logged and refuses (500 at the upgrade, 1011 on a
JOIN). `LogObserver` turns the core's events into the server's log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ..protocol.events import (
    ConnectionRefused,
    Event,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
)
from ..protocol.hooks import ConnectionRequest, JoinPolicy, PeerInfo, Refused
from ..protocol.messages import HOST_ID
from ..protocol.reasons import CustomReason, Reason

_log = Logger(namespace="webrtc_signal")

# A hook that failed: the peer did nothing wrong, the server did (RFC 6455, 7.4.1).
INTERNAL_ERROR = CustomReason(1011, "Internal server error")
# A close frame's reason has room for 123 bytes of UTF-8.
_MAX_REASON_BYTES = 123

Observer = Callable[[Event], object]


class Hooks(Protocol):
    """What a hooks object may have; every method is optional."""

    def authenticate(self, request: ConnectionRequest) -> object | Deferred[object]:
        """Called during the WebSocket opening handshake: return the peer's
        identity (any object, None = anonymous), or a Deferred of it, or raise
        `Refused` (also as a failed Deferred) to answer the upgrade with its
        HTTP status and reason."""

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        """Called before a JOIN is applied (``lobby`` is "" when creating);
        raise `Refused` to close the peer with 4000 and its reason."""


def close_reason(code: int, text: str) -> CustomReason:
    """A close with ``text`` cut to what a close frame carries."""
    data = text.encode("utf-8")
    if len(data) > _MAX_REASON_BYTES:
        text = data[:_MAX_REASON_BYTES].decode("utf-8", errors="ignore")
    return CustomReason(code, text)


def join_policy(hooks: object) -> JoinPolicy | None:
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


class LogObserver:
    """The server's log lines, made from its events: one line per thing that
    happened, never per relayed message. A member closed because its lobby
    closed gets no line of its own: the lobby's line says it."""

    def __init__(self) -> None:
        # The lobby whose members' PeerDisconnected events come next (see
        # the order in `webrtc_signal.protocol.events`).
        self._closed_lobby: str | None = None
        # Reserved lobbies not claimed yet, to tell a claim from a creation.
        self._reserved: set[str] = set()

    def __call__(self, event: Event) -> None:
        closed_lobby, self._closed_lobby = self._closed_lobby, None
        match event:
            case PeerConnected(peer):
                _emit(LogLevel.info, "connected", "peer {peer_id} connected from {address}", peer)
            case PeerDisconnected(peer, code, reason):
                if peer.lobby is not None and peer.lobby == closed_lobby:
                    self._closed_lobby = closed_lobby
                elif event.by_server:
                    _emit(
                        LogLevel.info,
                        "closed",
                        "closing peer {peer_id} (lobby {lobby}): {close_code} {reason}",
                        peer,
                        close_code=code,
                        reason=reason,
                    )
                else:
                    _emit(
                        LogLevel.info,
                        "left",
                        "peer {peer_id} disconnected (lobby {lobby})",
                        peer,
                        close_code=code,
                        reason=reason,
                    )
            case LobbyCreated(lobby, host, mesh) if host is not None:
                _emit(
                    LogLevel.info,
                    "lobby created",
                    "peer {peer_id} created {mode} lobby {lobby}",
                    host,
                    mode=_mode(mesh),
                )
            case LobbyCreated(lobby, _, mesh):
                self._reserved.add(lobby)
                _emit(
                    LogLevel.info,
                    "lobby reserved",
                    "{mode} lobby {lobby} reserved",
                    None,
                    lobby=lobby,
                    mode=_mode(mesh),
                )
            case PeerJoined(lobby, peer, members):
                if peer.lobby_id != HOST_ID:
                    _emit(
                        LogLevel.info,
                        "lobby joined",
                        "peer {peer_id} joined lobby {lobby} (members: {members})",
                        peer,
                        members=members,
                    )
                elif lobby in self._reserved:
                    self._reserved.discard(lobby)
                    _emit(
                        LogLevel.info,
                        "lobby claimed",
                        "peer {peer_id} claimed reserved lobby {lobby}",
                        peer,
                    )
                # else: a creator's join, which "lobby created" told.
            case LobbySealed(lobby, members):
                _emit(
                    LogLevel.info,
                    "lobby sealed",
                    "lobby {lobby} sealed (members: {members})",
                    None,
                    lobby=lobby,
                    members=members,
                )
            case LobbyClosed(lobby, reason):
                self._closed_lobby = lobby
                self._reserved.discard(lobby)
                _emit(
                    LogLevel.info,
                    "lobby deleted",
                    "lobby {lobby} deleted: {reason}",
                    None,
                    lobby=lobby,
                    reason=reason,
                )
            case ConnectionRefused(address, code, reason):
                _emit(
                    LogLevel.warn,
                    "refused",
                    "connection from {address} refused: {close_code} {reason}",
                    None,
                    address=address,
                    close_code=code,
                    reason=reason,
                )


def _emit(level: LogLevel, kind: str, text: str, peer: PeerInfo | None, **fields: Any) -> None:
    if peer is not None:
        fields.setdefault("peer_id", peer.peer_id)
        fields.setdefault("address", peer.address)
        fields.setdefault("lobby", peer.lobby or "-")
    _log.emit(level, text, event_kind=kind, **fields)


def _mode(mesh: bool) -> str:
    return "mesh" if mesh else "client-server"
