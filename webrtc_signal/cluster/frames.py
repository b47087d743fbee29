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
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, ClassVar

from ..protocol.names import MAX_PEER_ID, MIN_PEER_ID
from ..protocol.topology import CLIENT_SERVER, MESH, Topology

TOPOLOGIES: dict[str, Topology] = {MESH.name: MESH, CLIENT_SERVER.name: CLIENT_SERVER}


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


Frame = Attach | Forward | JoinAgain | Gone | Deliver | Identify | Detach


def encode(frame: Frame) -> list[Any]:
    """``frame`` as the JSON array the bus carries."""
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
    frame: Frame = cls(*values)
    _check(frame)
    return frame


def _check(frame: Frame) -> None:
    topology = getattr(frame, "topology", None)
    if topology is not None and topology not in TOPOLOGIES:
        raise FrameError(f"unknown topology {topology!r}")
    if isinstance(frame, Attach) and not MIN_PEER_ID <= frame.peer_id <= MAX_PEER_ID:
        raise FrameError(f"peer id {frame.peer_id} out of range")


_KINDS: dict[str, tuple[type[Any], tuple[type, ...]]] = {
    Attach.tag: (Attach, (int, str, str, str, int, object)),
    Forward.tag: (Forward, (int, int, int, str)),
    JoinAgain.tag: (JoinAgain, (int, str, str)),
    Gone.tag: (Gone, (int, int, str)),
    Deliver.tag: (Deliver, (int, int, int, str)),
    Identify.tag: (Identify, (int, int, str)),
    Detach.tag: (Detach, (int, int, str)),
}


def wire_identity(identity: object) -> object:
    """What the lobby's node is told of a peer's identity, for its PeerInfo
    (events, observers): a JSON value as it is, anything else as its text
    (a token's identity is its subject)."""
    if identity is None or type(identity) in (str, int, float, bool):
        return identity
    return str(identity)
