"""Token auth, built in: every connection carries ``?token=<JWT>`` in its URL.

Browsers and Godot's WebSocketPeer cannot set headers on a WebSocket upgrade,
so the token rides in the URL's query string. It is a JSON Web Token signed
with HS256 and a secret the server and the game backend share. PyJWT checks
its form and signature; nothing here parses JWTs by hand. The time claims are
checked here, on an injected clock, because PyJWT reads the system clock and
takes ``exp`` as a string of digits, or 1e300, as valid.

Claims: ``exp`` (required: a number, at most ``max_ttl`` seconds ahead),
``nbf`` and ``iat`` (optional: numbers, at most ``clock_skew`` seconds
ahead), ``sub`` (optional: becomes the peer's identity), ``lobby`` (optional:
the only lobby this token may join; "" = it may only create one), ``pool``
(optional: the only quick-match pool this token may be matched in, on
``/match/<pool>``; it then joins no lobby any other way), ``jti`` (optional:
the token is good for one connection only). A token that fails any of these
is refused with HTTP 401 at the upgrade; a token used on another lobby or
pool is closed with 4000 "Not allowed in this lobby".

Single-use tokens are remembered in a `UsedTokens` store until they expire:
`UsedTokenMap` in this process, or a Redis one for a cluster
(`webrtc_signal.cluster.used_tokens`). A store that cannot answer makes the
upgrade fail with 503 rather than let a token through twice.
"""

from __future__ import annotations

import heapq
import math
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.hooks import ConnectionRequest, PeerInfo, Refused
from ..protocol.reasons import CloseReason
from .ice_servers import Unauthorized
from .log_limits import LOG_INTERVAL, ClockReading, LogLimits

ALGORITHM = "HS256"
# RFC 7518, 3.2: an HS256 key should be at least as long as the hash.
RECOMMENDED_SECRET_BYTES = 32
DEFAULT_TTL = 3600.0
# The longest a token may still be valid when it is shown (``--token-max-ttl``):
# a leaked token is good for a day at most, and a used single-use token need
# not be remembered for longer.
DEFAULT_MAX_TTL = 86400.0
# How far ahead of this server's clock a minting backend's may run: ``nbf``
# and ``iat`` this far in the future still pass, and ``exp`` may lie this much
# beyond ``max_ttl``.
DEFAULT_CLOCK_SKEW = 30.0
# A ``jti`` is a key in memory and in Redis: longer ones are refused (401).
MAX_JTI_LENGTH = 128
# The most single-use tokens one process remembers at once (a few hundred
# bytes each); past it, new single-use tokens get 503 until some expire.
DEFAULT_MAX_USED_TOKENS = 100_000
# Expired entries one claim forgets at most: tokens minted in a burst expire
# in a burst, and forgetting a hundred thousand at once would hold the
# reactor for a tenth of a second.
_FORGET_PER_CLAIM = 1024
# A store that keeps refusing logs it once per this many seconds, however many
# connections it refuses.
REFUSAL_LOG_PERIOD = LOG_INTERVAL

# Reasons of the 401s and 503s: clients and checks outside the repository
# compare them.
MISSING = "Missing token"
INVALID = "Invalid token"
BAD_SIGNATURE = "Bad token signature"
EXPIRED = "Token expired"
TOO_LONG = "Token lifetime too long"
NOT_YET_VALID = "Token not yet valid"
ISSUED_IN_THE_FUTURE = "Token issued in the future"
ALREADY_USED = "Token already used"
TRY_AGAIN_LATER = "Try again later"

_log = Logger(namespace="webrtc_signal")


class TokenIdentity(str):
    """A peer's identity under token auth: its token's ``sub`` claim as a
    string ("" when the token has none), which also carries the token's
    ``lobby`` and ``pool`` claims (None when it has none) and all its ``claims``."""

    subject: str | None
    lobby: str | None
    pool: str | None
    claims: dict[str, Any]

    def __new__(
        cls, subject: str | None, lobby: str | None, claims: dict[str, Any]
    ) -> TokenIdentity:
        identity = super().__new__(cls, subject or "")
        identity.subject = subject
        identity.lobby = lobby
        pool = claims.get("pool")
        identity.pool = pool if isinstance(pool, str) else None
        identity.claims = claims
        return identity

    @property
    def token_id(self) -> str | None:
        """The token's ``jti``: set on a single-use token, else None."""
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None


# -- used single-use tokens ------------------------------------------------------------


class UsedTokensUnavailable(Exception):
    """A `UsedTokens` store cannot tell whether a token was used (full, or
    its backend unreachable): the token is refused with 503, never let in."""


class UsedTokens(Protocol):
    """Where single-use tokens are remembered until they expire."""

    def claim(self, token_id: str, expires_at: float) -> bool | Deferred[bool]:
        """Mark ``token_id`` used until ``expires_at`` (seconds since the
        epoch): True if it was not used before, False if it was. Raises
        `UsedTokensUnavailable` (or fails with it) when it cannot tell."""


class RefusalLog:
    """Logs a store's refusals once per `REFUSAL_LOG_PERIOD` at most, with how
    many there were (the server's shared throttle, `LogLimits.allow`): a
    flood of connections must not become a flood of log lines."""

    def __init__(self, now: Callable[[], float], period: float = REFUSAL_LOG_PERIOD) -> None:
        self._limits = LogLimits(ClockReading(now), period)

    def refused(self, text: str, **fields: object) -> None:
        """One more refusal; ``text`` is logged (with the count of refusals
        since the last line, as ``refused``) if the last line is old enough."""
        held_back = self._limits.allow(text)
        if held_back is not None:
            _log.warn(text, refused=held_back + 1, **fields)


class UsedTokenMap:
    """`UsedTokens` in this process: a map of the used ``jti`` values, each
    forgotten when its token expires. At ``max_entries`` it refuses new
    single-use tokens (`UsedTokensUnavailable`, 503) rather than forget a
    used one early: forgetting would let that token in again."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_USED_TOKENS, clock: IReactorTime | None = None
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be 1 or more, not {max_entries!r}")
        self.max_entries = max_entries
        self._now: Callable[[], float] = time.time if clock is None else clock.seconds
        self._expiry: dict[str, float] = {}
        # The same entries by expiry, soonest first, to forget them in order.
        self._by_expiry: list[tuple[float, str]] = []
        self._refusals = RefusalLog(self._now)

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, token_id: str, expires_at: float) -> bool:
        now = self._now()
        self._forget_expired(now, _FORGET_PER_CLAIM)
        if token_id in self._expiry and self._expiry[token_id] > now:
            return False
        if expires_at <= now:
            # Expired already: no later use can pass the expiry check.
            return True
        # Full even after forgetting: all it holds is unexpired (forgetting
        # frees room whenever one entry has expired).
        if len(self._expiry) >= self.max_entries:
            self._refusals.refused(
                "single-use tokens refused (503): {limit} used tokens remembered, the "
                "most allowed, until some expire ({refused} refused)",
                limit=self.max_entries,
            )
            raise UsedTokensUnavailable("too many used tokens remembered")
        self._expiry[token_id] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, token_id))
        return True

    def _forget_expired(self, now: float, at_most: int) -> None:
        by_expiry, expiry = self._by_expiry, self._expiry
        while by_expiry and by_expiry[0][0] <= now and at_most > 0:
            expires_at, token_id = heapq.heappop(by_expiry)
            # A token id claimed again after it expired sits in the heap
            # twice: only its newest expiry is in the map.
            if expiry.get(token_id) == expires_at:
                del expiry[token_id]
                at_most -= 1


# -- minting ---------------------------------------------------------------------------


def read_secret(path: str | Path) -> bytes:
    """The secret in the file at ``path``, without the line break an editor
    or ``echo`` leaves at its end. `ValueError` says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    secret = data.strip()
    if not secret:
        raise ValueError(f"{str(path)!r} is empty")
    return secret


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the token secret is empty")
    return key


def new_token_id() -> str:
    """A fresh ``jti`` for a single-use token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def make_token(
    secret: str | bytes,
    subject: str | None = None,
    lobby: str | None = None,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
    single_use: bool = False,
    pool: str | None = None,
) -> str:
    """A token for this server: valid for ``ttl`` seconds from ``now``
    (default: the system clock), with ``sub``, ``lobby`` and ``pool`` claims
    if given, and a random ``jti`` if ``single_use`` (good for one connection)."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"iat": int(issued), "exp": int(issued + ttl)}
    if subject is not None:
        claims["sub"] = subject
    if lobby is not None:
        claims["lobby"] = lobby
    if pool is not None:
        claims["pool"] = pool
    if single_use:
        claims["jti"] = new_token_id()
    with warnings.catch_warnings():
        # A short secret is the operator's choice; TokenAuth warns once at start.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


# -- checking --------------------------------------------------------------------------


def _number(claims: Mapping[str, Any], name: str) -> int | float | None:
    """The claim ``name`` as a finite JSON number, None if absent; `Refused`
    (401) for anything else: a string of digits, true, NaN, Infinity."""
    if name not in claims:
        return None
    value = claims[name]
    # Not isinstance: true is an int to Python, never a time to us.
    if type(value) is int:
        return int(value)
    if type(value) is float and math.isfinite(value):
        return float(value)
    raise Refused(INVALID, status=401)


def _positive_seconds(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
    return float(value)


class TokenAuth:
    """Hooks (``SignalingService(..., hooks=TokenAuth(secret))``) that admit
    only connections with a valid token, and hold each to its token's lobby.
    A game server may use it as is, or wrap it: call its ``authenticate`` and
    ``authorize_join`` from its own hooks (``authorize_join`` reads the
    `TokenIdentity` that ``authenticate`` returned, and refuses any other).

    ``max_ttl`` is ``--token-max-ttl``: a token whose ``exp`` lies further
    ahead (beyond ``clock_skew``) is refused. ``used_tokens`` remembers
    single-use tokens (default: a `UsedTokenMap` of this process; a cluster
    passes one in Redis). ``clock`` gives the time the claims are checked
    against (default: the system clock)."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        leeway: float = 0.0,
        max_ttl: float = DEFAULT_MAX_TTL,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        used_tokens: UsedTokens | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self._secret = _key(secret)
        # Seconds of clock difference tolerated on ``exp`` between the minting
        # backend and this server.
        if not (math.isfinite(leeway) and leeway >= 0):
            raise ValueError(f"leeway must be a number of seconds >= 0, not {leeway!r}")
        self.leeway = float(leeway)
        self.max_ttl = _positive_seconds("max_ttl", max_ttl)
        if not (math.isfinite(clock_skew) and clock_skew >= 0):
            raise ValueError(f"clock_skew must be a number of seconds >= 0, not {clock_skew!r}")
        self.clock_skew = float(clock_skew)
        self._now: Callable[[], float] = time.time if clock is None else clock.seconds
        self.used_tokens: UsedTokens = (
            UsedTokenMap(clock=clock) if used_tokens is None else used_tokens
        )
        if len(self._secret) < RECOMMENDED_SECRET_BYTES:
            _log.warn(
                "the token secret is {size} bytes long; {recommended} or more are "
                "recommended (RFC 7518, 3.2)",
                size=len(self._secret),
                recommended=RECOMMENDED_SECRET_BYTES,
            )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> TokenAuth:
        """Token auth with the secret read from ``path`` (see `read_secret`);
        ``options`` are the constructor's keyword arguments."""
        return cls(read_secret(path), **options)

    def mint(
        self,
        subject: str | None = None,
        lobby: str | None = None,
        ttl: float = DEFAULT_TTL,
        single_use: bool = False,
        pool: str | None = None,
    ) -> str:
        """A token this server accepts (see `make_token`), issued on its clock."""
        return make_token(self._secret, subject, lobby, ttl, self._now(), single_use, pool)

    def verify(self, token: str) -> TokenIdentity:
        """The identity a token stands for; `Refused` (401) if it is not
        valid now. A single-use token is checked, not used up: see `admit`."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=[ALGORITHM],
                    # PyJWT checks the time claims on the system clock, and
                    # lets "exp": "32503680000" through: they are checked
                    # below, on our clock.
                    options={
                        "require": ["exp"],
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
        except jwt.InvalidSignatureError:
            raise Refused(BAD_SIGNATURE, status=401) from None
        except jwt.InvalidTokenError:
            raise Refused(INVALID, status=401) from None
        self._check_times(claims)
        subject = claims.get("sub")
        lobby = claims.get("lobby")
        if not all(isinstance(claims.get(name), str | None) for name in ("sub", "lobby", "pool")):
            raise Refused(INVALID, status=401)
        jti = claims.get("jti")
        if jti is not None and not (isinstance(jti, str) and 0 < len(jti) <= MAX_JTI_LENGTH):
            raise Refused(INVALID, status=401)
        return TokenIdentity(subject, lobby, claims)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        expires = _number(claims, "exp")
        not_before = _number(claims, "nbf")
        issued = _number(claims, "iat")
        if expires is None:  # PyJWT requires it; never let a gap in that through
            raise Refused(INVALID, status=401)
        now = self._now()
        if expires <= now - self.leeway:
            raise Refused(EXPIRED, status=401)
        if expires > now + self.max_ttl + self.clock_skew:
            raise Refused(TOO_LONG, status=401)
        if not_before is not None and not_before > now + self.clock_skew:
            raise Refused(NOT_YET_VALID, status=401)
        if issued is not None and issued > now + self.clock_skew:
            raise Refused(ISSUED_IN_THE_FUTURE, status=401)

    def admit(self, identity: TokenIdentity) -> TokenIdentity | Deferred[TokenIdentity]:
        """``identity`` (from `verify`) once more, using its token up if it is
        single-use: `Refused` 401 if it was used already, 503 if the store
        cannot tell. A Deferred when the store answers later (Redis)."""
        token_id = identity.token_id
        if token_id is None:
            return identity
        # Remembered for as long as `verify` would still pass it.
        expires_at = float(identity.claims["exp"]) + self.leeway
        try:
            claimed = self.used_tokens.claim(token_id, expires_at)
        except UsedTokensUnavailable:
            raise Refused(TRY_AGAIN_LATER, status=503) from None
        if not isinstance(claimed, Deferred):
            return _admitted(identity, claimed)

        def unavailable(failure: Failure) -> TokenIdentity:
            failure.trap(UsedTokensUnavailable)
            raise Refused(TRY_AGAIN_LATER, status=503)

        return claimed.addCallbacks(lambda fresh: _admitted(identity, fresh), unavailable)

    # -- the hooks -------------------------------------------------------------------

    def authenticate(self, request: ConnectionRequest) -> TokenIdentity | Deferred[TokenIdentity]:
        """The upgrade's token, verified and (if single-use) used up."""
        tokens = request.query.get("token")
        if not tokens or not tokens[0]:
            raise Refused(MISSING, status=401)
        return self.admit(self.verify(tokens[0]))

    def authenticate_ice(self, query: Mapping[str, list[str]]) -> TokenIdentity:
        """For ``GET /ice-servers``: the same ``?token=`` as the WebSocket, or
        401 (an open credential minter would be an open TURN relay). The
        TURN user is the token's subject. A single-use token is verified but
        not used up: clients fetch their ICE servers with the token they are
        about to connect with."""
        tokens = query.get("token")
        if not tokens or not tokens[0]:
            raise Unauthorized(MISSING)
        try:
            return self.verify(tokens[0])
        except Refused as refused:
            raise Unauthorized(refused.reason) from None

    def authorize_join(self, peer: PeerInfo, lobby: str, create: bool) -> None:
        identity = peer.identity
        if not isinstance(identity, TokenIdentity):
            # Not from our authenticate (a wrapper replaced it): no claim to
            # read, so no join. Fail closed.
            raise Refused(CloseReason.NOT_ALLOWED.text)
        check_claims(identity.lobby, identity.pool, peer, lobby, create)


def check_claims(
    lobby_claim: str | None, pool_claim: str | None, peer: PeerInfo, lobby: str, create: bool
) -> None:
    """Hold a peer to its token's (or auth callback's) claims, or raise
    `Refused` ("Not allowed in this lobby"). ``pool_claim``: the peer may
    only be matched in that pool (``/match/<pool>``, exactly), nowhere else.
    A quick-match peer may not hold a ``lobby`` claim: such a token is for
    that one lobby (or for creating one), not for whatever lobby a match
    picks. ``lobby_claim`` otherwise: None allows any lobby, "" only
    creating one, a name only joining that lobby."""
    if pool_claim is not None and peer.pool != pool_claim:
        raise Refused(CloseReason.NOT_ALLOWED.text)
    if lobby_claim is None:
        return
    if peer.pool is not None:
        raise Refused(CloseReason.NOT_ALLOWED.text)
    if (create and lobby_claim != "") or (
        not create and (lobby_claim == "" or lobby != lobby_claim)
    ):
        raise Refused(CloseReason.NOT_ALLOWED.text)


def _admitted(identity: TokenIdentity, fresh: bool) -> TokenIdentity:
    if not fresh:
        raise Refused(ALREADY_USED, status=401)
    return identity
