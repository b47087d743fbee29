"""What the core knows of connections and lobbies, and what it tells the
adapter to do: peers, lobbies, the timers it runs, and its outputs.

The core's outputs come in two kinds, each a closed union that the adapter
matches exhaustively (a new member nobody handles is a type error):

- `Action`: something to carry out now (send a message, close a connection,
  start or cancel a timer);
- `Event` (from `events`): something that happened, for observers.

Both come in one ordered list (`Output`), so that events keep their place
among the actions that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .events import Event
from .hooks import PeerInfo
from .messages import HOST_ID, Identity, Message
from .pools import LobbyRequest, PoolKey
from .reasons import Reason
from .topology import Topology

# The adapter's connection object, which the core stores and hands back.
H = TypeVar("H")


@dataclass(eq=False, slots=True)
class Peer(Generic[H]):
    """One connection as the core sees it. ``peer_id`` is 0 for a connection
    that was refused on arrival (over the peer limit, or during shutdown)."""

    handle: H
    peer_id: int
    lobby: Lobby[H] | None = None
    closing: bool = False
    # The client's IP address as the adapter saw it (after any trusted proxy
    # header), for per-address limits and logs; "" when unknown.
    address: str = ""
    # What the game server's authentication said about this connection
    # (None = anonymous). The core never looks inside.
    identity: object = None
    # Admitted by another party that chose its id and asked the join policy
    # already (a cluster node's peer connected to another node): the core
    # neither times its JOIN nor asks the policy nor gives its id back, and
    # a quick-match one joins the lobby its edge matched it into by name.
    attached: bool = False
    # "json" or "lines", set by the adapter once the first message picks it.
    framing: str = ""
    # What its URL asked of the lobby it creates or is matched into (a
    # quick-match pool, a listing); None: nothing.
    request: LobbyRequest | None = None


@dataclass(eq=False, slots=True)
class Lobby(Generic[H]):
    name: str
    # None while a reserved lobby waits for its host.
    host: Peer[H] | None
    # Who is told about whom, and who may relay to whom.
    topology: Topology
    # Members by the id the others know them under: the host is HOST_ID.
    members: dict[int, Peer[H]] = field(default_factory=dict)
    sealed: bool = False
    # The key its creator's address counts under for per-address lobby limits.
    owner_key: str = ""
    # Whether a LobbyAgeDeadline runs for it (max_lobby_age, from its creation).
    age_limited: bool = False
    # Its own size limit (reserve, or the creator's URL); None: the
    # config's max_lobby_size. A pool lobby's is the pool's size N.
    size: int | None = None
    # Creation number, counting up from 1 on this core: the lobby list's order.
    serial: int = 0
    # When it was created, on the adapter's clock (the ``now`` of its JOIN).
    created: float = 0.0
    # The quick-match pool it fills for (set with `pool_key`), if any.
    pool: str | None = None
    pool_key: PoolKey | None = None
    # Started with what it has once it has ``min_members`` and its
    # MatchWaitDeadline has fired (``waited``); a wait runs while ``waiting``.
    min_members: int | None = None
    waiting: bool = False
    waited: bool = False
    # On the public lobby list (until it is sealed or closed), under ``title``.
    listed: bool = False
    title: str | None = None

    def public_id(self, peer: Peer[H]) -> int:
        return HOST_ID if peer is self.host else peer.peer_id


# Timers are named by what they guard; the adapter maps them to real delayed calls.
@dataclass(frozen=True, slots=True)
class JoinDeadline(Generic[H]):
    peer: Peer[H]


@dataclass(frozen=True, slots=True)
class SealDeadline(Generic[H]):
    lobby: Lobby[H]


@dataclass(frozen=True, slots=True)
class LobbyAgeDeadline(Generic[H]):
    """An unsealed lobby's end under ``max_lobby_age``."""

    lobby: Lobby[H]


@dataclass(frozen=True, slots=True)
class ReservationDeadline(Generic[H]):
    """A reserved lobby's end if nobody claims it."""

    lobby: Lobby[H]


@dataclass(frozen=True, slots=True)
class MatchWaitDeadline(Generic[H]):
    """The end of a pool lobby's ``wait``: from then on it starts as soon as
    it has ``min`` members."""

    lobby: Lobby[H]


Timer = (
    JoinDeadline[H]
    | SealDeadline[H]
    | LobbyAgeDeadline[H]
    | ReservationDeadline[H]
    | MatchWaitDeadline[H]
)


# Actions are made per message and never changed: plain (not frozen)
# dataclasses, which are three times cheaper to make. Timers stay frozen:
# they are dictionary keys.
@dataclass(slots=True)
class Send(Generic[H]):
    peer: Peer[H]
    message: Message | Identity


@dataclass(slots=True)
class Close(Generic[H]):
    peer: Peer[H]
    reason: Reason


@dataclass(frozen=True, slots=True)
class StartTimer(Generic[H]):
    timer: Timer[H]
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Generic[H]):
    timer: Timer[H]


Action = Send[H] | Close[H] | StartTimer[H] | CancelTimer[H]
Output = Action[H] | Event


def peer_info(peer: Peer[Any]) -> PeerInfo:
    """A snapshot of ``peer`` for hooks, events and the control methods."""
    lobby = peer.lobby
    request = peer.request
    pool = request.pool if request is not None else None
    if lobby is None:
        return PeerInfo(peer.peer_id, None, None, peer.identity, peer.address, peer.framing, pool)
    return PeerInfo(
        peer.peer_id,
        lobby.public_id(peer),
        lobby.name,
        peer.identity,
        peer.address,
        peer.framing,
        pool,
    )
