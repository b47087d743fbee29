"""Creating a lobby on a cluster node: its name is claimed cluster-wide
first (`Bus.claim_lobby`, which also applies the cluster-wide lobby limit);
the core then creates the lobby under that name (`Signaling.join`). The
peer's messages wait in its link meanwhile, and follow its JOIN."""

from __future__ import annotations

from typing import Any

from ..protocol.messages import AnyMessage, Join
from ..protocol.reasons import CloseReason
from ..protocol.state import Output, Peer
from ..server.engine import ConnectionHandle
from .bus import CLAIMED, LOBBIES_FULL
from .links import EdgeSide, Link

# A fresh name is drawn again this many times if another node holds it.
NAME_ATTEMPTS = 3

_Peer = Peer[ConnectionHandle]


class Creator:
    """The edge's part of creating lobbies: a JOIN with an empty name."""

    def __init__(self, edge: EdgeSide) -> None:
        self.edge = edge

    def create(
        self, peer: _Peer, message: Join, now: float, attempts: int = NAME_ATTEMPTS
    ) -> list[Output[Any]]:
        edge = self.edge
        core = edge.core
        if core.draining or not core.accepting:
            # The core answers that (1001) itself, without a claim.
            return core.join(peer, message, now)
        if not edge.bus.up:
            return core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        name = edge.lobby_names.new_name(core.lobbies)
        # Held while the name is claimed; replayed to the core after.
        link = edge.linked[peer] = Link(0, peer)
        claim = edge.bus.claim_lobby(name, edge.max_lobbies)
        claim.addCallbacks(
            self._claimed, edge.redis_failed, (link, message, name, attempts), {}, (link,)
        )
        return []

    def _claimed(self, answer: str, link: Link, message: Join, name: str, attempts: int) -> None:
        edge, peer = self.edge, link.peer
        if edge.linked.get(peer) is not link or peer.closing:
            if answer == CLAIMED:
                edge.bus.release_lobby(name)
            return
        del edge.linked[peer]
        now = edge.clock.seconds()
        if answer == CLAIMED:
            outputs = self._create_claimed(peer, message, name, link.queue or [], now)
        elif answer == LOBBIES_FULL:
            outputs = edge.core.reject(peer, CloseReason.TOO_MANY_LOBBIES)
        elif attempts > 1:
            outputs = self.create(peer, message, now, attempts - 1)
            self._requeue(peer, link.queue or [])
        else:
            outputs = edge.core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        edge.run_now(outputs)

    def _requeue(self, peer: _Peer, earlier: list[AnyMessage]) -> None:
        """Messages held for a claim that failed wait for the next one."""
        pending = self.edge.linked.get(peer)
        if pending is not None and pending.queue is not None:
            pending.queue[:0] = earlier

    def _create_claimed(
        self, peer: _Peer, message: Join, name: str, queued: list[AnyMessage], now: float
    ) -> list[Output[Any]]:
        edge = self.edge
        outputs = edge.core.join(peer, message, now, name=name)
        if name not in edge.core.lobbies:
            # The core refused (a local limit, the game server's hook).
            edge.bus.release_lobby(name)
        return outputs + edge.replay(peer, queued, now)
