"""The server's log lines, made from its events: one line per thing that
happened, never per relayed message. Lines a client can cause at will (a
refusal, a close for a protocol error or a limit) go through the server's
`LogLimits`: one line per kind (reason and address), then a summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import LogLevel

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
from ..protocol.hooks import PeerInfo
from ..protocol.messages import HOST_ID
from .log_limits import LogLimits
from .logs import QuietLogger, logged

# Per-connection lines are debug: a QuietLogger does not even build them
# below the log level (see logs.py).
_log = QuietLogger(namespace="webrtc_signal")


class LogObserver:
    """The server's log lines, made from its events: one line per thing that
    happened, never per relayed message. A member closed because its lobby
    closed gets no line of its own: the lobby's line says it."""

    def __init__(self, limits: LogLimits) -> None:
        self._limits = limits
        # The lobby whose members' PeerDisconnected events come next (see
        # the order in `webrtc_signal.protocol.events`).
        self._closed_lobby: str | None = None
        # Reserved lobbies not claimed yet, to tell a claim from a creation.
        self._reserved: set[str] = set()
        # One method per event type: cheaper than matching on every event,
        # and connections come and go often.
        self._lines: dict[type, Callable[[Any], None]] = {
            PeerConnected: self._connected,
            PeerDisconnected: self._disconnected,
            LobbyCreated: self._created,
            PeerJoined: self._joined,
            LobbySealed: self._sealed,
            LobbyClosed: self._closed,
            ConnectionRefused: self._refused,
        }

    def __call__(self, event: Event) -> None:
        line = self._lines.get(type(event))
        if type(event) is not PeerDisconnected:
            self._closed_lobby = None
        if line is not None:
            line(event)

    def _connected(self, event: PeerConnected) -> None:
        _line(LogLevel.debug, "peer {peer_id} connected from {address}", "connected", event.peer)

    def _disconnected(self, event: PeerDisconnected) -> None:
        peer = event.peer
        if peer.lobby is not None and peer.lobby == self._closed_lobby:
            return
        self._closed_lobby = None
        if not event.by_server:
            # A player leaving is per-connection detail.
            text = "peer {peer_id} disconnected (lobby {lobby})"
            fields = {"lobby": peer.lobby, "close_code": event.code, "reason": event.reason}
            _line(LogLevel.debug, text, "left", peer, **fields)
            return
        # A refusal or protocol error is worth a line at info, once per kind.
        self._limits.emit(
            LogLevel.info,
            event.reason,
            peer.address,
            "closing peer {peer_id} (lobby {lobby}): {close_code} {reason}",
            **_fields("closed", peer, lobby=peer.lobby, close_code=event.code, reason=event.reason),
        )

    def _created(self, event: LobbyCreated) -> None:
        mode = event.mode
        if event.host is None:
            self._reserved.add(event.lobby)
            text, kind = "{mode} lobby {lobby} reserved", "lobby reserved"
        else:
            text, kind = "peer {peer_id} created {mode} lobby {lobby}", "lobby created"
        _line(LogLevel.info, text, kind, event.host, lobby=event.lobby, mode=mode)

    def _joined(self, event: PeerJoined) -> None:
        peer = event.peer
        if peer.lobby_id != HOST_ID:
            text, kind = "peer {peer_id} joined lobby {lobby} (members: {members})", "lobby joined"
        elif event.lobby in self._reserved:
            self._reserved.discard(event.lobby)
            text, kind = "peer {peer_id} claimed reserved lobby {lobby}", "lobby claimed"
        else:
            return  # a creator's join, which "lobby created" told
        _line(LogLevel.info, text, kind, peer, lobby=event.lobby, members=event.members)

    def _sealed(self, event: LobbySealed) -> None:
        text = "lobby {lobby} sealed (members: {members})"
        _line(LogLevel.info, text, "lobby sealed", lobby=event.lobby, members=event.members)

    def _closed(self, event: LobbyClosed) -> None:
        self._closed_lobby = event.lobby
        self._reserved.discard(event.lobby)
        _line(
            LogLevel.info,
            "lobby {lobby} deleted: {reason}",
            "lobby deleted",
            lobby=event.lobby,
            close_code=event.code,
            reason=event.reason,
        )

    def _refused(self, event: ConnectionRefused) -> None:
        self._limits.emit(
            LogLevel.info,
            event.reason,
            event.address,
            "connection from {address} refused: {close_code} {reason}",
            **_fields("refused", address=event.address, close_code=event.code, reason=event.reason),
        )


def _line(
    level: LogLevel,
    text: str,
    kind: str,
    peer: PeerInfo | None = None,
    **values: Any,
) -> None:
    """One log line, with the fields of `_fields` (not even made below the
    log level: per-connection lines come and go with every player)."""
    if logged(level):
        _log.emit(level, text, **_fields(kind, peer, **values))


def _fields(
    kind: str,
    peer: PeerInfo | None = None,
    *,
    address: str = "",
    lobby: str | None = None,
    members: int = 0,
    mode: str = "",
    close_code: int | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Every line carries the same fields, so that JSON logs are one schema
    to query; what does not apply is 0, "", "-" or null."""
    return {
        "event_kind": kind,
        "peer_id": peer.peer_id if peer is not None else 0,
        "address": peer.address if peer is not None else address,
        "lobby": lobby or "-",
        "members": members,
        "mode": mode,
        "close_code": close_code,
        "reason": reason,
    }
