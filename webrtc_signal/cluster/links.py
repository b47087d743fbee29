"""A link: a peer of this node taking part in a lobby another node runs (see
`edge`), or on its way to a lobby (a lookup, a claim or a quick-match under
way); and what the parts of the edge (`creating`, `matching`) need of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from ..protocol.core import Signaling
from ..protocol.messages import AnyMessage, Join
from ..protocol.names import LobbyNames
from ..protocol.state import Output, Peer
from ..server.engine import ConnectionHandle
from .bus import Bus

_Peer = Peer[ConnectionHandle]


@dataclass(eq=False)
class Link:
    """A local peer taking part in a lobby of another node."""

    id: int
    peer: Peer[ConnectionHandle]
    # The owner's incarnation; "" while it is being looked up.
    owner: str = ""
    # The lobby it joins there.
    lobby: str = ""
    # Messages that came while the owner was looked up (or the name claimed,
    # or the peer matched), to pass on once it is known.
    queue: list[AnyMessage] | None = field(default_factory=list)
    # A quick-match JOIN not seated yet (see `matching`), and how many more
    # times it may look for its pool's lobby.
    match: Join | None = None
    attempts: int = 0


class EdgeSide(Protocol):
    """What the parts of the edge (`creating.Creator`, `matching.Matcher`) need of
    it (`edge.Edge`)."""

    core: Signaling[ConnectionHandle]
    bus: Bus
    lobby_names: LobbyNames
    max_lobbies: int
    clock: IReactorTime
    linked: dict[_Peer, Link]
    run_now: Callable[[Iterable[Output[Any]]], None]

    def link_to(self, owner: str, link: Link, join: Join) -> None: ...

    def unlink(self, link: Link, tell_owner: bool) -> None: ...

    def replay(self, peer: _Peer, queued: list[AnyMessage], now: float) -> list[Output[Any]]: ...

    def redis_failed(self, failure: Failure, link: Link) -> None: ...
