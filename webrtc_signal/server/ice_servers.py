"""``GET /ice-servers``: the STUN/TURN servers a client should use, with fresh
TURN credentials (see `webrtc_signal.protocol.ice`).

The answer is the ``iceServers`` list of ``RTCPeerConnection`` (and of Godot's
``WebRTCPeerConnection.initialize()``) plus its lifetime::

    {"iceServers": [{"urls": [...]}, {"urls": [...], "username": ..., "credential": ...}],
     "ttl": 3600}

It is served on the signaling port (`IceServers.http_response`, through
Autobahn's plain-GET path) and, for a ``twisted.web`` site, by
`IceServersResource`.

Who may ask: an open credential minter is an open relay, so a deployment with
token auth plugs a check in as `IceServers.authenticate`: it is given the
request's query (``{"token": ["..."]}``) and returns the identity to mint
for, or raises `Unauthorized` (401). Without one, everyone may ask.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from ..protocol import ice
from ..protocol.ice import IceConfig

PATH = "/ice-servers"


_log = Logger(namespace="webrtc_signal")

Query = Mapping[str, Sequence[str]]


class Unauthorized(Exception):
    """Raised by an `IceServers.authenticate` check: the answer is 401 with
    this message."""


Authenticate = Callable[[Query], object]


class IceServers:
    """Mints the ``/ice-servers`` answer from a config, on a clock."""

    def __init__(
        self,
        config: IceConfig,
        clock: IReactorTime,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        # query -> identity, or raises Unauthorized; None lets everyone in.
        self.authenticate = authenticate

    @property
    def ttl(self) -> int:
        """Seconds the credentials stay valid; 0 when there are none."""
        return self.config.turn_ttl if self.config.turn_urls else 0

    def servers(self, identity: object = None) -> list[dict[str, Any]]:
        """The ``iceServers`` list, with credentials minted now for
        ``identity``: its ``subject`` attribute, or the string itself, names
        the TURN user; with none, a random tag does."""
        config = self.config
        return ice.ice_servers(
            config.stun_urls,
            config.turn_urls,
            config.turn_secret,
            config.turn_ttl,
            _user(identity),
            self.clock.seconds(),
        )

    def answer(self, query: Query) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body for a GET with ``query``."""
        identity = None
        if self.authenticate is not None:
            try:
                identity = self.authenticate(query)
            except Unauthorized as refused:
                return 401, {"error": str(refused) or "unauthorized"}
        servers = self.servers(identity)
        body: dict[str, Any] = {"iceServers": servers, "ttl": self.ttl}
        if self.config.turn_urls:
            _log.debug("minted TURN credentials {username}", username=servers[-1]["username"])
        return 200, body

    def http_response(self, query: Query) -> bytes:
        """The whole HTTP/1.1 response, for the signaling port's plain GETs."""
        status, body = self.answer(query)
        payload = json.dumps(body).encode("utf-8")
        head = [f"HTTP/1.1 {status} {_REASONS[status]}"]
        head += [f"{name}: {value}" for name, value in _headers(len(payload))]
        return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload


class IceServersResource(Resource):
    """``/ice-servers`` for a ``twisted.web`` site: ``putChild(b"ice-servers", ...)``."""

    isLeaf = True

    def __init__(self, ice_servers: IceServers) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ice_servers = ice_servers

    def render_GET(self, request: Request) -> bytes:
        query = {
            key.decode("utf-8", "replace"): [value.decode("utf-8", "replace") for value in values]
            for key, values in (request.args or {}).items()
        }
        status, body = self.ice_servers.answer(query)
        payload = json.dumps(body).encode("utf-8")
        request.setResponseCode(status)
        for name, value in _headers(len(payload)):
            if name not in ("Content-Length", "Connection"):
                request.setHeader(name, value)
        return payload


_REASONS = {200: "OK", 401: "Unauthorized"}


def _headers(length: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(length)),
        # Every answer holds fresh credentials: never reuse one.
        ("Cache-Control", "no-store"),
        # Web games are often served from another origin than the signaling
        # server. The answer is readable by any non-browser client anyway, and
        # a token travels in the query, never in a cookie, so allowing every
        # origin gives nothing away; token auth is what limits who gets one.
        ("Access-Control-Allow-Origin", "*"),
        ("X-Content-Type-Options", "nosniff"),
        ("Connection", "close"),
    ]


def _user(identity: object) -> str:
    if identity is None:
        return secrets.token_hex(6)
    subject = getattr(identity, "subject", identity)
    return subject if isinstance(subject, str) and subject else str(subject)
