"""The protocol's message model, independent of any wire framing."""

from dataclasses import dataclass
from enum import IntEnum


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
    types the protocol does not define, and the core must answer those too."""

    type: int
    id: int
    data: str = ""
