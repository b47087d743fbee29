"""``GET /lobbies``: the public lobby list, as a ``twisted.web`` resource.

The answer is JSON::

    {"lobbies": [{"name": "...", "title": "...", "members": 2, "size": 4,
                  "mesh": true, "age": 12}, ...],
     "next": "1234"}

listed lobbies that take players (neither sealed nor full), newest first, at
most ``?limit=`` (default 50, at most 200); ``next`` goes back as
``?cursor=`` for the page after, null on the last page. ``?q=`` keeps the
titles containing it (case-insensitive), ``?mode=mesh`` or
``?mode=client-server`` one mode (see `webrtc_signal.protocol.lobby_list`).

Each address may ask ``--max-list-rate`` times a second after a burst of 20
(429 past it, before anything else is looked at). With token auth on, the
request needs ``?token=`` as ``/ice-servers`` does (401 without). A bad
parameter gets 400 naming it. Titles are served as their hosts gave them,
JSON-escaped: a page shows them as text, never as HTML.

Where the list comes from is a `LobbyDirectory`: this server's own lobbies
(`LocalLobbies`), or whatever spans a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ..protocol.access import limit_key
from ..protocol.core import Signaling
from ..protocol.limits import LIST_BURST, AddressRates
from ..protocol.lobby_list import BadListQuery, ListPage, ListQuery, parse_list_query
from .ice_servers import Authenticate, Unauthorized

LOBBIES_PATH = b"lobbies"
TOO_MANY_REQUESTS = "Too many requests"

_log = Logger(namespace="webrtc_signal")


class LobbyDirectory(Protocol):
    """Where ``GET /lobbies`` reads the list from."""

    def page(self, query: ListQuery) -> ListPage | Deferred[ListPage]:
        """The page ``query`` asks for, now or later (a cluster asks Redis)."""


class LocalLobbies:
    """The listed lobbies of this server's own core."""

    def __init__(self, core: Signaling[Any]) -> None:
        self.core = core

    def page(self, query: ListQuery) -> ListPage:
        return self.core.list_page(query)


def _finish(request: Request, body: bytes) -> None:
    """Answer a request that waited: with its length, as an answer given
    at once has (twisted.web would send it in chunks otherwise)."""
    request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
    request.write(body)
    request.finish()


def peer_address(request: Request) -> str:
    """The address the request's TCP connection comes from."""
    return str(getattr(request.getClientAddress(), "host", ""))


class LobbiesResource(Resource):
    """``GET /lobbies`` (see the module docstring). ``client_address`` names
    the client a request stands for (after any trusted proxy's header);
    per-address rates count under its ``ipv6_prefix`` network, as every
    other per-address limit does. ``authenticate`` is the ``/ice-servers``
    check (query -> identity, or `Unauthorized`); None lets everyone read."""

    isLeaf = True

    def __init__(
        self,
        directory: LobbyDirectory,
        clock: IReactorTime,
        *,
        rate: float,
        ipv6_prefix: int,
        client_address: Callable[[Request], str] = peer_address,
        authenticate: Authenticate | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.directory = directory
        self.clock = clock
        self.rates = AddressRates(rate, LIST_BURST)
        self.ipv6_prefix = ipv6_prefix
        self.client_address = client_address
        self.authenticate = authenticate
        # Answers by HTTP status, for the metrics.
        self.answers: dict[int, int] = {}

    def render_GET(self, request: Request) -> bytes | int:
        key = limit_key(self.client_address(request), self.ipv6_prefix)
        if not self.rates.allow(key, self.clock.seconds()):
            request.setHeader(b"Retry-After", b"1")
            return self._answer(request, 429, {"error": TOO_MANY_REQUESTS})
        query = {
            name.decode("utf-8", "replace"): [value.decode("utf-8", "replace") for value in values]
            for name, values in (request.args or {}).items()
        }
        if self.authenticate is not None:
            try:
                self.authenticate(query)
            except Unauthorized as refused:
                return self._answer(request, 401, {"error": str(refused) or "unauthorized"})
        try:
            wanted = parse_list_query(query)
        except BadListQuery as bad:
            return self._answer(request, 400, {"error": str(bad)})
        found = self.directory.page(wanted)
        if not isinstance(found, Deferred):
            return self._answer(request, 200, found.as_json(self.clock.seconds()))
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))
        found.addCallbacks(self._found, self._failed, (request, gone), {}, (request, gone))
        return NOT_DONE_YET

    def _found(self, page: ListPage, request: Request, gone: list[bool]) -> None:
        if not gone:
            _finish(request, self._answer(request, 200, page.as_json(self.clock.seconds())))

    def _failed(self, failure: Failure, request: Request, gone: list[bool]) -> None:
        _log.warn("GET /lobbies failed: {why}", why=failure.getErrorMessage())
        if not gone:
            _finish(request, self._answer(request, 503, {"error": "Lobby list unavailable"}))

    def _answer(self, request: Request, status: int, body: dict[str, Any]) -> bytes:
        self.answers[status] = self.answers.get(status, 0) + 1
        payload = orjson.dumps(body) + b"\n"
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        # The list changes with every join and seal.
        request.setHeader(b"Cache-Control", b"no-store")
        # Web games are often served from another origin; a token travels in
        # the query, never in a cookie, so any origin may read the answer.
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return payload
