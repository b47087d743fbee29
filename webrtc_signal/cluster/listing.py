"""The public lobby list across the cluster (``GET /lobbies`` on any node
shows every node's listed lobbies; docs/cluster.md).

Each node puts the summaries of the listed lobbies it runs in Redis
(`SharedList`): on the events that change what the list shows (a lobby
created, joined, left, sealed, closed), gathered per batch of input and
written with the batch's frames, so a relayed message never costs a write.
A lobby keeps its place (a cluster-wide creation number) from its creation
until it is sealed or closed; a full one stays in Redis and is skipped by
pages, as on a single server. Any node reads a page (`ClusterLobbyDirectory`)
with one bounded script (`Bus.list_page`): the same cursor, filters and
limit as the single server's list, and the same scan bound.

While this node cannot reach Redis, its list is its own lobbies: the only
ones its players can join then.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ..protocol.core import Signaling
from ..protocol.events import (
    Event,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerJoined,
    PeerLeft,
)
from ..protocol.lobby_list import MAX_SCAN, ListPage, ListQuery, LobbySummary
from ..protocol.state import Lobby
from ..protocol.topology import MESH
from .bus import Bus

# The events after which a listed lobby's summary may have changed.
_CHANGES = (LobbyCreated, PeerJoined, PeerLeft, LobbySealed, LobbyClosed)


class SharedList:
    """This node's listed lobbies on the shared list, kept up to date."""

    def __init__(self, core: Signaling[Any], bus: Bus) -> None:
        self.core = core
        self.bus = bus
        # Lobbies on the shared list under this incarnation, and those to
        # write at the next flush. Both bounded by the core's lobbies.
        self.published: set[str] = set()
        self.dirty: set[str] = set()

    def observe(self, event: Event) -> None:
        if isinstance(event, _CHANGES):
            name = event.lobby
            lobby = self.core.lobbies.get(name)
            if name in self.published or (lobby is not None and lobby.listed):
                self.dirty.add(name)

    def flush(self) -> None:
        """Write what changed since the last flush, in one step."""
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        if not self.bus.up:
            return  # everything is written again on `bus_up`
        summaries: dict[str, object] = {}
        removed: list[str] = []
        for name in dirty:
            summary = self._summary(self.core.lobbies.get(name))
            if summary is not None:
                summaries[name] = summary
                self.published.add(name)
            elif name in self.published:
                self.published.discard(name)
                removed.append(name)
        if summaries or removed:
            self.bus.update_list(summaries, removed)

    def bus_up(self) -> None:
        """A new incarnation: every listed lobby again, under its name."""
        self.published.clear()
        self.dirty = {name for name, lobby in self.core.lobbies.items() if lobby.listed}
        self.flush()

    def _summary(self, lobby: Lobby[Any] | None) -> dict[str, Any] | None:
        """What the shared list holds of ``lobby``; None when it is off the
        list (sealed, closed, never listed). ``f``: the title casefolded, for
        the ``q`` filter, which Redis applies."""
        if lobby is None or not lobby.listed or lobby.sealed:
            return None
        size = lobby.size if lobby.size is not None else self.core.config.max_lobby_size
        title = lobby.title
        return {
            "n": lobby.name,
            "o": self.bus.incarnation,
            "t": title,
            "f": title.casefold() if title is not None else "",
            "m": len(lobby.members),
            "s": size or 0,
            "x": lobby.topology is MESH,
            "c": lobby.created,
        }


class ClusterLobbyDirectory:
    """``GET /lobbies`` on a cluster node (a `server.lobbies.LobbyDirectory`)."""

    def __init__(self, core: Signaling[Any], bus: Bus) -> None:
        self.core = core
        self.bus = bus

    def page(self, query: ListQuery) -> ListPage | Deferred[ListPage]:
        if not self.bus.up:
            return self.core.list_page(query)
        found = self.bus.list_page(query, MAX_SCAN)
        return found.addCallback(_page)


def _page(found: tuple[str | None, list[Any]]) -> ListPage:
    cursor, entries = found
    return ListPage(tuple(_lobby(entry) for entry in entries), cursor)


def _lobby(entry: dict[str, Any]) -> LobbySummary:
    size = entry["s"] or None
    return LobbySummary(
        entry["n"], entry["t"], entry["m"], size, bool(entry["x"]), float(entry["c"])
    )
