"""Webhooks: every lobby event POSTed, signed, to a game backend's URLs.

`WebhookSender` is an observer (``service.add_observer(sender.observe)``).
Each lobby event becomes one JSON object::

    {"id": "5f0c...", "type": "peer_joined", "time": "2024-05-01T12:00:00.250Z",
     "node": "", "lobby": "AbCd...", "pool": null, "peer": 123456,
     "identity": "alice", "reason": null}

``type`` is one of `EVENT_TYPES`' values; ``peer`` is the server-wide peer
id (what the admin API's kick takes), null for lobby-wide events; ``reason``
the text of a ``peer_left`` or ``lobby_closed``, else null. Each POST carries
``Webrtc-Signal-Timestamp`` (seconds since the epoch) and
``Webrtc-Signal-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
with the shared secret (see `sign`, `verify`).

Delivery never holds up signaling: `observe` only queues. Per URL there is
one bounded queue (``queue_limit`` events, 10000 by default); a lobby's
events go out one after the other, in order, while different lobbies are
delivered concurrently (at most ``concurrency`` at once per URL). A failed
delivery (no connection, a timeout, 408, 429 or 5xx) is retried with
exponential backoff (0.5 s doubling, at most `MAX_RETRY_DELAY` apart) for up
to ``retry_for`` seconds (60) from its first attempt, then dropped; any
other answer but 2xx drops it at once (the receiver said no: a retry would
hear the same). A full queue drops the new event. Drops are counted
(``webrtc_signal_webhook_dropped_total``, by reason) and logged at most once
per 10 s.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS

from ..protocol.events import Event, LobbyClosed, LobbyCreated, LobbySealed, PeerJoined, PeerLeft
from ..protocol.hooks import PeerInfo
from ..protocol.version import VERSION
from .backend_http import (
    BackendClient,
    LogThrottle,
    describe_failure,
    identity_text,
    iso_time,
)

TIMESTAMP_HEADER = "Webrtc-Signal-Timestamp"
SIGNATURE_HEADER = "Webrtc-Signal-Signature"

EVENT_TYPES: dict[type, str] = {
    LobbyCreated: "lobby_created",
    PeerJoined: "peer_joined",
    PeerLeft: "peer_left",
    LobbySealed: "lobby_sealed",
    LobbyClosed: "lobby_closed",
}

# Events held per URL, delivered or not yet (--webhook-queue).
DEFAULT_QUEUE_LIMIT = 10000
# Lobbies whose events are delivered at once per URL (and pooled connections).
DEFAULT_CONCURRENCY = 8
# Seconds one POST (connect, send, answer) may take.
DEFAULT_TIMEOUT = 10.0
# Seconds from an event's first attempt after which it is given up.
DEFAULT_RETRY_FOR = 60.0
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 16.0
# Seconds `stop` waits for the queues to empty.
DEFAULT_STOP_TIMEOUT = 5.0
# Seconds a receiver should accept a timestamp for (see `verify`).
DEFAULT_TOLERANCE = 300.0

# Answers worth another try: the receiver is busy or broken, not refusing.
_RETRY_STATUSES = frozenset({408, 425, 429})
# Seconds from an event to its delivery (retries included).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

_log = Logger(namespace="webrtc_signal")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``Webrtc-Signal-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """What a receiver in Python checks: the signature matches (compared in
    constant time) and the timestamp is within ``tolerance`` seconds of
    ``now`` (default: the system clock), so that a recorded delivery cannot
    be replayed later. Receivers should also ignore an ``id`` seen before
    (a retry after a lost answer sends the same event again)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    moment = time.time() if now is None else now
    if abs(moment - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def check_url(url: str) -> str:
    """``url`` if it is an http:// or https:// URL with a host; else
    `ValueError` saying why (a usage error for ``--webhook``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


def url_label(url: str) -> str:
    """The URL as a metric label and in logs: without user, password, query
    or fragment, which may hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(slots=True)
class _Pending:
    """One event on its way to one URL."""

    lobby: str
    body: bytes
    # Clock seconds when the event happened, and when its first POST began.
    happened: float
    first_attempt: float | None = None
    attempts: int = 0


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "webrtc_signal_webhook_delivered_total",
            "Webhook events a receiver accepted (answered 2xx), by URL.",
            ["url"],
            registry=registry,
        )
        self.dropped = Counter(
            "webrtc_signal_webhook_dropped_total",
            "Webhook events given up, by URL and reason: queue_full (the URL's queue was "
            "full), expired (retried for the retry period), rejected (answered 4xx), "
            "shutdown (still queued when the server stopped).",
            ["url", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "webrtc_signal_webhook_delivery_seconds",
            "Seconds from a lobby event to its delivery (accepted by the receiver), "
            "queueing and retries included, by URL.",
            ["url"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queued = Gauge(
            "webrtc_signal_webhook_queued",
            "Webhook events held for a URL (being delivered or waiting).",
            ["url"],
            registry=registry,
        )


class _Destination:
    """One URL: its queue, the lobbies being delivered, their retries."""

    def __init__(self, sender: WebhookSender, url: str) -> None:
        self.sender = sender
        self.url = url
        self.label = url_label(url)
        # Per lobby, its events in order; the head is being delivered (or
        # waits for a retry) when the lobby is active.
        self.queues: dict[str, deque[_Pending]] = {}
        # Lobbies with events and none under way, oldest first.
        self.ready: deque[str] = deque()
        # Lobbies whose head is under way: its POST, or its retry timer.
        self.posts: dict[str, Deferred[Any]] = {}
        self.retries: dict[str, IDelayedCall] = {}
        self.held = 0
        metrics = sender.metrics
        self.delivered = metrics.delivered.labels(self.label)
        self.latency = metrics.latency.labels(self.label)
        metrics.queued.labels(self.label).set_function(lambda: self.held)
        # Every drop reason shows from the start, at 0.
        for reason in ("queue_full", "expired", "rejected", "shutdown"):
            metrics.dropped.labels(self.label, reason)

    @property
    def active(self) -> int:
        return len(self.posts) + len(self.retries)

    def enqueue(self, pending: _Pending) -> None:
        if self.held >= self.sender.queue_limit:
            self.dropped(pending, "queue_full")
            return
        self.held += 1
        queue = self.queues.get(pending.lobby)
        if queue is None:
            queue = self.queues[pending.lobby] = deque()
            self.ready.append(pending.lobby)
        queue.append(pending)
        self.pump()

    def pump(self) -> None:
        """Start the next lobbies' heads, up to the concurrency limit."""
        limit = self.sender.concurrency
        ready = self.ready
        while ready and self.active < limit:
            self.attempt(ready.popleft())

    def attempt(self, lobby: str) -> None:
        self.retries.pop(lobby, None)
        pending = self.queues[lobby][0]
        sender = self.sender
        now = sender.clock.seconds()
        if pending.first_attempt is None:
            pending.first_attempt = now
        pending.attempts += 1
        # Signed anew at each attempt: a retry carries a fresh timestamp,
        # so that receivers can keep a short replay window.
        timestamp = str(int(now))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"webrtc-signal/{VERSION}",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(sender.secret, timestamp, pending.body),
        }
        posted = sender.client.post(self.url, pending.body, headers)
        # Held before the callbacks are added: they take it out, even when
        # the answer is already there.
        self.posts[lobby] = posted
        posted.addCallbacks(
            lambda answer: self.answered(lobby, pending, answer[0]),
            lambda failure: self.failed(lobby, pending, failure),
        )

    def current(self, lobby: str, pending: _Pending) -> bool:
        """Whether ``pending`` is still its lobby's head: an answer that
        arrives after `abandon` is about an event no longer held."""
        queue = self.queues.get(lobby)
        return queue is not None and queue[0] is pending

    def answered(self, lobby: str, pending: _Pending, status: int) -> None:
        if not self.current(lobby, pending):
            return
        self.posts.pop(lobby, None)
        if 200 <= status < 300:
            self.delivered.inc()
            self.latency.observe(max(0.0, self.sender.clock.seconds() - pending.happened))
            self.next(lobby)
        elif status in _RETRY_STATUSES or status >= 500:
            self.retry(lobby, pending, f"HTTP {status}")
        else:
            self.dropped(pending, "rejected", f"HTTP {status}")
            self.next(lobby)

    def failed(self, lobby: str, pending: _Pending, failure: Failure) -> None:
        if not self.current(lobby, pending):
            return
        self.posts.pop(lobby, None)
        self.retry(lobby, pending, describe_failure(failure))

    def retry(self, lobby: str, pending: _Pending, why: str) -> None:
        sender = self.sender
        delay = min(FIRST_RETRY_DELAY * 2 ** (pending.attempts - 1), MAX_RETRY_DELAY)
        started = pending.first_attempt or 0.0
        if sender.clock.seconds() + delay - started > sender.retry_for:
            self.dropped(pending, "expired", why)
            self.next(lobby)
            return
        self.retries[lobby] = sender.clock.callLater(delay, self.attempt, lobby)

    def next(self, lobby: str) -> None:
        """The lobby's head is done with: its next event may go."""
        queue = self.queues[lobby]
        queue.popleft()
        self.held -= 1
        if queue:
            # To the back: one busy lobby must not starve the others.
            self.ready.append(lobby)
        else:
            del self.queues[lobby]
        self.pump()
        self.sender.check_idle()

    def dropped(self, pending: _Pending, reason: str, why: str = "") -> None:
        sender = self.sender
        sender.metrics.dropped.labels(self.label, reason).inc()
        held_back = sender.throttle.allow(f"{self.url} {reason}")
        if held_back is not None:
            _log.warn(
                "webhook {url}: dropped an event of lobby {lobby} ({reason}{why}); "
                "{suppressed} more dropped since the last report",
                url=self.label,
                lobby=pending.lobby,
                reason=reason.replace("_", " "),
                why=f": {why}" if why else "",
                suppressed=held_back,
            )

    def abandon(self) -> None:
        """At the end of `stop`: whatever is left is dropped and counted."""
        left = sum(len(queue) for queue in self.queues.values())
        # Forgotten first, so that the cancelled POSTs' errbacks find no
        # event of theirs to retry.
        self.queues.clear()
        self.ready.clear()
        self.held = 0
        for call in self.retries.values():
            if call.active():
                call.cancel()
        self.retries.clear()
        posts = list(self.posts.values())
        self.posts.clear()
        for post in posts:
            post.cancel()
        if left:
            self.sender.metrics.dropped.labels(self.label, "shutdown").inc(left)
            _log.warn(
                "webhook {url}: {count} events not delivered before shutdown",
                url=self.label,
                count=left,
            )


def _check_sender_settings(
    urls: Sequence[str],
    secret: bytes,
    queue_limit: int,
    concurrency: int,
    timeout: float,
    retry_for: float,
) -> None:
    if not urls:
        raise ValueError("no webhook URL given")
    if not secret:
        raise ValueError("the webhook secret is empty")
    if queue_limit < 1 or concurrency < 1:
        raise ValueError("queue_limit and concurrency must be at least 1")
    if not timeout > 0 or not retry_for >= 0:
        raise ValueError("timeout must be > 0 and retry_for >= 0")


class WebhookSender:
    """POSTs lobby events to ``urls``, signed with ``secret`` (see the module
    docstring). Add `observe` as an observer of the service; call `stop`
    after the service has stopped (its last events are the lobbies closing).

    ``node`` names this server in each event (a cluster node's id; "" for a
    single server). ``clock`` times everything (timestamps, timeouts,
    retries) and may be a ``task.Clock`` in tests; the network runs on
    ``reactor``. Its metrics go into ``registry`` (the service's
    ``metrics_registry``); one sender per registry.
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: bytes,
        *,
        clock: IReactorTime | None = None,
        node: str = "",
        registry: CollectorRegistry | None = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        retry_for: float = DEFAULT_RETRY_FOR,
        reactor: Any = None,
        tls_policy: IPolicyForHTTPS | None = None,
        make_id: Callable[[], str] | None = None,
    ) -> None:
        _check_sender_settings(urls, secret, queue_limit, concurrency, timeout, retry_for)
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.secret = bytes(secret)
        self.node = node
        self.queue_limit = queue_limit
        self.concurrency = concurrency
        self.retry_for = retry_for
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.throttle = LogThrottle(self.clock)
        self.client = BackendClient(self.clock, timeout, concurrency, reactor, tls_policy)
        self.make_id = make_id or (lambda: uuid.uuid4().hex)
        self.destinations = [_Destination(self, check_url(url)) for url in urls]
        # The pool of each open lobby that has one (the other events of a
        # lobby carry it too); at most one entry per open lobby.
        self._pools: dict[str, str] = {}
        self.stopped = False
        self._idle: list[Deferred[None]] = []
        self._converters: dict[type, Callable[[Any], tuple[str, PeerInfo | None, str | None]]] = {
            LobbyCreated: lambda e: (e.lobby, e.host, None),
            PeerJoined: lambda e: (e.lobby, e.peer, None),
            PeerLeft: lambda e: (e.lobby, e.peer, e.reason),
            LobbySealed: lambda e: (e.lobby, None, None),
            LobbyClosed: lambda e: (e.lobby, None, e.reason),
        }

    # -- the observer --------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Queue ``event`` for every URL if it is a lobby event; never blocks."""
        kind = EVENT_TYPES.get(type(event))
        if kind is None or self.stopped:
            return
        lobby, peer, reason = self._converters[type(event)](event)
        if type(event) is LobbyCreated and event.pool is not None:
            self._pools[lobby] = event.pool
        pool = self._pools.get(lobby)
        if type(event) is LobbyClosed:
            self._pools.pop(lobby, None)
        now = self.clock.seconds()
        body = orjson.dumps(
            {
                "id": self.make_id(),
                "type": kind,
                "time": iso_time(now),
                "node": self.node,
                "lobby": lobby,
                "pool": pool,
                "peer": peer.peer_id if peer is not None else None,
                "identity": identity_text(peer.identity) if peer is not None else None,
                "reason": reason,
            }
        )
        for destination in self.destinations:
            destination.enqueue(_Pending(lobby, body, now))

    # -- lifetime -------------------------------------------------------------------

    def held(self) -> int:
        """Events queued or being delivered, over all URLs."""
        return sum(destination.held for destination in self.destinations)

    def check_idle(self) -> None:
        if self._idle and not self.held():
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> Deferred[None]:
        """Take no more events; fire once every queue is empty, or after
        ``timeout`` seconds on the clock, when what is left is dropped (and
        counted as ``shutdown``). Idle pooled connections are closed."""
        self.stopped = True
        done: Deferred[None] = Deferred()
        if self.held():
            self._idle.append(done)
            deadline = self.clock.callLater(timeout, self._give_up)

            def cancel_deadline(result: object) -> object:
                if deadline.active():
                    deadline.cancel()
                return result

            done.addBoth(cancel_deadline)
        else:
            done.callback(None)
        return done.addCallback(lambda _: self._close_connections())

    def _give_up(self) -> None:
        for destination in self.destinations:
            destination.abandon()
        self.check_idle()

    def _close_connections(self) -> Deferred[None]:
        return self.client.close()
