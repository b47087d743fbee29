"""Where the core's lobby names and peer ids come from.

The core takes both sources as constructor arguments (`Signaling`), so that a
server that shares lobbies with other processes (the cluster) can hand it
names and ids that are unique beyond one process, without touching the core.
The defaults here are those of a single server.
"""

from __future__ import annotations

import random
import secrets
import string
from collections.abc import Container
from typing import Protocol

LOBBY_NAME_ALPHABET = string.ascii_letters + string.digits
LOBBY_NAME_LENGTH = 16
_LOBBY_NAMES = len(LOBBY_NAME_ALPHABET) ** LOBBY_NAME_LENGTH
_LOBBY_NAME_BITS = _LOBBY_NAMES.bit_length()
# Peer ids are drawn from [2, 2^31-1]: 0 means "no peer" and 1 is the host's alias.
MIN_PEER_ID = 2
MAX_PEER_ID = 2**31 - 1


class LobbyNames(Protocol):
    def new_name(self, taken: Container[str]) -> str:
        """A fresh lobby name, not among ``taken``."""


class PeerIds(Protocol):
    def new_id(self, taken: Container[int]) -> int:
        """A fresh peer id in [`MIN_PEER_ID`, `MAX_PEER_ID`], not among ``taken``."""

    def release(self, peer_id: int) -> None:
        """``peer_id``, which `new_id` gave, is free again."""


class RandomLobbyNames:
    """Lobby names are the secret that lets one join: drawn from a
    cryptographic source (`secrets.SystemRandom` unless ``rng`` is given,
    as tests do)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or secrets.SystemRandom()

    def new_name(self, taken: Container[str]) -> str:
        while True:
            # One draw of random bits (one system call with SystemRandom), not
            # one per character; redrawn rather than reduced, so every name
            # is equally likely.
            number = self.rng.getrandbits(_LOBBY_NAME_BITS)
            if number >= _LOBBY_NAMES:
                continue
            characters = []
            for _ in range(LOBBY_NAME_LENGTH):
                number, digit = divmod(number, len(LOBBY_NAME_ALPHABET))
                characters.append(LOBBY_NAME_ALPHABET[digit])
            name = "".join(characters)
            if name not in taken:
                return name


class RandomPeerIds:
    """Peer ids grant nothing (a peer only ever reaches the peers its lobby
    shows it), so a fast generator, seeded from the system's, spares a system
    call per connection."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def new_id(self, taken: Container[int]) -> int:
        while True:
            candidate = self.rng.randint(MIN_PEER_ID, MAX_PEER_ID)
            if candidate not in taken:
                return candidate

    def release(self, peer_id: int) -> None:
        """Nothing to do: ``taken`` tells which ids are in use."""
