"""The control API: what a game server (``SignalingService``), the admin API
and the cluster may ask of a running server, in the reactor thread.

Each method turns into a call of the core, whose outputs run at once
(``run_now``); the answers are frozen snapshots (`LobbyInfo`), never the
core's own objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from twisted.internet.interfaces import IReactorTime

from ..protocol.core import Signaling
from ..protocol.events import Event, LobbyClosed, LobbyCreated
from ..protocol.hooks import LobbyInfo, Refused
from ..protocol.reasons import CloseReason, CustomReason
from ..protocol.state import Output

H = TypeVar("H")

# A close frame's reason has room for 123 bytes of UTF-8.
MAX_REASON_BYTES = 123


def close_reason(code: int, text: str) -> CustomReason:
    """A close with ``text`` cut to what a close frame carries."""
    data = text.encode("utf-8")
    if len(data) > MAX_REASON_BYTES:
        text = data[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")
    return CustomReason(code, text)


class Control(Generic[H]):
    def __init__(
        self,
        core: Signaling[H],
        clock: IReactorTime,
        run_now: Callable[[Iterable[Output[H]]], None],
    ) -> None:
        self._core = core
        self._clock = clock
        self._run_now = run_now
        # When each lobby was created, in `clock` seconds (the core has no clock).
        self._created: dict[str, float] = {}

    def observe(self, event: Event) -> None:
        """Kept first among the observers, so that a lobby's creation time is
        known to every observer that asks."""
        if type(event) is LobbyCreated:
            self._created[event.lobby] = self._clock.seconds()
        elif type(event) is LobbyClosed:
            self._created.pop(event.lobby, None)

    def lobbies(self) -> list[LobbyInfo]:
        """Every lobby now, reserved ones included."""
        core, created = self._core, self._created
        return [
            core.lobby_info(lobby, created.get(name, 0.0)) for name, lobby in core.lobbies.items()
        ]

    def lobby(self, name: str) -> LobbyInfo | None:
        found = self._core.lobbies.get(name)
        if found is None:
            return None
        return self._core.lobby_info(found, self._created.get(name, 0.0))

    def close_lobby(self, name: str, reason: str = CloseReason.CLOSED_BY_SERVER.text) -> bool:
        """Close every member of lobby ``name`` with 4000 and ``reason``;
        False if there is no such lobby."""
        return self._run(self._core.close_lobby(name, close_reason(4000, reason)))

    def seal_lobby(self, name: str) -> bool:
        """Seal lobby ``name`` as if its host had; False if there is no such lobby."""
        return self._run(self._core.seal_lobby(name))

    def kick(self, peer_id: int, reason: str = CloseReason.KICKED.text) -> bool:
        """Close peer ``peer_id`` with 4000 and ``reason``; False if there is
        no such peer."""
        return self._run(self._core.kick(peer_id, close_reason(4000, reason)))

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0, size: int | None = None) -> str:
        """A lobby without a host yet (see `SignalingService.reserve_lobby`);
        `Refused` (503) at the lobby limit or while stopping."""
        if type(ttl) not in (int, float) or not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"ttl must be a finite number of seconds > 0, not {ttl!r}")
        if size is not None and (type(size) is not int or size < 1):
            raise ValueError(f"size must be a whole number of members >= 1, not {size!r}")
        lobby, outputs = self._core.reserve(bool(mesh), float(ttl), size)
        if lobby is None:
            if not self._core.accepting:
                raise Refused(CloseReason.SHUTDOWN.text, status=503)
            raise Refused(CloseReason.TOO_MANY_LOBBIES.text, status=503)
        self._run_now(outputs)
        return lobby.name

    def _run(self, outputs: list[Any] | None) -> bool:
        if outputs is None:
            return False
        self._run_now(outputs)
        return True
