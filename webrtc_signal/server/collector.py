"""Python's cyclic garbage collector, tuned for a long-running server.

At start-up the process holds some 100,000 objects (modules, classes,
functions) that live as long as it does; every full collection walked them
all again. Once the server is up they are moved out of the collector's
sight (`gc.freeze`). A client that comes and goes leaves a few cycles
(a connection and its transport refer to each other) among a few hundred
short-lived containers; with Python's default first threshold (700
allocations) a collection ran every few connections. A larger threshold
runs them a tenth as often, for at most a few megabytes of garbage waiting
a little longer.
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) of container objects between two
# collections of the youngest generation; Python's default is 700.
YOUNG_THRESHOLD = 10_000


def settle_after_start() -> None:
    """Freeze what start-up made and raise the youngest threshold (once the
    server is up and serving)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
