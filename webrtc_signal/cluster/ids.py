"""Peer ids unique across the cluster.

The core draws a peer's id synchronously when its connection opens, but a
claim in Redis takes a round trip. So each node keeps a pool of random ids it
has already claimed (``peer:<id>`` = its incarnation, `Bus.claim_peer_ids`)
and refills it in the background when it runs low. A peer keeps the id its
edge gave it on every node (the owner of its lobby reuses it), so a claim by
the edge is enough. A claim is only as good as its incarnation's liveness:
ids held by a dead incarnation may be taken over, as its lobbies are.

When the pool is empty (a burst larger than it, or Redis unreachable), an id
is drawn locally and claimed as soon as possible: it then clashes with an id
held elsewhere only with the odds of a random draw among the ids in use (one
in 2^31 per peer in use). The owner refuses a remote peer whose id it already
has (1013), so a clash never misroutes a message. After Redis comes back, the
node claims again the ids of all its peers under its new incarnation.
"""

from __future__ import annotations

import random
from collections.abc import Container

from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.names import MAX_PEER_ID, MIN_PEER_ID
from .bus import Bus

_log = Logger(namespace="webrtc_signal.cluster")

# The pool is refilled when it has fewer ids than LOW, with BATCH fresh ones
# (more after a burst emptied it).
LOW = 64
BATCH = 128
MAX_BATCH = 4096


class ClusterPeerIds:
    """The core's source of peer ids on a cluster node (see `protocol.names.PeerIds`)."""

    def __init__(self, bus: Bus, rng: random.Random) -> None:
        self.bus = bus
        self.rng = rng
        # Claimed under the current incarnation, not in use yet.
        self.free: list[int] = []
        # The ids of this node's own peers (claimed or not).
        self.used: set[int] = set()
        # Ids in use not claimed under the current incarnation (yet).
        self.unclaimed: set[int] = set()
        # Given back by peers that left, to release at the next flush.
        self.released: list[int] = []
        self._releasing: set[int] = set()
        # Incarnation of the claim under way ("" = none).
        self._claiming = ""
        # Ids drawn while the pool was empty since the last refill.
        self._starved = 0

    def new_id(self, taken: Container[int]) -> int:
        """A fresh id for a peer of this node; ``taken``: the ids its core uses."""
        free = self.free
        while free:
            peer_id = free.pop()
            if peer_id not in taken:
                break
        else:
            peer_id = self._random(taken)
            self.unclaimed.add(peer_id)
            self._starved += 1
        self.used.add(peer_id)
        if len(free) < LOW:
            self.refill()
        return peer_id

    def release(self, peer_id: int) -> None:
        """This node's peer ``peer_id`` left."""
        if peer_id in self.used:
            self.used.discard(peer_id)
            if peer_id in self.unclaimed:
                # Never claimed (or lost in a clash): a release could only
                # take it from whoever holds it.
                self.unclaimed.discard(peer_id)
            else:
                self.released.append(peer_id)
                self._releasing.add(peer_id)

    def flush(self) -> None:
        """Release the ids given back this turn, in one command."""
        if self.released:
            released, self.released = self.released, []
            self._releasing.clear()
            self.bus.release_peer_ids(released)

    def _random(self, taken: Container[int]) -> int:
        randint = self.rng.randint
        while True:
            candidate = randint(MIN_PEER_ID, MAX_PEER_ID)
            if (
                candidate not in taken
                and candidate not in self.used
                and candidate not in self._releasing
            ):
                return candidate

    def refill(self) -> None:
        """Claim fresh ids for the pool, and the ids in use not claimed yet."""
        bus = self.bus
        if not bus.up or self._claiming:
            return
        if len(self.free) >= LOW and not self.unclaimed:
            return
        size = min(MAX_BATCH, max(BATCH, 2 * self._starved))
        self._starved = 0
        pooled = set(self.free)
        candidates: list[int] = []
        while len(candidates) < size:
            candidate = self._random(pooled)
            pooled.add(candidate)
            candidates.append(candidate)
        in_use = list(self.unclaimed)
        incarnation = self._claiming = bus.incarnation
        asked = bus.claim_peer_ids(in_use + candidates)
        asked.addCallbacks(self._claimed, self._failed, (incarnation, in_use, candidates))

    def _claimed(
        self, got: list[int], incarnation: str, in_use: list[int], candidates: list[int]
    ) -> None:
        if incarnation != self._claiming or incarnation != self.bus.incarnation:
            return  # Redis was lost meanwhile: bus_up starts again
        self._claiming = ""
        ours = set(got)
        for peer_id in in_use:
            self._in_use_claimed(peer_id, peer_id in ours)
        # Drawn locally meanwhile are in use already: only the rest are free.
        self.free.extend(p for p in candidates if p in ours and p not in self.used)
        self.flush()
        if len(self.free) < LOW or self.unclaimed:
            self.refill()

    def _in_use_claimed(self, peer_id: int, ours: bool) -> None:
        """The answer to the claim of an id in use when it was asked."""
        if peer_id not in self.unclaimed:
            # Left meanwhile: the claim just made is released.
            if ours and peer_id not in self.used:
                self.released.append(peer_id)
                self._releasing.add(peer_id)
            return
        self.unclaimed.discard(peer_id)
        if not ours:
            # Held by a live node: a clash. Rare (a burst or an outage and a
            # one in 2^31 draw); the owner of any lobby both might meet in
            # refuses the second.
            _log.warn("cluster: peer id {peer_id} is held by another node", peer_id=peer_id)

    def _failed(self, failure: Failure, incarnation: str, *_: object) -> None:
        if incarnation == self._claiming:
            self._claiming = ""
        # The bus reports the loss itself (bus_down, then bus_up refills).

    def bus_down(self) -> None:
        """Claims die with the incarnation: nothing in the pool is ours any more."""
        self.free.clear()
        self.released.clear()
        self._releasing.clear()
        self._claiming = ""
        self.unclaimed |= self.used

    def bus_up(self) -> None:
        self.refill()
