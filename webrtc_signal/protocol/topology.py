"""Lobby topologies: who in a lobby is told about whom, and who may relay to whom.

A lobby gets its topology when it is created and keeps it. The core asks the
topology, and only the topology, whether one member sees another: when a peer
joins (who hears PEER_CONNECT), when it leaves (who hears PEER_DISCONNECT) and
on every relay (whether the destination is valid). A new topology is a new
subclass here (and, for clients to ask for it, a wire form in the codecs);
the core needs no change.

Members are compared by identity only, so this module knows nothing of the
core's `Peer`. The core never asks whether a member sees itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Topology(ABC):
    """How the members of a lobby are connected. Stateless: one instance per kind."""

    __slots__ = ()

    @property
    @abstractmethod
    def name(self) -> str:
        """What logs and humans call it."""

    @abstractmethod
    def can_see(self, host: object, viewer: object, other: object) -> bool:
        """Whether ``viewer`` is told about ``other`` and may relay to it, in a
        lobby hosted by ``host``. Must be symmetric: when it is not, a peer
        would hear of one it cannot answer, or relay to one that never heard
        of it. ``viewer`` and ``other`` are distinct members."""

    def __repr__(self) -> str:
        return f"<{self.name} topology>"


class Mesh(Topology):
    """Every member sees every other: each pair opens its own connection."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return "mesh"

    def can_see(self, host: object, viewer: object, other: object) -> bool:
        return True


class ClientServer(Topology):
    """The host sees everyone; the others see only the host, never each other."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return "client-server"

    def can_see(self, host: object, viewer: object, other: object) -> bool:
        return viewer is host or other is host


MESH: Topology = Mesh()
CLIENT_SERVER: Topology = ClientServer()
