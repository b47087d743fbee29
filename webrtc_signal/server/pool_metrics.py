"""Prometheus metrics of quick-match pools and the lobby list, beside the
server's own (`metrics`) in the same registry:

- ``webrtc_signal_pool_lobbies_created_total{pool}``: pool lobbies created;
- ``webrtc_signal_pool_lobbies_filling{pool}``: pool lobbies waiting for
  players now;
- ``webrtc_signal_pool_lobbies_sealed_total{pool}``: pool lobbies that
  started (full, or at ``min`` once their ``wait`` ran out, or sealed by
  their host);
- ``webrtc_signal_pool_lobbies_abandoned_total{pool}``: pool lobbies closed
  before they started (their host left, they expired...);
- ``webrtc_signal_pool_fill_seconds{pool}``: seconds from a pool lobby's
  creation to its start: how long players wait;
- ``webrtc_signal_listed_lobbies``: lobbies on the public list now;
- ``webrtc_signal_lobby_list_requests_total{status}``: ``GET /lobbies``
  answers by HTTP status (429: over ``--max-list-rate``).

Pools are named by clients, so the label is bounded: the first
`MAX_POOL_LABELS` pools seen get a value of their own, later ones count under
``pool="other"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime

from ..protocol.core import Signaling
from ..protocol.events import Event, LobbyClosed, LobbyCreated, LobbySealed

MAX_POOL_LABELS = 50
OTHER = "other"
# Seconds players wait for a pool lobby to fill: a few seconds when the pool
# is busy, up to the longest ``wait`` (600 s) when it is not.
FILL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class PoolMetrics(Collector):
    """Observes the core's lobby events (`observe`) and reads the lobby
    list's size and ``GET /lobbies`` answers (``list_answers``) at scrape
    time."""

    def __init__(
        self,
        core: Signaling[Any],
        clock: IReactorTime,
        list_answers: Callable[[], dict[int, int]],
        registry: CollectorRegistry,
    ) -> None:
        self._core = core
        self._clock = clock
        self._list_answers = list_answers
        self._labels: set[str] = set()
        # Pool lobbies not yet started: name -> (pool label, created).
        self._filling: dict[str, tuple[str, float]] = {}
        self.created: dict[str, int] = {}
        self.sealed: dict[str, int] = {}
        self.abandoned: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        registry.register(self)
        self.fill_time = Histogram(
            "webrtc_signal_pool_fill_seconds",
            "Seconds from a quick-match lobby's creation to its start (full, or at min "
            "after wait).",
            ["pool"],
            buckets=FILL_BUCKETS,
            registry=registry,
        )

    def _label(self, pool: str) -> str:
        if pool in self._labels:
            return pool
        if len(self._labels) < MAX_POOL_LABELS:
            self._labels.add(pool)
            return pool
        return OTHER

    def observe(self, event: Event) -> None:
        kind = type(event)
        if kind is LobbyCreated:
            created: LobbyCreated = event  # type: ignore[assignment]
            if created.pool is not None:
                label = self._label(created.pool)
                self._filling[created.lobby] = (label, self._clock.seconds())
                _bump(self.created, label, 1)
                _bump(self.waiting, label, 1)
        elif kind is LobbySealed or kind is LobbyClosed:
            name: str = event.lobby  # type: ignore[union-attr]
            found = self._filling.pop(name, None)
            if found is None:
                return
            label, since = found
            _bump(self.waiting, label, -1)
            if kind is LobbySealed:
                _bump(self.sealed, label, 1)
                self.fill_time.labels(label).observe(self._clock.seconds() - since)
            else:
                _bump(self.abandoned, label, 1)

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield _family(
            CounterMetricFamily,
            "webrtc_signal_pool_lobbies_created_total",
            "Quick-match lobbies created, by pool.",
            self.created,
        )
        yield _family(
            GaugeMetricFamily,
            "webrtc_signal_pool_lobbies_filling",
            "Quick-match lobbies waiting for players now, by pool.",
            self.waiting,
        )
        yield _family(
            CounterMetricFamily,
            "webrtc_signal_pool_lobbies_sealed_total",
            "Quick-match lobbies that started (full, at min after wait, or sealed), by pool.",
            self.sealed,
        )
        yield _family(
            CounterMetricFamily,
            "webrtc_signal_pool_lobbies_abandoned_total",
            "Quick-match lobbies closed before they started, by pool.",
            self.abandoned,
        )
        yield GaugeMetricFamily(
            "webrtc_signal_listed_lobbies",
            "Lobbies on the public list (GET /lobbies) now, full ones included.",
            value=len(self._core.lobby_list),
        )
        requests = CounterMetricFamily(
            "webrtc_signal_lobby_list_requests_total",
            "GET /lobbies answers, by HTTP status (429: over --max-list-rate).",
            labels=["status"],
        )
        for status, count in sorted(dict(self._list_answers()).items()):
            requests.add_metric([str(status)], count)
        yield requests


def _bump(counts: dict[str, int], key: str, by: int) -> None:
    counts[key] = counts.get(key, 0) + by


def _family(cls: Any, name: str, documentation: str, values: dict[str, int]) -> Metric:
    family = cls(name, documentation, labels=["pool"])
    for pool, count in sorted(dict(values).items()):
        family.add_metric([pool], count)
    return family  # type: ignore[no-any-return]
