"""What happens on the server, as events a game server can observe
(``service.add_observer(callable)``); the server's own log lines are one such
observer. Public home: `webrtc_signal.events`.

Frozen dataclasses, made by the core as it applies its rules, and delivered in
the order things happened. Relayed messages (offers, answers, candidates)
make no event: that path stays as fast as without observers.

The order, when one thing causes others:

- a peer joins: `PeerJoined` (a creator: `LobbyCreated`, then `PeerJoined`
  as its first member, with lobby id 1);
- a peer goes (it closed, its connection was lost, or the server closed it):
  `PeerLeft` if it was in a lobby, then `PeerDisconnected`; if it was the
  host, its lobby closes next;
- a lobby closes (host gone, seal complete, ``close_lobby``, shutdown,
  reservation expired): a `PeerLeft` for each remaining member, then
  `LobbyClosed`, then a `PeerDisconnected` for each of those members.

So every `PeerConnected` is followed, once, by a `PeerDisconnected`; every
`PeerJoined` by a `PeerLeft`; every `LobbyCreated` by a `LobbyClosed`. The
`PeerInfo` in `PeerLeft` and `PeerDisconnected` shows the peer as it was just
before it left (its lobby and lobby id still set).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .hooks import PeerInfo


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A WebSocket opened and got a peer slot."""

    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """A peer is gone: ``code`` and ``reason`` of the close. ``by_server``
    says whose they are: the server's (a protocol error, a kick, the host
    leaving, the seal completing, shutdown) or the client's (its close frame;
    1006 and no reason when the connection was lost)."""

    peer: PeerInfo
    code: int
    reason: str
    # Not compared: two events about the same close are equal either way.
    by_server: bool = field(default=False, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class LobbyCreated:
    """A lobby exists. ``host`` is None for a reserved lobby (``reserve_lobby``),
    whose host is the first peer to join it. ``mode`` (keyword-only, not
    compared) names its topology: "mesh", "client-server", or another one's
    name; ``mesh`` is whether it is the mesh. ``pool`` (likewise) names the
    quick-match pool it was made for, if any."""

    lobby: str
    host: PeerInfo | None
    mesh: bool
    mode: str = field(default="", compare=False, kw_only=True)
    # The quick-match pool it was made for, if any (keyword-only, not compared).
    pool: str | None = field(default=None, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if not self.mode:
            object.__setattr__(self, "mode", "mesh" if self.mesh else "client-server")


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """A peer joined ``lobby``, which now has ``members`` members (host included)."""

    lobby: str
    peer: PeerInfo
    members: int


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """A peer left ``lobby``: ``reason`` is the text of its close (the client's
    own, often empty, when it closed itself)."""

    lobby: str
    peer: PeerInfo
    reason: str


@dataclass(frozen=True, slots=True)
class LobbySealed:
    """``lobby`` is sealed with ``members`` members: by its host, by the game
    server, or, in a quick-match pool (``pool``, keyword-only, not compared),
    by the server when it filled or its wait ran out."""

    lobby: str
    members: int
    pool: str | None = field(default=None, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class LobbyClosed:
    """A lobby is gone. ``reason`` is what its members were told; ``code``
    (keyword-only, not compared) the close code they got with it."""

    lobby: str
    reason: str
    code: int = field(default=4000, compare=False, kw_only=True)
    # The quick-match pool it was made for, if any (keyword-only, not compared).
    pool: str | None = field(default=None, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ConnectionRefused:
    """A connection that got no peer slot. ``code`` is the HTTP status when it
    was refused at the upgrade (``authenticate``: 401, 403, 500...), else the
    WebSocket close code (the peer limit, shutdown)."""

    address: str
    code: int
    reason: str


Event = (
    PeerConnected
    | PeerDisconnected
    | LobbyCreated
    | PeerJoined
    | PeerLeft
    | LobbySealed
    | LobbyClosed
    | ConnectionRefused
)
