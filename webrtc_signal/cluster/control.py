"""The control API across the cluster: what the admin API drives on a
cluster node (docs/admin-api.md, docs/cluster.md).

`ClusterControl` has the shape of `server.admin.Control`, with Deferred
answers. A lobby this node runs is answered here, at once; any other is
looked up in Redis (`Bus.find_owner`) and the command goes to its owner as
an `Ask` frame, answered by a `Reply` frame under the same number. Listing
asks every live node. An owner that does not answer within ``timeout``
seconds is left out of a list, and is a 503 (`Unavailable`) for a command
on its lobby; so is Redis being unreachable. Reserving a lobby is done on
this node: its name is claimed cluster-wide after the fact, as for any
reservation (`ClusterBridge.observe`).

Each node answers the `Ask` frames of the others with its own control
(`server.control.Control`), exactly as its own admin API would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, fail, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..protocol.hooks import LobbyInfo
from ..protocol.reasons import CloseReason
from ..server.admin import Unavailable
from ..server.backend_http import LogThrottle
from ..server.control import Control
from .bus import Bus
from .frames import Ask, Frame, Reply

_log = Logger(namespace="webrtc_signal.cluster")

# Seconds an owner has to answer a command before it counts as not answering.
ASK_TIMEOUT = 5.0
# Commands waiting for an answer, at most (an admin client cannot make more).
MAX_ASKS = 1000
REDIS_UNREACHABLE = "redis unreachable"

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting:
    node: str
    answer: Deferred[Reply]
    timer: IDelayedCall


class ClusterControl:
    """The admin API's `Control` on a cluster node (see the module docstring)."""

    def __init__(
        self,
        local: Control[Any],
        here: Container[str],
        bus: Bus,
        send: Callable[[str, Frame], None],
        flush: Callable[[], None],
        clock: IReactorTime,
        timeout: float = ASK_TIMEOUT,
    ) -> None:
        self.local = local
        # The names of the lobbies this node runs.
        self.here = here
        self.bus = bus
        self.send = send
        self.flush = flush
        self.clock = clock
        self.timeout = timeout
        self.waiting: dict[int, _Waiting] = {}
        self._numbers = itertools.count(1)
        self._throttle = LogThrottle(clock)

    # -- the admin API's control --------------------------------------------------

    def lobbies(self) -> Deferred[list[LobbyInfo]]:
        """Every lobby of every live node; a node that does not answer in
        time is left out."""
        return ensureDeferred(self._lobbies())

    def lobby(self, name: str) -> Deferred[LobbyInfo | None]:
        return ensureDeferred(self._lobby(name))

    def seal_lobby(self, name: str) -> Deferred[bool]:
        return ensureDeferred(self._done(Ask(0, "seal", name, 0, "")))

    def close_lobby(
        self, name: str, reason: str = CloseReason.CLOSED_BY_SERVER.text
    ) -> Deferred[bool]:
        return ensureDeferred(self._done(Ask(0, "close", name, 0, reason)))

    def kick(self, peer_id: int, reason: str = CloseReason.KICKED.text) -> Deferred[bool]:
        """Kick peer ``peer_id`` wherever it is: here, or on the node that
        has it (every live node is asked; its edge and its lobby's owner
        both close it, the client hears one close)."""
        return ensureDeferred(self._kick(peer_id, reason))

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0, size: int | None = None) -> str:
        return self.local.reserve_lobby(mesh, ttl, size)

    # -- asking other nodes ---------------------------------------------------------

    async def _lobbies(self) -> list[LobbyInfo]:
        if not self.bus.up:
            raise Unavailable(REDIS_UNREACHABLE)
        found = self.local.lobbies()
        for reply in await self._ask_all(Ask(0, "lobbies", "", 0, "")):
            if reply is not None:
                found += reply.lobbies
        return sorted(found, key=lambda info: info.created)

    async def _lobby(self, name: str) -> LobbyInfo | None:
        reply = await self._at_owner(Ask(0, "lobby", name, 0, ""))
        return reply.lobbies[0] if reply.lobbies else None

    async def _done(self, ask: Ask) -> bool:
        return (await self._at_owner(ask)).done

    async def _kick(self, peer_id: int, reason: str) -> bool:
        if self.local.kick(peer_id, reason):
            return True
        if not self.bus.up:
            raise Unavailable(REDIS_UNREACHABLE)
        replies = await self._ask_all(Ask(0, "kick", "", peer_id, reason))
        if any(reply is not None and reply.done for reply in replies):
            return True
        if None in replies:
            # The node that did not answer may have it.
            raise Unavailable("a node did not answer in time")
        return False

    async def _at_owner(self, ask: Ask) -> Reply:
        """``ask`` answered by the owner of its lobby (here if none has it)."""
        if ask.lobby in self.here:
            return self.answer(ask)
        if not self.bus.up:
            raise Unavailable(REDIS_UNREACHABLE)
        owner = await _from_redis(self.bus.find_owner(ask.lobby))
        if owner is None or owner == self.bus.incarnation:
            return self.answer(ask)
        return await self._ask(owner, ask)

    async def _ask_all(self, ask: Ask) -> list[Reply | None]:
        """``ask`` of every live node but this one; None for those that did
        not answer."""
        nodes = await _from_redis(self.bus.nodes())
        asked = [
            ensureDeferred(self._ask_or_none(node, ask))
            for node in sorted(nodes)
            if node != self.bus.incarnation
        ]
        replies: list[Reply | None] = await gatherResults(asked)
        return replies

    async def _ask_or_none(self, node: str, ask: Ask) -> Reply | None:
        try:
            return await self._ask(node, ask)
        except Unavailable:
            return None

    def _ask(self, node: str, ask: Ask) -> Deferred[Reply]:
        if len(self.waiting) >= MAX_ASKS:
            return fail(Unavailable("too many admin requests waiting for other nodes"))
        number = next(self._numbers)
        answer: Deferred[Reply] = Deferred()
        timer = self.clock.callLater(self.timeout, self._timed_out, number)
        self.waiting[number] = _Waiting(node, answer, timer)
        self.send(node, Ask(number, ask.command, ask.lobby, ask.peer, ask.reason))
        self.flush()
        return answer

    def replied(self, sender: str, reply: Reply) -> None:
        waiting = self.waiting.get(reply.ask)
        if waiting is None or waiting.node != sender:
            return
        del self.waiting[reply.ask]
        if waiting.timer.active():
            waiting.timer.cancel()
        waiting.answer.callback(reply)

    def _timed_out(self, number: int) -> None:
        waiting = self.waiting.pop(number, None)
        if waiting is None:
            return
        held_back = self._throttle.allow("timeout")
        if held_back is not None:
            _log.warn(
                "cluster: node {node} did not answer an admin command within {timeout} s "
                "({more} more since the last report)",
                node=waiting.node,
                timeout=self.timeout,
                more=held_back,
            )
        waiting.answer.errback(Unavailable(f"node {waiting.node} did not answer in time"))

    def bus_down(self) -> None:
        """Redis is gone: no answer can come; every command waiting fails."""
        waiting, self.waiting = self.waiting, {}
        for each in waiting.values():
            if each.timer.active():
                each.timer.cancel()
            each.answer.errback(Unavailable(REDIS_UNREACHABLE))

    # -- answering ------------------------------------------------------------------

    def asked(self, sender: str, ask: Ask) -> None:
        """Another node's admin API asks: answered with this node's control."""
        self.send(sender, self.answer(ask))

    def answer(self, ask: Ask) -> Reply:
        local, name = self.local, ask.lobby
        if ask.command == "lobbies":
            return Reply(ask.ask, True, tuple(local.lobbies()))
        if ask.command == "lobby":
            info = local.lobby(name)
            return Reply(ask.ask, info is not None, (info,) if info is not None else ())
        if ask.command == "seal":
            done = local.seal_lobby(name)
        elif ask.command == "close":
            done = local.close_lobby(name, ask.reason)
        else:
            done = local.kick(ask.peer, ask.reason)
        return Reply(ask.ask, done, ())


async def _from_redis(asked: Deferred[T]) -> T:
    """What Redis answered; its failure is an `Unavailable` (503)."""
    try:
        return await asked
    except Exception as error:
        raise Unavailable(f"redis failed: {error}") from None
