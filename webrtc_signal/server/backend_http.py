"""What the admin API, the webhooks and the auth callback share: how the
server talks to a game backend over HTTP, in any language.

- `BackendClient`: treq on Twisted's Agent, with a connection pool of its
  own, no cookies, no redirects, a timeout per call on the injected clock and
  response bodies read only up to a limit. A backend is a program of the
  operator's, but a slow or broken one must never hold memory or a
  connection for long.
- `LogThrottle`: a failure that repeats (a backend down, a flood of bad
  requests) is logged once per interval per kind, with how many were held
  back, so that nobody outside can fill the log.
- `identity_text`, `iso_time`: how a peer's identity and a clock reading
  look in the JSON a backend reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS, IResponse

from .log_limits import LOG_INTERVAL, LogLimits

if TYPE_CHECKING:
    from treq.client import HTTPClient

# What a backend's answer may hold; the rest is not read (the call fails).
MAX_RESPONSE_BYTES = 64 * 1024
# An identity longer than this is cut in the JSON a backend gets.
MAX_IDENTITY_CHARS = 1024


class CallTimedOut(Exception):
    """The backend did not answer within the client's timeout."""


class ResponseTooLarge(Exception):
    """The backend's answer went past `MAX_RESPONSE_BYTES`."""


class BackendClient:
    """POSTs to a backend: a treq ``HTTPClient`` on an Agent with its own
    pool of at most ``connections`` persistent connections per host.

    ``clock`` times each call (request and answer together) and may be a
    `twisted.internet.task.Clock` in tests; the network runs on ``reactor``.
    ``tls_policy`` checks https:// certificates (by default, against the
    system's trust store, as a browser would).
    """

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        connections: int,
        reactor: Any = None,
        tls_policy: IPolicyForHTTPS | None = None,
    ) -> None:
        # Imported here: treq imports the reactor-independent parts of
        # Twisted only, but a module that is imported by the service must
        # not pull in an HTTP client nobody configured.
        from treq.client import HTTPClient

        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.clock = clock
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = connections
        # Idle connections are closed after this, so a backend restart is
        # met with a fresh one soon.
        self.pool.cachedConnectionTimeout = 30
        agent = Agent(
            reactor,
            contextFactory=tls_policy or BrowserLikePolicyForHTTPS(),
            connectTimeout=timeout,
            pool=self.pool,
        )
        # A jar that keeps nothing: a backend's cookies must not pile up.
        jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        # Typed as treq's own jar class in recent treq; any CookieJar works.
        self.client: HTTPClient = HTTPClient(agent, cookiejar=cast(Any, jar))

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Deferred[tuple[int, bytes]]:
        """POST ``body``; fires with the status and the answer's body, or
        fails: `CallTimedOut` after ``timeout`` seconds on the clock,
        ``CancelledError`` when cancelled (which aborts the call), else
        whatever went wrong (connection refused or lost, `ResponseTooLarge`).
        """
        raw_headers = Headers(
            {name.encode("ascii"): [value.encode("ascii")] for name, value in headers.items()}
        )
        sent = self.client.post(
            url,
            data=body,
            headers=raw_headers,
            allow_redirects=False,
            unbuffered=True,
        )
        sent.addCallback(_read_limited)
        # Twisted's Agent reports a cancelled call as a lost response (with
        # the cancellation inside); the caller is told plainly which it was.
        result: Deferred[tuple[int, bytes]] = Deferred(lambda _: sent.cancel())
        timed_out = False

        def time_out() -> None:
            nonlocal timed_out
            timed_out = True
            sent.cancel()

        deadline = self.clock.callLater(self.timeout, time_out)

        def settle(outcome: object) -> None:
            if deadline.active():
                deadline.cancel()
            if result.called:
                return  # cancelled: already failed with CancelledError
            if isinstance(outcome, Failure):
                if timed_out:
                    outcome = Failure(CallTimedOut(f"no answer within {self.timeout} s"))
                result.errback(outcome)
            else:
                result.callback(outcome)  # type: ignore[arg-type]

        sent.addBoth(settle)
        return result

    def close(self) -> Deferred[None]:
        """Close the idle pooled connections (calls under way go on)."""
        closed: Deferred[None] = self.pool.closeCachedConnections()
        return closed


def _read_limited(response: IResponse) -> Deferred[tuple[int, bytes]]:
    code = int(response.code)
    if response.length == 0:
        return succeed((code, b""))
    body = _LimitedBody()
    response.deliverBody(body)
    return body.finished.addCallback(lambda data: (code, data))


class _LimitedBody(Protocol):
    """Collects a response body up to `MAX_RESPONSE_BYTES`; beyond that, or
    when its Deferred is cancelled (a timeout), the connection is aborted."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, finished: Deferred[bytes]) -> None:
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > MAX_RESPONSE_BYTES:
            self.finished.errback(ResponseTooLarge(f"answer over {MAX_RESPONSE_BYTES} bytes"))
            self._abort()
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(reason)


class LogThrottle:
    """Says whether a failure of some kind may be logged now: at most once
    per ``interval`` seconds of ``clock`` per kind, counting the ones held
    back meanwhile (the server's shared throttle, `LogLimits.allow`). Kinds
    are a program's own few names (never a client's text), and the table of
    kinds is bounded all the same."""

    def __init__(self, clock: IReactorTime, interval: float = LOG_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self._limits = LogLimits(clock, interval)

    def allow(self, kind: str) -> int | None:
        """None: do not log. Else log, saying how many were held back (the
        number returned) since the last line of this kind."""
        return self._limits.allow(kind)


def describe_failure(failure: Failure) -> str:
    """A failed call in a few words for the log: Twisted's Agent wraps the
    cause of a lost request or response in a list of failures."""
    value = failure.value
    reasons = getattr(value, "reasons", None)
    if reasons and isinstance(reasons[0], Failure):
        value = reasons[0].value
    return str(value) or type(value).__name__


def identity_text(identity: object) -> str | None:
    """A peer's identity as a backend sees it: a string as is (what token
    auth and the auth callback give), another object as its ``str()``,
    cut to `MAX_IDENTITY_CHARS`; None for an anonymous peer (no identity,
    or an empty one: a token without ``sub``)."""
    if identity is None:
        return None
    text = identity if isinstance(identity, str) else str(identity)
    if not text:
        return None
    return text[:MAX_IDENTITY_CHARS]


def iso_time(seconds: float) -> str:
    """A clock reading (seconds since the epoch) as ISO 8601 in UTC, to the
    millisecond: ``2024-05-01T12:00:00.250Z``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
