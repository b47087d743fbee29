"""Quick-match across the cluster (docs/matchmaking.md, docs/cluster.md).

Every node fills the same pool lobbies: for each pool key (pool, mode,
size) Redis keeps the lobbies filling, oldest first, and one atomic step
(`Bus.match_pool`) either holds a seat for the player in the oldest one that
has a seat left (its members plus the seats already held), if its owner is
alive, or claims a fresh lobby name for the asking node and makes it the
pool's. So one lobby fills per pool key in the whole cluster, as on a single
server, and a player sent to a lobby on another node finds its seat there
even when players of that node arrive meanwhile.

At the edge (`Matcher`), a quick-match peer's JOIN is asked of the join
policy once, then matched: into a lobby of this node (`Signaling.join_pool_lobby`,
which also creates it under the claimed name), or linked to the lobby's
owner with an `Attach` whose JOIN names the lobby (sealing at N is the
lobby's own rule there). A lobby that sealed, filled or closed between the
match and the JOIN (its host sealed it, a player joined it by name, a held
seat outlived its hold) is never the player's problem:
the edge looks again, `MATCH_ATTEMPTS` times at most, then closes it with
1013 `Try again later`. Looking again after a "sealed" or "full", it has
the pool's entry dropped if it still names that lobby, so a retry always
gets further (a "does not exist" does not: the owner may be creating it).

The owner (`FillingPools`) reports its pool lobbies' members as they join
and leave (a leaver frees its seat), and takes a lobby out of its pool when
it seals or closes, at once, on the same Redis connection that carries its
frames: an edge told "sealed" by that owner finds it gone when it looks again.
"""

from __future__ import annotations

from typing import Any

from ..protocol.core import Signaling
from ..protocol.events import Event, LobbyClosed, LobbyCreated, LobbySealed, PeerJoined, PeerLeft
from ..protocol.messages import AnyMessage, Join
from ..protocol.pools import PoolKey
from ..protocol.reasons import CloseReason, Reason
from ..protocol.state import Output, Peer
from ..server.engine import ConnectionHandle
from .bus import CLAIMED, LOBBIES_FULL, MATCHED, Bus, PoolMatch
from .links import EdgeSide, Link

# How often one JOIN looks for its pool's lobby before it is refused.
MATCH_ATTEMPTS = 3
# Refusals that mean "not this lobby any more": the player is matched again,
# and for those of `TAKES_NOBODY` the pool forgets that lobby on the way.
RETRIED = frozenset(
    {CloseReason.LOBBY_IS_SEALED, CloseReason.LOBBY_FULL, CloseReason.LOBBY_DOES_NOT_EXIST}
)
TAKES_NOBODY = frozenset({CloseReason.LOBBY_IS_SEALED, CloseReason.LOBBY_FULL})

_Peer = Peer[ConnectionHandle]


class Matcher:
    """The edge's part of quick-match: the JOIN of a peer on a match URL."""

    def __init__(self, edge: EdgeSide) -> None:
        self.edge = edge

    def match(self, peer: _Peer, message: Join, now: float) -> list[Output[Any]]:
        core = self.edge.core
        if core.draining or not core.accepting:
            # The core answers: a local pool lobby, else 1001.
            return core.join(peer, message, now)
        # Asked once, before the match, as on a single server (lobby "",
        # create True): which lobby the player gets is not known yet.
        refusal = core.authorize(peer, "")
        if refusal is not None:
            return core.reject(peer, refusal)
        return self._look(peer, message, MATCH_ATTEMPTS, [], "")

    def _look(
        self, peer: _Peer, message: Join, attempts: int, queue: list[AnyMessage], stale: str
    ) -> list[Output[Any]]:
        edge = self.edge
        key = _pool_key(peer, message)
        if not edge.bus.up or key is None:
            return edge.core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        fresh = edge.lobby_names.new_name(edge.core.lobbies)
        # Messages wait in the link until the peer is seated somewhere.
        link = edge.linked[peer] = Link(0, peer, queue=queue, match=message, attempts=attempts)
        found = edge.bus.match_pool(key, fresh, edge.max_lobbies, peer.peer_id, stale)
        found.addCallbacks(self._found, edge.redis_failed, (link,), {}, (link,))
        return []

    def _found(self, found: PoolMatch, link: Link) -> None:
        edge, peer = self.edge, link.peer
        if edge.linked.get(peer) is not link or peer.closing:
            if found.outcome == CLAIMED:
                edge.bus.release_lobby(found.lobby)
            elif found.outcome == MATCHED:
                edge.bus.unseat(found.lobby, peer.peer_id)
            return
        del edge.linked[peer]
        edge.run_now(self._go(found, link))

    def _go(self, found: PoolMatch, link: Link) -> list[Output[Any]]:
        edge = self.edge
        here = found.owner == edge.bus.incarnation
        if found.outcome == CLAIMED or (found.outcome == MATCHED and here):
            return self._seat_here(link, found.lobby, created=found.outcome == CLAIMED)
        if found.outcome == MATCHED:
            assert link.match is not None
            edge.link_to(found.owner, link, Join(found.lobby, link.match.topology))
            return []
        if found.outcome == LOBBIES_FULL:
            return edge.core.reject(link.peer, CloseReason.TOO_MANY_LOBBIES)
        # The fresh name was taken (a one in 62^16 draw): another one.
        return self.again(link, "")

    def _seat_here(self, link: Link, name: str, created: bool) -> list[Output[Any]]:
        edge, peer, message = self.edge, link.peer, link.match
        core = edge.core
        assert message is not None
        if not created and not takes_players(core, name):
            # Sealed or filled since the pool named it (or closed: then the
            # pool drops it by itself, its name being released).
            return self.again(link, name if name in core.lobbies else "")
        now = edge.clock.seconds()
        outputs = core.join_pool_lobby(peer, message, now, name, authorized=True)
        if created and name not in core.lobbies:
            # The core refused (a local limit): the name goes back.
            edge.bus.release_lobby(name)
        return outputs + edge.replay(peer, link.queue or [], now)

    def again(self, link: Link, stale: str) -> list[Output[Any]]:
        """Look for the pool's lobby once more, if attempts are left;
        ``stale``: a lobby the pool must not name any more ("" = none)."""
        message = link.match
        if link.attempts <= 1 or message is None:
            return self.edge.core.reject(link.peer, CloseReason.TRY_AGAIN_LATER)
        return self._look(link.peer, message, link.attempts - 1, link.queue or [], stale)

    def refused(self, link: Link, reason: Reason) -> list[Output[Any]]:
        """The owner refused the peer before seating it (its `Detach`)."""
        self.edge.unlink(link, tell_owner=True)
        if reason in RETRIED:
            return self.again(link, link.lobby if reason in TAKES_NOBODY else "")
        return self.edge.core.reject(link.peer, reason)


def _pool_key(peer: _Peer, message: Join) -> PoolKey | None:
    request = peer.request
    return request.pool_key(message.topology.name) if request is not None else None


def takes_players(core: Signaling[Any], name: str) -> bool:
    """Whether lobby ``name`` is here, unsealed and not full."""
    lobby = core.lobbies.get(name)
    if lobby is None or lobby.sealed:
        return False
    limit = core.config.max_lobby_size if lobby.size is None else lobby.size
    return not limit or len(lobby.members) < limit


class FillingPools:
    """The owner's part: the pool lobbies this node runs that still fill.
    Their member counts go to Redis with the next flush (one step for all),
    with the peers seated since (whose held seats are now members); a lobby
    that seals or closes leaves its pool at once. After a reconnection to
    Redis they are all put back. Bounded by the lobbies of the core."""

    def __init__(self, core: Signaling[Any], bus: Bus) -> None:
        self.core = core
        self.bus = bus
        self.filling: dict[str, PoolKey] = {}
        # Lobbies whose members changed since the last flush, and the peers
        # that joined them.
        self.changed: dict[str, list[int]] = {}

    def observe(self, event: Event) -> None:
        kind = type(event)
        if kind is LobbyCreated or kind is PeerJoined or kind is PeerLeft:
            assert isinstance(event, LobbyCreated | PeerJoined | PeerLeft)
            self._changed(event)
        elif kind is LobbySealed or kind is LobbyClosed:
            assert isinstance(event, LobbySealed | LobbyClosed)
            self.changed.pop(event.lobby, None)
            key = self.filling.pop(event.lobby, None)
            if key is not None:
                self.bus.unpool(key, event.lobby)

    def _changed(self, event: LobbyCreated | PeerJoined | PeerLeft) -> None:
        name = event.lobby
        if type(event) is LobbyCreated:
            lobby = self.core.lobbies.get(name)
            if lobby is None or lobby.pool_key is None or lobby.sealed:
                return
            self.filling[name] = lobby.pool_key
        if name in self.filling:
            seated = self.changed.setdefault(name, [])
            if type(event) is PeerJoined:
                seated.append(event.peer.peer_id)

    def flush(self) -> None:
        changed, self.changed = self.changed, {}
        lobbies = self.core.lobbies
        members = {
            name: len(lobbies[name].members)
            for name in changed
            if name in self.filling and name in lobbies
        }
        self.bus.count_seats(members, changed)

    def bus_up(self) -> None:
        lobbies = self.core.lobbies
        self.bus.repool(
            {
                name: (key, len(lobbies[name].members))
                for name, key in self.filling.items()
                if name in lobbies
            }
        )
