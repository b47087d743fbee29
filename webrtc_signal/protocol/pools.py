"""Quick-match and listed lobbies: what a connection's URL asks of the lobby
it creates or is matched into, and the index of pool lobbies still filling.

A connection to ``/match/<pool>?size=N`` that sends JOIN with an empty lobby
name is *matched*: placed in the oldest unsealed lobby of that pool, of the
same mode and size, or made the host of a new one (`PoolIndex`). Optional
``min=M&wait=S`` seal a lobby with what it has once it has at least M members
and S seconds have passed since it was created. ``listed=1`` (optionally
``title`` and ``size``) puts the lobby its connection creates on the public
list (`lobby_list`). Everything here is parsed before the WebSocket opens:
a bad value is refused at the upgrade (HTTP 400, `BadLobbyRequest` naming
the parameter), never in the middle of a game.

Pure Python: the adapter hands in the request's path and parsed query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

# The path form of a quick-match URL: /match/<pool>.
MATCH_SEGMENT = "match"
# A pool is 1-64 characters of segments of [A-Za-z0-9._-], joined by "/".
MAX_POOL_LENGTH = 64
_POOL_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Lobby sizes a URL may ask for when --max-lobby-size is 0 (no limit): each
# newcomer costs a PEER_CONNECT to and from every member, so a mesh of more
# than this is no game anyone plays over signaling.
DEFAULT_MAX_REQUESTED_SIZE = 64
MIN_SIZE = 2
# Seconds a pool lobby may wait for more players before it starts with what
# it has (``wait``).
MIN_WAIT = 1.0
MAX_WAIT = 600.0
MAX_TITLE_LENGTH = 64
_WHOLE = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")

Query = Mapping[str, Sequence[str]]
# The core's lobby type, which the index only stores.
L = TypeVar("L")


class BadLobbyRequest(ValueError):
    """A URL's lobby parameters are wrong: ``parameter`` names the one, and
    ``problem`` says what is wrong with it (the body of the HTTP 400)."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LobbyRequest:
    """What a connection's URL asks of the lobby it creates or is matched
    into. ``pool`` set: a quick-match connection, whose JOIN must not name a
    lobby. ``size``: the pool's lobby size N (a quick-match), else the
    created lobby's own member limit. ``min_members`` and ``wait``: a pool
    lobby starts with at least that many once that many seconds have passed
    since it was created. ``listed`` and ``title``: the lobby list."""

    pool: str | None = None
    size: int | None = None
    min_members: int | None = None
    wait: float | None = None
    listed: bool = False
    title: str | None = None

    def pool_key(self, mode: str) -> PoolKey | None:
        """Which lobbies this connection may be matched into, in a lobby of
        ``mode`` ("mesh" or "client-server"); None without a pool."""
        if self.pool is None or self.size is None:
            return None
        return PoolKey(self.pool, mode, self.size)


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Players are matched only with others of the same pool, mode and size:
    a lobby of four never takes a player who asked for two."""

    pool: str
    mode: str
    size: int


def max_requested_size(max_lobby_size: int) -> int:
    """The largest ``size`` a URL may ask for: --max-lobby-size, or
    `DEFAULT_MAX_REQUESTED_SIZE` when that is 0 (no limit)."""
    return max_lobby_size or DEFAULT_MAX_REQUESTED_SIZE


def match_pool(path: str) -> str | None:
    """The pool a request path names (``/match/eu/ranked`` -> ``eu/ranked``),
    or None when the path is no quick-match path. The path is taken as sent
    (not percent-decoded): a pool is plain characters only. The first
    ``match`` segment counts, so a site that mounts the server below a path
    of its own (``/signal/match/eu``) works too."""
    segments = path.split("/")
    try:
        start = segments.index(MATCH_SEGMENT)
    except ValueError:
        return None
    pool = "/".join(segments[start + 1 :])
    if not pool:
        raise BadLobbyRequest("pool", "missing: connect to /match/<pool>?size=N")
    if len(pool) > MAX_POOL_LENGTH:
        raise BadLobbyRequest("pool", f"longer than {MAX_POOL_LENGTH} characters")
    for segment in pool.split("/"):
        if not _POOL_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise BadLobbyRequest(
                "pool",
                f"{pool!r} is not 1-{MAX_POOL_LENGTH} characters of A-Z a-z 0-9 . _ - "
                "in segments separated by /",
            )
    return pool


def _single(query: Query, name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadLobbyRequest(name, "given more than once")
    return values[0]


def _whole(query: Query, name: str, low: int, high: int) -> int | None:
    text = _single(query, name)
    if text is None:
        return None
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise BadLobbyRequest(name, f"must be a whole number from {low} to {high}, not {text!r}")
    return int(text)


def _seconds(query: Query, name: str, low: float, high: float) -> float | None:
    text = _single(query, name)
    if text is None:
        return None
    if not _DECIMAL.fullmatch(text) or not low <= float(text) <= high:
        raise BadLobbyRequest(
            name, f"must be a number of seconds from {low:g} to {high:g}, not {text!r}"
        )
    return float(text)


def _title(query: Query) -> str | None:
    title = _single(query, "title")
    if title is None:
        return None
    if len(title) > MAX_TITLE_LENGTH:
        raise BadLobbyRequest("title", f"longer than {MAX_TITLE_LENGTH} characters")
    if not title.isprintable():
        raise BadLobbyRequest("title", "must be printable characters (no control characters)")
    return title


def _listed(query: Query) -> bool:
    text = _single(query, "listed")
    if text is None:
        return False
    if text not in ("0", "1"):
        raise BadLobbyRequest("listed", f"must be 1 (or 0), not {text!r}")
    return text == "1"


def parse_lobby_request(path: str, query: Query, max_lobby_size: int) -> LobbyRequest | None:
    """What the URL of an upgrade asks (None: nothing, as before quick-match
    existed). Raises `BadLobbyRequest` naming the first bad parameter.

    On a ``/match/<pool>`` path ``size`` is required (2 to
    `max_requested_size`); ``min`` (2 to ``size``) and ``wait`` (1 to 600
    seconds) come together or not at all. On any other path ``size`` (same
    range) limits the lobby the connection creates, and ``min`` and ``wait``
    are refused. ``listed`` is 1 or 0 and ``title`` at most 64 printable
    characters, on either. Other parameters (``token``...) are not looked at."""
    pool = match_pool(path)
    largest = max_requested_size(max_lobby_size)
    size = _whole(query, "size", MIN_SIZE, largest)
    listed = _listed(query)
    title = _title(query)
    if pool is None:
        for name in ("min", "wait"):
            if _single(query, name) is not None:
                raise BadLobbyRequest(name, "only on a quick-match URL, /match/<pool>?size=N")
        if size is None and not listed and title is None:
            return None
        return LobbyRequest(size=size, listed=listed, title=title)
    if size is None:
        raise BadLobbyRequest("size", f"required on a quick-match URL: /match/{pool}?size=N")
    min_members = _whole(query, "min", MIN_SIZE, size)
    wait = _seconds(query, "wait", MIN_WAIT, MAX_WAIT)
    if (min_members is None) != (wait is None):
        missing = "wait" if wait is None else "min"
        raise BadLobbyRequest(missing, "min and wait go together: ?size=N&min=M&wait=S")
    return LobbyRequest(pool, size, min_members, wait, listed, title)


class PoolIndex(Generic[L]):
    """The pool lobbies that may still take players, oldest first, by
    `PoolKey`: finding where a player goes is one dictionary lookup, however
    many lobbies are open. A lobby is in it from its creation until it is
    sealed (full, or started with what it had) or closed; memory is bounded
    by the open lobbies (``max_lobbies``)."""

    __slots__ = ("_filling",)

    def __init__(self) -> None:
        # Insertion order is creation order: the first is the oldest.
        self._filling: dict[PoolKey, dict[str, L]] = {}

    def add(self, key: PoolKey, name: str, lobby: L) -> None:
        self._filling.setdefault(key, {})[name] = lobby

    def remove(self, key: PoolKey, name: str) -> None:
        lobbies = self._filling.get(key)
        if lobbies is not None and lobbies.pop(name, None) is not None and not lobbies:
            del self._filling[key]

    def oldest(self, key: PoolKey) -> L | None:
        """The oldest lobby of ``key`` still filling, or None."""
        lobbies = self._filling.get(key)
        if not lobbies:
            return None
        return next(iter(lobbies.values()))

    def filling(self, key: PoolKey) -> list[L]:
        """Every lobby of ``key`` still filling, oldest first."""
        return list(self._filling.get(key, {}).values())

    def __len__(self) -> int:
        return sum(len(lobbies) for lobbies in self._filling.values())
