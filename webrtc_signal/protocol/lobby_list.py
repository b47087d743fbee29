"""The public lobby list: listed lobbies that still take players, newest
first, a page at a time (``GET /lobbies``).

The core keeps the listed lobbies in an index (`LobbyList`) from their
creation until they are sealed or closed, so a page never looks at the
unlisted ones. Within the index a page walks from the newest entry (or from
its cursor) down, skipping what is full or does not match the filters, and
stops at `MAX_SCAN` entries looked at: a query that matches little returns
what it found with a cursor to go on, so no request costs more than that,
however many lobbies are open.

The cursor is the creation number (`Lobby.serial`) of the last entry looked
at, as text: opaque to clients, which pass ``next`` back as ``?cursor=``.
Newer lobbies never shift a later page, and a lobby that leaves the list
takes nothing else with it.

Pure Python: ``now`` (for ``age``) comes from the adapter.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .state import Lobby
from .topology import CLIENT_SERVER, MESH, Topology

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# A longer ``q`` could never be in a title (titles are at most 64 characters).
MAX_QUERY_LENGTH = 64
# Entries one page looks at, at most (about 1 ms of work; see docs/lobbies.md).
MAX_SCAN = 2000
MODES = {"mesh": MESH, "client-server": CLIENT_SERVER}
_MAX_CURSOR_DIGITS = 19

Query = Mapping[str, Sequence[str]]


class BadListQuery(ValueError):
    """A ``GET /lobbies`` parameter is wrong: the HTTP 400's body names it."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page's parameters: at most ``limit`` lobbies created before the
    one numbered ``cursor`` (None: from the newest), whose title contains
    ``text`` (case-insensitive; "" = any), of ``mode`` (None = any)."""

    limit: int = DEFAULT_LIMIT
    cursor: int | None = None
    text: str = ""
    mode: str | None = None


def _single(query: Query, name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadListQuery(name, "given more than once")
    return values[0]


def parse_list_query(query: Query) -> ListQuery:
    """The page a ``GET /lobbies`` query asks for; `BadListQuery` names the
    first bad parameter. Unknown parameters (``token``) are not looked at."""
    limit = DEFAULT_LIMIT
    text = _single(query, "limit")
    if text is not None:
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
            raise BadListQuery("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    cursor = None
    text = _single(query, "cursor")
    if text is not None:
        if not (text.isascii() and text.isdigit() and len(text) <= _MAX_CURSOR_DIGITS):
            raise BadListQuery("cursor", "must be a 'next' value from an earlier page")
        cursor = int(text)
    search = _single(query, "q") or ""
    if len(search) > MAX_QUERY_LENGTH:
        raise BadListQuery("q", f"longer than {MAX_QUERY_LENGTH} characters")
    mode = _single(query, "mode")
    if mode is not None and mode not in MODES:
        raise BadListQuery("mode", "must be mesh or client-server")
    return ListQuery(limit, cursor, search, mode)


@dataclass(frozen=True, slots=True)
class LobbySummary:
    """One listed lobby as the list shows it. ``size`` is its member limit
    (None: none); ``created`` is on the adapter's clock, in seconds."""

    name: str
    title: str | None
    members: int
    size: int | None
    mesh: bool
    created: float

    def as_json(self, now: float) -> dict[str, Any]:
        """The JSON object ``GET /lobbies`` answers for it; ``age`` is whole
        seconds since its creation."""
        return {
            "name": self.name,
            "title": self.title,
            "members": self.members,
            "size": self.size,
            "mesh": self.mesh,
            "age": max(0, int(now - self.created)),
        }


@dataclass(frozen=True, slots=True)
class ListPage:
    """A page of the list: its lobbies, newest first, and the cursor of the
    next page (None: this is the last)."""

    lobbies: tuple[LobbySummary, ...]
    next: str | None

    def as_json(self, now: float) -> dict[str, Any]:
        return {"lobbies": [lobby.as_json(now) for lobby in self.lobbies], "next": self.next}


class LobbyList:
    """The listed lobbies that are neither sealed nor closed, by creation
    number. Adding is appending (numbers only grow); removing leaves a gap
    in the number list that is compacted away once gaps outnumber entries,
    so both cost O(1) amortized and memory stays bounded by the open lobbies."""

    __slots__ = ("_by_serial", "_gaps", "_serials")

    def __init__(self) -> None:
        self._by_serial: dict[int, Lobby[Any]] = {}
        # Ascending: every serial added, less those compacted away.
        self._serials: list[int] = []
        self._gaps = 0

    def add(self, lobby: Lobby[Any]) -> None:
        serial = lobby.serial
        if self._serials and serial <= self._serials[-1]:
            raise ValueError(f"serial {serial} is not newer than every listed lobby's")
        self._serials.append(serial)
        self._by_serial[serial] = lobby

    def remove(self, lobby: Lobby[Any]) -> None:
        if self._by_serial.pop(lobby.serial, None) is None:
            return
        self._gaps += 1
        if self._gaps > len(self._by_serial):
            # Dictionaries keep insertion order, which is ascending here.
            self._serials = list(self._by_serial)
            self._gaps = 0

    def __len__(self) -> int:
        return len(self._by_serial)

    def __contains__(self, lobby: object) -> bool:
        return isinstance(lobby, Lobby) and self._by_serial.get(lobby.serial) is lobby

    def summaries(self, default_size: int) -> list[LobbySummary]:
        """Every listed lobby that takes players now, newest first (for a
        node that publishes its part of the list)."""
        found = []
        for serial in reversed(self._serials):
            lobby = self._by_serial.get(serial)
            if lobby is not None:
                summary = summarize(lobby, default_size)
                if summary is not None:
                    found.append(summary)
        return found

    def page(self, query: ListQuery, default_size: int) -> ListPage:
        """The page ``query`` asks for. ``default_size`` is --max-lobby-size
        (0: no limit), the limit of lobbies without one of their own."""
        serials, by_serial = self._serials, self._by_serial
        position = len(serials) if query.cursor is None else bisect_left(serials, query.cursor)
        wanted_topology = MODES[query.mode] if query.mode is not None else None
        text = query.text.casefold()
        found: list[LobbySummary] = []
        last_serial = 0
        scanned = 0
        while position > 0 and scanned < MAX_SCAN:
            position -= 1
            scanned += 1
            serial = serials[position]
            lobby = by_serial.get(serial)
            if lobby is None or not _wanted(lobby, wanted_topology, text):
                continue
            summary = summarize(lobby, default_size)
            if summary is None:
                continue
            if len(found) == query.limit:
                # One more exists: the next page starts after the last one shown.
                return ListPage(tuple(found), str(last_serial))
            found.append(summary)
            last_serial = serial
        if position > 0:
            # Stopped at MAX_SCAN: the next page goes on from here.
            return ListPage(tuple(found), str(serials[position]))
        return ListPage(tuple(found), None)


def _wanted(lobby: Lobby[Any], topology: Topology | None, text: str) -> bool:
    """Whether ``lobby`` passes a page's filters (``text`` casefolded)."""
    if topology is not None and lobby.topology is not topology:
        return False
    return not text or (lobby.title is not None and text in lobby.title.casefold())


def summarize(lobby: Lobby[Any], default_size: int) -> LobbySummary | None:
    """``lobby`` as the list shows it, or None when it takes nobody now
    (sealed, or full)."""
    if lobby.sealed:
        return None
    limit = lobby.size if lobby.size is not None else (default_size or None)
    members = len(lobby.members)
    if limit is not None and members >= limit:
        return None
    mesh = lobby.topology is MESH
    return LobbySummary(lobby.name, lobby.title, members, limit, mesh, lobby.created)
