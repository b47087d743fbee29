"""The protocol's message model, independent of any wire framing.

Most messages are a plain `Message`: a type, a peer id and a string, carried
as they are. The two whose wire form follows a convention of the framing
have their own types, so that nothing above the codecs speaks those
conventions: `Join` (the lobby topology a creator asks for) and `Identity`
(the topology of the lobby a peer has joined).
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from .topology import Topology


class MessageType(IntEnum):
    JOIN = 0
    ID = 1
    PEER_CONNECT = 2
    PEER_DISCONNECT = 3
    OFFER = 4
    ANSWER = 5
    CANDIDATE = 6
    SEAL = 7


RELAY_TYPES = frozenset({MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE})

# The lobby host always appears to the other members under this id.
HOST_ID = 1


# Not frozen: a frozen dataclass's __init__ costs three times as much, and
# two are made per relayed message. Nothing changes a message once made.
@dataclass(slots=True)
class Message:
    """One protocol message. ``type`` is a plain int because clients may send
    types the protocol does not define, and the core must answer those too.
    A JOIN from a client and an ID from the server are never a `Message`
    but a `Join` and an `Identity`; a JOIN from the server (the lobby joined)
    is one, with id 0."""

    type: int
    id: int
    data: str = ""


@dataclass(slots=True)
class Join:
    """JOIN from a client: create a lobby (``lobby == ""``) of ``topology``,
    or join the lobby named ``lobby`` (then ``topology`` is not used: a lobby
    keeps the topology it was created with)."""

    type: ClassVar[int] = MessageType.JOIN
    lobby: str
    topology: Topology


@dataclass(slots=True)
class Identity:
    """ID from the server: the id a peer has in the lobby it joined (the host
    is `HOST_ID`) and that lobby's topology."""

    type: ClassVar[int] = MessageType.ID
    id: int
    topology: Topology


# What a codec reads from, or writes to, the wire.
AnyMessage = Message | Join | Identity
