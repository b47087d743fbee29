"""Prometheus metrics: what the server did, as numbers to graph and alert on.

Two sources feed them:

- an observer of the public events (`webrtc_signal.events`), for everything
  that happens once per connection or lobby: connections accepted and
  refused, closes, lobbies created, sealed and closed, the lobby gauges and
  the histograms (timed on the service's clock, ``factory.clock``);
- `TrafficCounts`, which the adapter updates itself for what makes no event:
  relayed messages and bytes, ICE candidate types, and connections refused
  at the upgrade before any peer exists (origin, per-address limit, server
  full, draining, oversized request).

Both only add to plain integers; `SignalingMetrics` turns them into metric
families when Prometheus scrapes (a custom collector), so the relay path pays
a few integer additions per message and no lock or label lookup.

Label values are bounded. Close and refusal reasons come from the fixed
table (`reasons.CloseReason`) and the adapter's own upgrade refusals; a game
server's hooks may add any text (``Refused``, ``kick``, ``close_lobby``), so
at most `MAX_EXTRA_REASONS` distinct texts beyond those get a label value of
their own, and later ones count under ``reason="other"``. A client's own close
reason is never a label (a client can write anything there); its close code
is one only if RFC 6455 defines it (1000-1015), else ``"other"``.

The scrape may run in another thread (``prometheus_client``'s Twisted
resource is a WSGI application on the reactor's thread pool): the collector
only reads integers and copies of small dictionaries, which is safe beside
the reactor thread under the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IReactorTime

from ..protocol.core import Signaling
from ..protocol.events import (
    ConnectionRefused,
    Event,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
)
from ..protocol.messages import HOST_ID, MessageType
from ..protocol.reasons import RESERVATION_EXPIRED, CloseReason, UpgradeRefusal
from .traffic import CANDIDATE, CANDIDATE_TYPES, TrafficCounts

# Distinct reason texts, beyond the server's own, that get a label value.
MAX_EXTRA_REASONS = 50
OTHER = "other"

_KNOWN_REASONS = frozenset(
    [reason.text for reason in CloseReason]
    + [RESERVATION_EXPIRED.text]
    + [refusal.text for refusal in UpgradeRefusal]
)
RELAYED_TYPES = (
    ("offer", int(MessageType.OFFER)),
    ("answer", int(MessageType.ANSWER)),
    ("candidate", CANDIDATE),
)

# Histogram buckets. Lobbies live seconds to minutes (players join, trade
# offers and candidates, the host seals, --seal-timeout later they are closed).
LIFETIME_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
SEAL_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
# Game lobbies: 2-8 players mostly, 16 for big meshes, more for client-server.
MEMBERS_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64)


class _ReasonLabels:
    """Reason texts to label values: the server's own always; at most
    `MAX_EXTRA_REASONS` others (from hooks), then `OTHER`."""

    def __init__(self) -> None:
        self._extra: set[str] = set()

    def __call__(self, text: str) -> str:
        if text in _KNOWN_REASONS or text in self._extra:
            return text
        if len(self._extra) < MAX_EXTRA_REASONS:
            self._extra.add(text)
            return text
        return OTHER


def _client_code(code: int) -> str:
    # RFC 6455 defines 1000-1015; a client may send any code 1000-4999.
    return str(code) if 1000 <= code <= 1015 else OTHER


@dataclass(slots=True)
class _Lobby:
    """What the metrics remember about an open lobby."""

    created: float
    mesh: bool
    reserved: bool
    sealed: bool = False


def _bump(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1


class SignalingMetrics(Collector):
    """The metrics of one server (its core, clock and traffic counts), in ``registry``.

    The default registry is a fresh one per service, not prometheus_client's
    process-wide ``REGISTRY``: two services in one process (tests, a game
    server hosting two) would otherwise register the same names twice, and
    an embedder's own metrics stay apart unless it passes its registry in.
    Registering two services in one registry raises ``ValueError``
    (duplicated time series).

    `observe` is the event observer (`SignalingService` adds it); `collect`
    is what the registry calls at each scrape.
    """

    def __init__(
        self,
        core: Signaling[Any],
        clock: IReactorTime,
        traffic: TrafficCounts,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self._signaling = core
        self._traffic = traffic
        self._reason = _ReasonLabels()
        self.accepted = 0
        # Refusals that make a ConnectionRefused event: (code, reason label) -> count.
        self.refused: dict[tuple[int, str], int] = {}
        # (code label, reason label, "server" | "client") -> count.
        self.closes: dict[tuple[str, str, str], int] = {}
        self.lobbies_created = 0
        self.lobbies_sealed = 0
        self.lobbies_closed: dict[str, int] = {}
        self.lobbies_without_relay = 0
        self._lobbies: dict[str, _Lobby] = {}
        # Open lobbies with a host, by (mesh, sealed); reserved ones apart.
        self._open = {(mesh, sealed): 0 for mesh in (True, False) for sealed in (False, True)}
        self._reserved = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            PeerConnected: self._connected,
            PeerDisconnected: self._disconnected,
            ConnectionRefused: self._connection_refused,
            LobbyCreated: self._created,
            PeerJoined: self._joined,
            LobbySealed: self._sealed,
            LobbyClosed: self._closed,
        }
        # The families read at scrape time first, then the histograms.
        self.registry.register(self)
        self.lifetime = Histogram(
            "webrtc_signal_lobby_lifetime_seconds",
            "Seconds from a lobby's creation (or reservation) to its close.",
            buckets=LIFETIME_BUCKETS,
            registry=self.registry,
        )
        self.seal_time = Histogram(
            "webrtc_signal_lobby_seal_seconds",
            "Seconds from a lobby's creation (or reservation) to its seal.",
            buckets=SEAL_BUCKETS,
            registry=self.registry,
        )
        self.members_at_seal = Histogram(
            "webrtc_signal_lobby_members_at_seal",
            "Members of a lobby (host included) when it was sealed.",
            buckets=MEMBERS_BUCKETS,
            registry=self.registry,
        )

    # -- the observer -----------------------------------------------------------

    def observe(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _connected(self, event: PeerConnected) -> None:
        self.accepted += 1

    def _connection_refused(self, event: ConnectionRefused) -> None:
        _bump(self.refused, (event.code, self._reason(event.reason)))

    def _disconnected(self, event: PeerDisconnected) -> None:
        if event.by_server:
            key = (str(event.code), self._reason(event.reason), "server")
        else:
            key = (_client_code(event.code), "", "client")
        _bump(self.closes, key)

    def _created(self, event: LobbyCreated) -> None:
        self.lobbies_created += 1
        reserved = event.host is None
        self._lobbies[event.lobby] = _Lobby(self._clock.seconds(), event.mesh, reserved)
        if reserved:
            self._reserved += 1
        else:
            self._open[event.mesh, False] += 1

    def _joined(self, event: PeerJoined) -> None:
        lobby = self._lobbies.get(event.lobby)
        if lobby is not None and lobby.reserved and event.peer.lobby_id == HOST_ID:
            # A reserved lobby claimed by its host: an open lobby from now on.
            lobby.reserved = False
            self._reserved -= 1
            self._open[lobby.mesh, False] += 1

    def _sealed(self, event: LobbySealed) -> None:
        self.lobbies_sealed += 1
        self.members_at_seal.observe(event.members)
        lobby = self._lobbies.get(event.lobby)
        if lobby is None:
            return
        lobby.sealed = True
        self._open[lobby.mesh, False] -= 1
        self._open[lobby.mesh, True] += 1
        self.seal_time.observe(self._clock.seconds() - lobby.created)

    def _closed(self, event: LobbyClosed) -> None:
        _bump(self.lobbies_closed, self._reason(event.reason))
        relay_seen = event.lobby in self._traffic.relay_lobbies
        self._traffic.relay_lobbies.discard(event.lobby)
        lobby = self._lobbies.pop(event.lobby, None)
        if lobby is None:
            return
        if lobby.reserved:
            self._reserved -= 1
        else:
            self._open[lobby.mesh, lobby.sealed] -= 1
        self.lifetime.observe(self._clock.seconds() - lobby.created)
        if lobby.sealed and not relay_seen:
            self.lobbies_without_relay += 1

    # -- the collector ------------------------------------------------------------

    def describe(self) -> list[Metric]:
        # The names, for the registry's duplicate check.
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        yield from self._connections()
        yield from self._lobby_counters()
        yield from self._relays()

    def _gauges(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "webrtc_signal_peers",
            "Connected peers (WebSockets holding a peer slot; what --max-peers limits).",
            value=len(self._signaling.peers),
        )
        lobbies = GaugeMetricFamily(
            "webrtc_signal_lobbies",
            "Open lobbies with a host, by mode and whether they are sealed.",
            labels=["mode", "sealed"],
        )
        for (mesh, sealed), count in list(self._open.items()):
            lobbies.add_metric(
                ["mesh" if mesh else "client-server", "true" if sealed else "false"], count
            )
        yield lobbies
        yield GaugeMetricFamily(
            "webrtc_signal_reserved_lobbies",
            "Lobbies reserved (reserve_lobby) and not yet claimed by their host.",
            value=self._reserved,
        )

    def _connections(self) -> Iterator[Metric]:
        connections = CounterMetricFamily(
            "webrtc_signal_connections_total",
            "WebSocket connections: accepted (given a peer slot) or refused, with the "
            "HTTP status (at the upgrade) or close code, and the reason.",
            labels=["outcome", "code", "reason"],
        )
        connections.add_metric(["accepted", "", ""], self.accepted)
        refusals: dict[tuple[int, str], int] = dict(self.refused)
        for (status, text), count in list(self._traffic.refusals.items()):
            key = (status, self._reason(text))
            refusals[key] = refusals.get(key, 0) + count
        for (code, reason), count in sorted(refusals.items()):
            # 0: closed without an HTTP answer (unfinished handshakes).
            connections.add_metric(["refused", str(code) if code else "", reason], count)
        yield connections

        closes = CounterMetricFamily(
            "webrtc_signal_closes_total",
            "Peers gone, by close code and reason; by=server for the server's closes, "
            "by=client for the client's own (its reason is not recorded).",
            labels=["code", "reason", "by"],
        )
        for labels, count in sorted(list(self.closes.items())):
            closes.add_metric(list(labels), count)
        yield closes

    def _lobby_counters(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "webrtc_signal_lobbies_created_total",
            "Lobbies created, reservations included.",
            value=self.lobbies_created,
        )
        yield CounterMetricFamily(
            "webrtc_signal_lobbies_sealed_total", "Lobbies sealed.", value=self.lobbies_sealed
        )
        closed = CounterMetricFamily(
            "webrtc_signal_lobbies_closed_total",
            "Lobbies closed, by the reason their members were told.",
            labels=["reason"],
        )
        for reason, count in sorted(list(self.lobbies_closed.items())):
            closed.add_metric([reason], count)
        yield closed
        yield CounterMetricFamily(
            "webrtc_signal_lobbies_without_relay_total",
            "Sealed lobbies that closed without a relay (TURN) candidate ever relayed in them.",
            value=self.lobbies_without_relay,
        )

    def _relays(self) -> Iterator[Metric]:
        traffic = self._traffic
        messages = CounterMetricFamily(
            "webrtc_signal_relayed_messages_total",
            "Messages relayed from one peer to another, by type.",
            labels=["type"],
        )
        data_bytes = CounterMetricFamily(
            "webrtc_signal_relayed_bytes_total",
            "Bytes of the messages relayed (the WebSocket payload: the JSON or line-format "
            "message as sent to its destination), by message type.",
            labels=["type"],
        )
        for name, kind in RELAYED_TYPES:
            count = sum(traffic.candidates) if kind == CANDIDATE else traffic.messages[kind]
            messages.add_metric([name], count)
            data_bytes.add_metric([name], traffic.bytes[kind])
        yield messages
        yield data_bytes

        candidates = CounterMetricFamily(
            "webrtc_signal_candidates_total",
            "Relayed ICE candidates by the typ of their candidate line (unknown: none).",
            labels=["candidate_type"],
        )
        for name, count in zip(CANDIDATE_TYPES, list(traffic.candidates), strict=True):
            candidates.add_metric([name], count)
        yield candidates
