"""The frames cluster nodes send each other over the bus, typed.

A peer connected to one node (its *edge*) takes part in a lobby another
node runs (its *owner*) through a *link* (a number the edge chose). On the
wire a frame is a JSON array, its first element a one-letter tag; `encode`
and `decode` are the only places that know that form. `decode` checks every
field: a frame it cannot read raises `FrameError`, which costs that frame
only, never the batch it came in.

Edge to owner: `Attach` (the first JOIN of a lobby the owner runs),
`Forward` (a message from the peer), `JoinAgain` (a later JOIN), `Gone` (the
peer's connection is gone). Owner to edge: `Deliver` (a message for the
peer), `Identify` (its ID in the lobby), `Detach` (close it).

Between any two nodes, for the admin API (`control`): `Ask` (a control
command, numbered by the asking node) and `Reply` (its answer, under the
same number, with the lobbies it concerns as `LobbyInfo` snapshots).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, ClassVar

from ..protocol.hooks import LobbyInfo, PeerInfo
from ..protocol.names import MAX_PEER_ID, MIN_PEER_ID
from ..protocol.topology import CLIENT_SERVER, MESH, Topology

TOPOLOGIES: dict[str, Topology] = {MESH.name: MESH, CLIENT_SERVER.name: CLIENT_SERVER}
FRAMINGS = frozenset({"json", "lines", ""})


class FrameError(ValueError):
    """A frame that is not one this node can act on."""


@dataclass(frozen=True, slots=True)
class Attach:
    tag: ClassVar[str] = "J"
    link: int
    lobby: str
    topology: str
    address: str
    peer_id: int
    # The peer's identity as a JSON value (see `wire_identity`).
    identity: object
    # What its client speaks (`Peer.framing`) and its quick-match pool (""
    # = none), for the owner's snapshots (events, the admin API).
    framing: str
    pool: str


@dataclass(frozen=True, slots=True)
class Forward:
    tag: ClassVar[str] = "m"
    link: int
    type: int
    id: int
    data: str


@dataclass(frozen=True, slots=True)
class JoinAgain:
    tag: ClassVar[str] = "j"
    link: int
    lobby: str
    topology: str


@dataclass(frozen=True, slots=True)
class Gone:
    tag: ClassVar[str] = "g"
    link: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Deliver:
    tag: ClassVar[str] = "s"
    link: int
    type: int
    id: int
    data: str


@dataclass(frozen=True, slots=True)
class Identify:
    tag: ClassVar[str] = "i"
    link: int
    id: int
    topology: str


@dataclass(frozen=True, slots=True)
class Detach:
    tag: ClassVar[str] = "c"
    link: int
    code: int
    reason: str


# What an `Ask` may ask (see `control.ClusterControl`).
COMMANDS = frozenset({"lobbies", "lobby", "seal", "close", "kick"})


@dataclass(frozen=True, slots=True)
class Ask:
    tag: ClassVar[str] = "q"
    ask: int
    command: str
    lobby: str
    peer: int
    reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    tag: ClassVar[str] = "a"
    ask: int
    # The command's answer: it was done, or the lobby was found.
    done: bool
    lobbies: tuple[LobbyInfo, ...]


Frame = Attach | Forward | JoinAgain | Gone | Deliver | Identify | Detach | Ask | Reply


def encode(frame: Frame) -> list[Any]:
    """``frame`` as the JSON array the bus carries."""
    if isinstance(frame, Reply):
        return [frame.tag, frame.ask, frame.done, [_lobby_wire(info) for info in frame.lobbies]]
    return [frame.tag, *astuple(frame)]


def decode(raw: object) -> Frame:
    """The frame a JSON array stands for; `FrameError` if it is none."""
    if type(raw) is not list or not raw or type(raw[0]) is not str:
        raise FrameError("not a frame")
    kind = _KINDS.get(raw[0])
    if kind is None:
        raise FrameError(f"unknown frame {raw[0]!r}")
    cls, types = kind
    values = raw[1:]
    if len(values) != len(types):
        raise FrameError(f"{raw[0]!r} frame of {len(values)} fields")
    for value, expected in zip(values, types, strict=True):
        if expected is not object and type(value) is not expected:
            raise FrameError(f"{raw[0]!r} frame with a bad field {value!r}")
    frame: Frame = _replied(values) if cls is Reply else cls(*values)
    _check(frame)
    return frame


def _replied(values: list[Any]) -> Reply:
    ask, done, lobbies = values
    return Reply(ask, done, tuple(_lobby_info(raw) for raw in lobbies))


def _check(frame: Frame) -> None:
    topology = getattr(frame, "topology", None)
    if topology is not None and topology not in TOPOLOGIES:
        raise FrameError(f"unknown topology {topology!r}")
    if isinstance(frame, Attach) and not MIN_PEER_ID <= frame.peer_id <= MAX_PEER_ID:
        raise FrameError(f"peer id {frame.peer_id} out of range")
    if isinstance(frame, Attach) and frame.framing not in FRAMINGS:
        raise FrameError(f"unknown framing {frame.framing!r}")
    if isinstance(frame, Ask) and frame.command not in COMMANDS:
        raise FrameError(f"unknown command {frame.command!r}")


_KINDS: dict[str, tuple[type[Any], tuple[type, ...]]] = {
    Attach.tag: (Attach, (int, str, str, str, int, object, str, str)),
    Forward.tag: (Forward, (int, int, int, str)),
    JoinAgain.tag: (JoinAgain, (int, str, str)),
    Gone.tag: (Gone, (int, int, str)),
    Deliver.tag: (Deliver, (int, int, int, str)),
    Identify.tag: (Identify, (int, int, str)),
    Detach.tag: (Detach, (int, int, str)),
    Ask.tag: (Ask, (int, str, str, int, str)),
    Reply.tag: (Reply, (int, bool, list)),
}


# -- lobbies in a Reply -------------------------------------------------------------

_NONE = type(None)


def _peer_wire(info: PeerInfo) -> list[Any]:
    return [
        info.peer_id,
        info.lobby_id,
        info.lobby,
        wire_identity(info.identity),
        info.address,
        info.framing,
        info.pool,
    ]


def _lobby_wire(info: LobbyInfo) -> list[Any]:
    host = _peer_wire(info.host) if info.host is not None else None
    return [
        info.name,
        info.mesh,
        info.sealed,
        info.reserved,
        host,
        [_peer_wire(member) for member in info.members],
        info.created,
        info.pool,
        info.title,
        info.size,
        info.listed,
    ]


_PEER_FIELDS = ((int,), (int, _NONE), (str, _NONE), (object,), (str,), (str,), (str, _NONE))
_LOBBY_FIELDS = (
    (str,),
    (bool,),
    (bool,),
    (bool,),
    (list, _NONE),
    (list,),
    (float, int),
    (str, _NONE),
    (str, _NONE),
    (int, _NONE),
    (bool,),
)


def _fields(raw: object, kinds: tuple[tuple[type, ...], ...], what: str) -> list[Any]:
    if type(raw) is not list or len(raw) != len(kinds):
        raise FrameError(f"not a {what}")
    for value, allowed in zip(raw, kinds, strict=True):
        if allowed != (object,) and type(value) not in allowed:
            raise FrameError(f"a {what} with a bad field {value!r}")
    return raw


def _peer_info(raw: object) -> PeerInfo:
    return PeerInfo(*_fields(raw, _PEER_FIELDS, "peer"))


def _lobby_info(raw: object) -> LobbyInfo:
    values = _fields(raw, _LOBBY_FIELDS, "lobby")
    name, mesh, sealed, reserved, host, members, *rest = values
    return LobbyInfo(
        name,
        mesh,
        sealed,
        reserved,
        _peer_info(host) if host is not None else None,
        tuple(_peer_info(member) for member in members),
        float(rest[0]),
        *rest[1:],
    )


def wire_identity(identity: object) -> object:
    """What the lobby's node is told of a peer's identity, for its PeerInfo
    (events, observers): a JSON value as it is, anything else as its text
    (a token's identity is its subject)."""
    if identity is None or type(identity) in (str, int, float, bool):
        return identity
    return str(identity)
