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
limit as the single server's list; a page looks at `SCAN` entries at most.

While this node cannot reach Redis, its list is its own lobbies: the only
ones its players can join then.
"""

from __future__ import annotations

from typing import Any

import orjson
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
from ..protocol.lobby_list import ListPage, ListQuery, LobbySummary
from ..protocol.state import Lobby
from ..protocol.topology import MESH
from .bus import Bus

# Entries one page looks at, at most: half of what one server's list does
# (`protocol.lobby_list.MAX_SCAN`), the work being Redis's, which every
# node's relays go through (about 2 ms for 1000 on a busy 2-core machine).
SCAN = 1000
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
        summaries: dict[str, str] = {}
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

    def _summary(self, lobby: Lobby[Any] | None) -> str | None:
        """What the shared list holds of ``lobby``; None when it is off the
        list (sealed, closed, never listed)."""
        if lobby is None or not lobby.listed or lobby.sealed:
            return None
        size = lobby.size if lobby.size is not None else self.core.config.max_lobby_size
        return summary_line(
            LobbySummary(
                lobby.name,
                lobby.title,
                len(lobby.members),
                size or None,
                lobby.topology is MESH,
                lobby.created,
            )
        )


def summary_line(lobby: LobbySummary) -> str:
    """A listed lobby as the shared list keeps it: the fields a page filters
    on, a line each (members, size or 0, mesh 1 or 0, the title casefolded:
    titles are printable, without line breaks), then its JSON."""
    title = lobby.title
    folded = title.casefold() if title is not None else ""
    data = orjson.dumps(
        {
            "n": lobby.name,
            "t": title,
            "m": lobby.members,
            "s": lobby.size,
            "x": lobby.mesh,
            "c": lobby.created,
        }
    ).decode("utf-8")
    return f"{lobby.members}\n{lobby.size or 0}\n{int(lobby.mesh)}\n{folded}\n{data}"


class ClusterLobbyDirectory:
    """``GET /lobbies`` on a cluster node (a `server.lobbies.LobbyDirectory`)."""

    def __init__(self, core: Signaling[Any], bus: Bus) -> None:
        self.core = core
        self.bus = bus

    def page(self, query: ListQuery) -> ListPage | Deferred[ListPage]:
        if not self.bus.up:
            return self.core.list_page(query)
        found = self.bus.list_page(query, SCAN)
        return found.addCallback(_page)


def _page(found: tuple[str | None, list[Any]]) -> ListPage:
    cursor, entries = found
    return ListPage(tuple(_lobby(entry) for entry in entries), cursor)


def _lobby(entry: dict[str, Any]) -> LobbySummary:
    return LobbySummary(entry["n"], entry["t"], entry["m"], entry["s"], entry["x"], entry["c"])
