"""The transport between nodes, as the bridge needs it: small on purpose, so
that another bus (Redis Streams, NATS) could replace Redis behind it.

A node has an *incarnation* ("<node id>/<epoch>"): a fresh epoch each time it
(re)joins the bus. Messages go to an incarnation, never to a node id, so a
restarted node (same id, new epoch) never receives what was meant for the
process it replaced, and its peers see the old one as dead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from twisted.internet.defer import Deferred

from ..protocol.lobby_list import ListQuery
from ..protocol.pools import PoolKey

# What `Bus.claim_lobby` answers (and `Bus.match_pool`, with `MATCHED`).
CLAIMED = "ok"
LOBBIES_FULL = "full"
NAME_TAKEN = "taken"
MATCHED = "join"


@dataclass(frozen=True, slots=True)
class PoolMatch:
    """What `Bus.match_pool` found: ``outcome`` `MATCHED` (join ``lobby``,
    run by ``owner``), `CLAIMED` (``lobby`` is the fresh name, now this
    node's and the pool's), `LOBBIES_FULL` or `NAME_TAKEN` (then no lobby)."""

    outcome: str
    lobby: str
    owner: str


class BusListener(Protocol):
    """What the bus tells the bridge, in the reactor thread."""

    def bus_up(self) -> None:
        """The bus is usable, under a new `Bus.incarnation`."""

    def bus_down(self) -> None:
        """The bus is lost: nothing sent or asked from now until `bus_up` arrives."""

    def bus_message(self, sender: str, frames: list[Any]) -> None:
        """A batch of ``frames`` that incarnation ``sender`` published to ours."""


class Bus(Protocol):
    node_id: str
    # "<node id>/<epoch>" while up; "" while down.
    incarnation: str

    @property
    def up(self) -> bool: ...

    def start(self, listener: BusListener) -> None:
        """Connect, and keep reconnecting, until `stop`."""

    def stop(self) -> Deferred[None]: ...

    def publish(self, incarnation: str, frames: list[Any]) -> None:
        """Send ``frames`` (JSON values) to ``incarnation``; everything one node publishes
        to another arrives in the order published (or not at all, if either
        is gone)."""

    def claim_lobby(self, name: str, max_lobbies: int) -> Deferred[str]:
        """Claim lobby ``name`` for this incarnation (``SET NX``): `CLAIMED`,
        `NAME_TAKEN`, or `LOBBIES_FULL` when ``max_lobbies`` are open
        cluster-wide already."""

    def release_lobby(self, name: str) -> None: ...

    def reclaim_lobbies(self, names: Iterable[str]) -> None:
        """After `bus_up`: claim again the lobbies this node still runs."""

    def find_owner(self, name: str) -> Deferred[str | None]:
        """The live incarnation that owns lobby ``name``, or None."""

    def live(self, incarnations: Iterable[str]) -> Deferred[set[str]]:
        """Which of ``incarnations`` are still alive."""

    def claim_peer_ids(self, ids: list[int]) -> Deferred[list[int]]:
        """Claim peer ids for this incarnation: those answered are now ours
        (free, held by a dead incarnation, or ours already); the others are
        held by a live node."""

    def release_peer_ids(self, ids: list[int]) -> None:
        """Give back peer ids this incarnation claimed."""

    # -- shared lobby state (quick-match, the lobby list, the admin API) --------

    def match_pool(
        self, key: PoolKey, fresh: str, max_lobbies: int, peer_id: int, stale: str = ""
    ) -> Deferred[PoolMatch]:
        """In one atomic step, for peer ``peer_id``: a seat held in the
        oldest lobby of pool ``key`` that has one left, if its owner is
        alive; else lobby name ``fresh`` claimed for this incarnation (as
        `claim_lobby` does) and made the pool's. Lobby ``stale`` (found
        sealed) leaves the pool first."""

    def unseat(self, name: str, peer_id: int) -> None:
        """The seat held for ``peer_id`` in pool lobby ``name`` is not needed."""

    def count_seats(self, members: Mapping[str, int], seated: Mapping[str, list[int]]) -> None:
        """The member counts of pool lobbies this node runs, and the peers
        seated in them since the last count (their held seats are now members)."""

    def unpool(self, key: PoolKey, name: str) -> None:
        """Pool ``key`` no longer fills lobby ``name`` (sealed or closed)."""

    def repool(self, filling: Mapping[str, tuple[PoolKey, int]]) -> None:
        """After `bus_up`: the pool lobbies this node fills (name -> pool
        key and member count)."""

    def update_list(self, summaries: Mapping[str, str], removed: Iterable[str]) -> None:
        """Put the listed lobbies' ``summaries`` (`listing.summary_line`, by
        name) on the shared lobby list, keeping each one's place, and take
        ``removed`` off it."""

    def list_page(self, query: ListQuery, scan: int) -> Deferred[tuple[str | None, list[Any]]]:
        """A page of the shared lobby list, looking at ``scan`` entries at
        most: the next page's cursor (None: the last), and each lobby's
        JSON (as `listing.summary_line` wrote it)."""

    def nodes(self) -> Deferred[set[str]]:
        """Every live incarnation, this one included."""


_encode_ascii = json.JSONEncoder(separators=(",", ":")).encode


def encode(value: object) -> bytes:
    """JSON for the bus. A relayed message may hold a lone surrogate (a JSON
    client can send one escaped), which UTF-8 cannot carry: escaped then."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _encode_ascii(value).encode("ascii")


def decode(data: object) -> Any:
    """What `encode` wrote (bytes or text). orjson refuses the escaped lone
    surrogates `encode` may write; the standard library reads them."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, bytes | bytearray):
        raise TypeError("a bus message is bytes or text")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
