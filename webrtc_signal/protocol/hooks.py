"""What a game server sees of connections, peers and lobbies, and how it says no.

These are the public types of the embedding hooks (``SignalingService(...,
hooks=...)``) and of the control methods: plain, frozen snapshots that the
core builds, so that nothing a game server holds on to can change under it or
reach back into the server's state. Pure Python, like the rest of the
`protocol` package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .reasons import CloseReason, CustomReason


class Refused(Exception):
    """Raised by a hook to say no.

    From ``authenticate``: the WebSocket upgrade is answered with HTTP
    ``status`` and ``reason`` (no WebSocket is opened). From
    ``authorize_join``: the peer is closed with 4000 and ``reason`` (``status``
    is not used). The control methods raise it too (``reserve_lobby`` at the
    lobby limit), with a status an HTTP front end can pass on.
    """

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status (100-599), not {status!r}")
        # The reason becomes an HTTP reason phrase: one line, whatever the hook wrote.
        self.reason = " ".join(str(reason).split())
        self.status = status


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """A WebSocket upgrade request, as ``authenticate`` sees it."""

    # The client's IP address as text.
    address: str
    # The request's path, e.g. "/" or "/signal" when mounted on a site.
    path: str
    # The query string, parsed: ?token=abc gives {"token": ["abc"]}.
    query: Mapping[str, list[str]]
    # Header names in lower case; repeated headers joined with ", ".
    headers: Mapping[str, str]
    # The Origin header (browsers send it), or None.
    origin: str | None


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One connected peer, as it was when the snapshot was taken."""

    # Unique on the server while the peer is connected.
    peer_id: int
    # The id its lobby knows it by (1 for the host), None outside a lobby.
    lobby_id: int | None
    # Its lobby's name, None outside a lobby.
    lobby: str | None
    # What ``authenticate`` returned for its connection (None = anonymous).
    identity: object
    # The client's IP address as text ("" when unknown).
    address: str
    # The framing it speaks: "json" (Godot 4) or "lines" (Godot 3); "" until
    # its first message, which picks it.
    framing: str = ""
    # The quick-match pool its URL names (``/match/<pool>``), None on any
    # other URL. ``authorize_join`` is asked before such a peer is matched,
    # with lobby "" and create True: which lobby it gets is not known yet.
    pool: str | None = None


@dataclass(frozen=True, slots=True)
class LobbyInfo:
    """One lobby, as it was when the snapshot was taken."""

    name: str
    mesh: bool
    sealed: bool
    # Made by ``reserve_lobby`` and still waiting for its host.
    reserved: bool
    host: PeerInfo | None
    # Every member, host first, then in the order they joined.
    members: tuple[PeerInfo, ...]
    # When it was created or reserved, in seconds of the server's clock
    # (``reactor.seconds()``, or the injected clock's).
    created: float
    # The quick-match pool it was made for, if any.
    pool: str | None = None
    # A title shown in lobby lists, if it has one.
    title: str | None = None
    # Its own size limit (members, host included), from ``reserve_lobby``,
    # its creator's URL (``size=N``) or its pool; None: the server's
    # ``max_lobby_size``.
    size: int | None = None
    # On the public lobby list (``GET /lobbies``) while it takes players.
    listed: bool = False


# What the core asks before applying a JOIN: the peer, the lobby name ("" when
# creating) and whether it creates. It answers None to allow, or the close to
# refuse with. The adapter turns a hook's `Refused` into the latter.
JoinPolicy = Callable[[PeerInfo, str, bool], CloseReason | CustomReason | None]
