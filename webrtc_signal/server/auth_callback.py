"""The auth callback: a game backend in any language decides who connects.

`AuthCallback` is a hooks object (``SignalingService(..., hooks=...)``).
Each WebSocket upgrade is POSTed to the backend's URL as::

    {"address": "203.0.113.7", "path": "/", "query": {"session": ["abc"]},
     "origin": "https://game.example.com", "headers": {"cookie": "sid=..."}}

``query`` is the parsed query string (every value a list, as repeated keys
give several); ``headers`` holds only the headers of `HEADER_ALLOW_LIST`,
names in lower case, with their values as sent: this is how the backend
checks its own session tokens and cookies, so they are included.

The backend answers:

- 200 with ``{"identity": "alice", "lobby": "...", "pool": "..."}`` to
  admit (``lobby`` and ``pool`` optional, null = none): ``identity`` becomes
  the peer's identity; ``lobby`` holds the peer to one lobby exactly as a
  token's ``lobby`` claim does ("" = it may only create one); ``pool``
  holds it to one quick-match pool as a token's ``pool`` claim does;
- any 4xx to refuse: the upgrade is answered with that status, and the
  answer's ``{"error": "..."}`` (if any) as the reason;
- anything else (a timeout, a failed connection, 3xx, 5xx, another 2xx, a
  body that is not such an object) refuses with 503: the server fails
  closed. Such failures are logged at most once per 10 s.

At most ``concurrency`` calls are under way at once; an upgrade beyond that
is refused with 503 at once, so a flood of connections cannot queue
unbounded work on the backend or on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS

from ..protocol.hooks import ConnectionRequest, PeerInfo, Refused
from ..protocol.reasons import CloseReason
from ..protocol.version import VERSION
from .backend_http import (
    MAX_IDENTITY_CHARS,
    BackendClient,
    CallTimedOut,
    LogThrottle,
    describe_failure,
)
from .tokens import check_claims
from .webhooks import check_url, url_label

# Seconds the backend has to answer (--auth-timeout). Autobahn gives the
# whole opening handshake 5 s, so more than that is never waited for.
DEFAULT_TIMEOUT = 2.0
# Calls under way at once (--auth-concurrency); more are refused with 503.
DEFAULT_CONCURRENCY = 64
# The request headers the backend gets; no other header is sent on.
HEADER_ALLOW_LIST = (
    "authorization",
    "cookie",
    "origin",
    "host",
    "user-agent",
    "accept-language",
    "referer",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "sec-websocket-protocol",
)
# A refusal's reason (the HTTP reason phrase at the upgrade) is cut to this.
MAX_REASON_CHARS = 100
UNAVAILABLE = "Auth service unavailable"

_log = Logger(namespace="webrtc_signal")


class CallbackIdentity(str):
    """A peer's identity under the auth callback: the answered ``identity``
    as a string, which also carries the answered ``lobby`` and ``pool``
    (None when absent) and the whole ``answer`` object."""

    subject: str
    lobby: str | None
    pool: str | None
    answer: dict[str, Any]

    def __new__(
        cls, subject: str, lobby: str | None, pool: str | None, answer: dict[str, Any]
    ) -> CallbackIdentity:
        identity = super().__new__(cls, subject)
        identity.subject = subject
        identity.lobby = lobby
        identity.pool = pool
        identity.answer = answer
        return identity


class BadAnswer(Exception):
    """The backend's 200 answer is not what `AuthCallback` reads."""


def read_answer(body: bytes) -> CallbackIdentity:
    """The identity in a 200 answer; `BadAnswer` says what is wrong."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadAnswer("not JSON") from None
    if not isinstance(answer, dict):
        raise BadAnswer("not a JSON object")
    subject = answer.get("identity")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_IDENTITY_CHARS:
        raise BadAnswer(f'"identity" must be a string of 1 to {MAX_IDENTITY_CHARS} characters')
    lobby, pool = answer.get("lobby"), answer.get("pool")
    if not isinstance(lobby, str | None) or not isinstance(pool, str | None):
        raise BadAnswer('"lobby" and "pool" must be strings or null')
    return CallbackIdentity(subject, lobby, pool, answer)


def _refusal_reason(status: int, body: bytes) -> str:
    reason = ""
    try:
        answer = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        reason = " ".join(answer["error"].split())
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Refused"
    return reason[:MAX_REASON_CHARS]


class AuthCallback:
    """Hooks that ask a backend at ``url`` about every upgrade (see the
    module docstring), and hold each peer to the lobby it answered.

    ``clock`` times each call (a ``task.Clock`` in tests); the network runs
    on ``reactor``; ``tls_policy`` checks an https:// backend's certificate
    (by default as a browser would). Combine it with token auth through
    `webrtc_signal.server.combined_hooks.RequireAll`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: IReactorTime | None = None,
        reactor: Any = None,
        tls_policy: IPolicyForHTTPS | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency!r}")
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.url = check_url(url)
        self.label = url_label(url)
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.concurrency = concurrency
        self.client = BackendClient(self.clock, timeout, concurrency, reactor, tls_policy)
        self.throttle = LogThrottle(self.clock)
        # Calls under way now.
        self.calls = 0

    # -- the hooks -------------------------------------------------------------------

    def authenticate(self, request: ConnectionRequest) -> Deferred[CallbackIdentity]:
        if self.calls >= self.concurrency:
            self._failed("busy", f"{self.concurrency} calls already under way")
            raise Refused(UNAVAILABLE, status=503)
        body = orjson.dumps(
            {
                "address": request.address,
                "path": request.path,
                "query": {key: list(values) for key, values in request.query.items()},
                "origin": request.origin,
                "headers": _allowed_headers(request.headers),
            }
        )
        headers = {"Content-Type": "application/json", "User-Agent": f"webrtc-signal/{VERSION}"}
        self.calls += 1
        call = self.client.post(self.url, body, headers)

        def done(result: object) -> object:
            self.calls -= 1
            return result

        call.addBoth(done)
        return call.addCallbacks(self._answered, self._unreachable)

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        identity = peer.identity
        if not isinstance(identity, CallbackIdentity):
            # Not from our authenticate (a wrapper replaced it): no claim to
            # read, so no join. Fail closed.
            raise Refused(CloseReason.NOT_ALLOWED.text)
        check_claims(identity.lobby, identity.pool, peer, lobby, create)

    def close(self) -> Deferred[None]:
        """Close the idle pooled connections (at shutdown)."""
        return self.client.close()

    # -- answers -------------------------------------------------------------------

    def _answered(self, answer: tuple[int, bytes]) -> CallbackIdentity:
        status, body = answer
        if status == 200:
            try:
                return read_answer(body)
            except BadAnswer as bad:
                self._failed("bad answer", f"a bad answer: {bad}")
                raise Refused(UNAVAILABLE, status=503) from None
        if 400 <= status < 500:
            raise Refused(_refusal_reason(status, body), status=status)
        self._failed(f"status {status}", f"HTTP {status}")
        raise Refused(UNAVAILABLE, status=503)

    def _unreachable(self, failure: Failure) -> Failure:
        if failure.check(Refused):
            return failure
        if failure.check(CancelledError):
            # The client went away and the adapter cancelled the call.
            return failure
        if failure.check(CallTimedOut):
            self._failed("timeout", "no answer in time")
        else:
            self._failed("unreachable", describe_failure(failure))
        return Failure(Refused(UNAVAILABLE, status=503))

    def _failed(self, kind: str, what: str) -> None:
        held_back = self.throttle.allow(kind)
        if held_back is not None:
            _log.warn(
                "auth callback {url}: {what}; refusing with 503 "
                "({suppressed} more failures like it since the last report)",
                url=self.label,
                what=what,
                suppressed=held_back,
            )


def _allowed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in HEADER_ALLOW_LIST if name in headers}
