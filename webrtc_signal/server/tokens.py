"""Token auth, built in: every connection carries ``?token=<JWT>`` in its URL.

Browsers and Godot's WebSocketPeer cannot set headers on a WebSocket upgrade,
so the token rides in the URL's query string. It is a JSON Web Token signed
with HS256 and a secret the server and the game backend share; PyJWT checks
it (signature, expiry), nothing here parses JWTs by hand.

Claims: ``exp`` (required), ``sub`` (optional: becomes the peer's identity),
``lobby`` (optional: the only lobby this token may join; "" = it may only
create one). A missing, malformed, badly signed or expired token is refused
with HTTP 401 at the upgrade; a token used on another lobby is closed with
4000 "Not allowed in this lobby".
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from twisted.logger import Logger

from ..protocol.hooks import ConnectionRequest, PeerInfo, Refused
from ..protocol.reasons import CloseReason
from .ice_servers import Unauthorized

ALGORITHM = "HS256"
# RFC 7518, 3.2: an HS256 key should be at least as long as the hash.
RECOMMENDED_SECRET_BYTES = 32
DEFAULT_TTL = 3600.0

_log = Logger(namespace="webrtc_signal")


class TokenIdentity(str):
    """A peer's identity under token auth: its token's ``sub`` claim as a
    string ("" when the token has none), which also carries the token's
    ``lobby`` claim (None when it has none) and all its ``claims``."""

    subject: str | None
    lobby: str | None
    claims: dict[str, Any]

    def __new__(
        cls, subject: str | None, lobby: str | None, claims: dict[str, Any]
    ) -> TokenIdentity:
        identity = super().__new__(cls, subject or "")
        identity.subject = subject
        identity.lobby = lobby
        identity.claims = claims
        return identity


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


def make_token(
    secret: str | bytes,
    subject: str | None = None,
    lobby: str | None = None,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """A token for this server: valid for ``ttl`` seconds from ``now``
    (default: the system clock), with ``sub`` and ``lobby`` claims if given."""
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"iat": int(issued), "exp": int(issued + ttl)}
    if subject is not None:
        claims["sub"] = subject
    if lobby is not None:
        claims["lobby"] = lobby
    with warnings.catch_warnings():
        # A short secret is the operator's choice; TokenAuth warns once at start.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


class TokenAuth:
    """Hooks (``SignalingService(..., hooks=TokenAuth(secret))``) that admit
    only connections with a valid token, and hold each to its token's lobby.
    A game server may use it as is, or wrap it: call its ``authenticate`` and
    ``authorize_join`` from its own hooks (``authorize_join`` reads the
    `TokenIdentity` that ``authenticate`` returned, and refuses any other)."""

    def __init__(self, secret: str | bytes, *, leeway: float = 0.0) -> None:
        self._secret = _key(secret)
        # Seconds of clock difference tolerated on ``exp`` between the minting
        # backend and this server.
        self.leeway = leeway
        if len(self._secret) < RECOMMENDED_SECRET_BYTES:
            _log.warn(
                "the token secret is {size} bytes long; {recommended} or more are "
                "recommended (RFC 7518, 3.2)",
                size=len(self._secret),
                recommended=RECOMMENDED_SECRET_BYTES,
            )

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        """Token auth with the secret read from ``path`` (see `read_secret`)."""
        return cls(read_secret(path))

    def mint(
        self, subject: str | None = None, lobby: str | None = None, ttl: float = DEFAULT_TTL
    ) -> str:
        """A token this server accepts (see `make_token`)."""
        return make_token(self._secret, subject, lobby, ttl)

    def verify(self, token: str) -> TokenIdentity:
        """The identity a token stands for; `Refused` (401) if it is not valid."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp"]},
                    leeway=self.leeway,
                )
        except jwt.ExpiredSignatureError:
            raise Refused("Token expired", status=401) from None
        except jwt.InvalidSignatureError:
            raise Refused("Bad token signature", status=401) from None
        except jwt.InvalidTokenError:
            raise Refused("Invalid token", status=401) from None
        subject = claims.get("sub")
        lobby = claims.get("lobby")
        if not isinstance(subject, str | None) or not isinstance(lobby, str | None):
            raise Refused("Invalid token", status=401)
        return TokenIdentity(subject, lobby, claims)

    # -- the hooks -------------------------------------------------------------------

    def authenticate(self, request: ConnectionRequest) -> TokenIdentity:
        tokens = request.query.get("token")
        if not tokens or not tokens[0]:
            raise Refused("Missing token", status=401)
        return self.verify(tokens[0])

    def authenticate_ice(self, query: Mapping[str, list[str]]) -> TokenIdentity:
        """For ``GET /ice-servers``: the same ``?token=`` as the WebSocket, or
        401 (an open credential minter would be an open TURN relay). The
        TURN user is the token's subject."""
        tokens = query.get("token")
        if not tokens or not tokens[0]:
            raise Unauthorized("Missing token")
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
        allowed = identity.lobby
        if allowed is None:
            return
        if (create and allowed != "") or (not create and (allowed == "" or lobby != allowed)):
            raise Refused(CloseReason.NOT_ALLOWED.text)
