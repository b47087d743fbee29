"""The admin API: the control methods over HTTP and JSON, for a game backend
in any language (docs/admin-api.md; ``GET /v1/openapi.json`` describes it).

`AdminResource` is a ``twisted.web`` resource tree over a `Control` (what
`SignalingService` offers); `AdminSite` serves it on a port of its own,
with request bodies bounded. Every request needs ``Authorization: Bearer
<token>``, compared in constant time; 401 otherwise.

=========================================  =========================================
``GET /v1/lobbies``                        every lobby: ``{"lobbies": [Lobby, ...]}``
``POST /v1/lobbies``                       reserve one; join tokens for its players
``GET /v1/lobbies/<name>``                 one lobby (404 if none)
``DELETE /v1/lobbies/<name>``              close it (``{"reason": ...}`` optional)
``POST /v1/lobbies/<name>/seal``           seal it, as its host would
``DELETE /v1/lobbies/<name>/peers/<id>``   kick that member
``GET /v1/openapi.json``                   the OpenAPI 3.1 document of all this
=========================================  =========================================

A bad body is 400 ``{"error": ...}``, a body over `MAX_BODY_BYTES` 413, a
method a path does not take 405 (with ``Allow``), an unknown path 404. A
control may answer later (a cluster node asks the lobby's owner): then so
does the API, and a control that cannot answer (`Unavailable`) is a 503.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Coroutine
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import orjson
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ..protocol.hooks import LobbyInfo, PeerInfo, Refused
from ..protocol.reasons import CloseReason
from ..protocol.version import VERSION
from .backend_http import LogThrottle, identity_text, iso_time

# Request bodies above this are answered 413.
MAX_BODY_BYTES = 64 * 1024
# Bodies up to this are read (and thrown away) so the client hears the 413;
# beyond it, the 413 is sent at once and the connection closed.
MAX_DISCARDED_BYTES = 1024 * 1024
# Seconds an idle admin connection is kept.
IDLE_TIMEOUT = 60.0
# POST /v1/lobbies: defaults and bounds.
DEFAULT_RESERVATION_TTL = 60.0
MAX_RESERVATION_TTL = 3600.0
MAX_PLAYERS = 256
MAX_PLAYER_CHARS = 256
# Most members a reserved lobby's own size may allow when the server sets no
# --max-lobby-size (the server's default peer limit).
MAX_SIZE = 4096
# A close frame's reason has room for 123 bytes of UTF-8.
MAX_REASON_BYTES = 123

_log = Logger(namespace="webrtc_signal")

T = TypeVar("T")


class Unavailable(Exception):
    """A control cannot answer now (a cluster node that cannot reach Redis,
    or whose lobby's owner did not answer in time): 503 with this message."""


class Control(Protocol):
    """What the admin API needs of the server; `SignalingService` has it,
    and so has a cluster node's control (`SignalingService.admin_control`),
    whose answers may come later (Deferreds) or fail with `Unavailable`."""

    def lobbies(self) -> list[LobbyInfo] | Deferred[list[LobbyInfo]]: ...

    def lobby(self, name: str) -> LobbyInfo | Deferred[LobbyInfo | None] | None: ...

    def reserve_lobby(self, mesh: bool = ..., ttl: float = ..., size: int | None = ...) -> str: ...

    def seal_lobby(self, name: str) -> bool | Deferred[bool]: ...

    def close_lobby(self, name: str, reason: str = ...) -> bool | Deferred[bool]: ...

    def kick(self, peer_id: int, reason: str = ...) -> bool | Deferred[bool]: ...


class TokenMinter(Protocol):
    """What the admin API needs of token auth; `TokenAuth` has it."""

    def mint(
        self, subject: str | None = None, lobby: str | None = None, ttl: float = ...
    ) -> str: ...


if TYPE_CHECKING:
    from . import control
    from .tokens import TokenAuth

    def _conforms(engine: control.Control[Any], tokens: TokenAuth) -> tuple[Control, TokenMinter]:
        # mypy checks here that the engine's control API and token auth are
        # what the admin API needs.
        return engine, tokens


class BadRequest(Exception):
    """A request body the API cannot take: 400 with this message."""


class _Answer(Exception):
    """Ends a request early with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# -- JSON shapes ------------------------------------------------------------------------


def peer_json(peer: PeerInfo) -> dict[str, Any]:
    return {
        "id": peer.peer_id,
        "identity": identity_text(peer.identity),
        "address": peer.address,
        "framing": peer.framing,
    }


def lobby_json(info: LobbyInfo, default_size: int = 0) -> dict[str, Any]:
    """A lobby as the API answers it. ``size`` is its own limit, else the
    server's (``default_size``), null when there is none."""
    size = info.size if info.size is not None else (default_size or None)
    return {
        "name": info.name,
        "mode": "mesh" if info.mesh else "client-server",
        "sealed": info.sealed,
        "members": len(info.members),
        "size": size,
        "pool": info.pool,
        "title": info.title,
        "created": iso_time(info.created),
        "peers": [peer_json(member) for member in info.members],
    }


def read_json_object(body: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object with no key outside ``allowed``; an empty
    body is ``{}``."""
    if not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"body is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}")
    return value


def _number(value: object) -> bool:
    return type(value) in (int, float)


def read_reason(body: bytes, default: str) -> str:
    """``{"reason": ...}`` (optional) of a close or a kick."""
    fields = read_json_object(body, frozenset({"reason"}))
    reason = fields.get("reason", default)
    if not isinstance(reason, str):
        raise BadRequest('"reason" must be a string')
    reason = " ".join(reason.split())
    if not reason:
        raise BadRequest('"reason" must not be empty')
    if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
        raise BadRequest(f'"reason" must fit a close frame: at most {MAX_REASON_BYTES} bytes')
    return reason


# -- the resource ----------------------------------------------------------------------


Handler = Callable[[Request, list[str]], Coroutine[Any, Any, tuple[int, Any]]]


async def _resolved(value: T | Deferred[T]) -> T:
    """A control's answer, whether it came at once or comes later."""
    if isinstance(value, Deferred):
        later: T = await value
        return later
    return value


class AdminResource(Resource):
    """The admin API over ``control``, for requests bearing ``token``.

    ``token_auth`` (a `TokenAuth`, when the server has token auth on) mints
    the join tokens ``POST /v1/lobbies`` answers for its players.
    ``max_lobby_size`` is the server's ``--max-lobby-size`` (0 = none): the
    ``size`` answered for lobbies without their own, and the most a
    reservation may ask for. ``clock`` paces the log of refused requests.
    Mount it at the root of `AdminSite`, or anywhere on a site of yours:
    paths are read from where it is mounted.
    """

    isLeaf = True

    def __init__(
        self,
        control: Control,
        token: bytes,
        token_auth: TokenMinter | None = None,
        clock: IReactorTime | None = None,
        max_lobby_size: int = 0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        token = bytes(token).strip()
        if not token:
            raise ValueError("the admin token is empty")
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.control = control
        self._token = token
        self.token_auth = token_auth
        self.max_lobby_size = max_lobby_size
        self.throttle = LogThrottle(clock)
        self._document = orjson.dumps(openapi_document())
        # Path (with {name}/{id} for the variable parts) -> method -> handler.
        self.routes: dict[tuple[str, ...], dict[str, Handler]] = {
            ("v1", "lobbies"): {"GET": self._list, "POST": self._reserve},
            ("v1", "lobbies", "{name}"): {"GET": self._get, "DELETE": self._close},
            ("v1", "lobbies", "{name}", "seal"): {"POST": self._seal},
            ("v1", "lobbies", "{name}", "peers", "{id}"): {"DELETE": self._kick},
            ("v1", "openapi.json"): {"GET": self._openapi},
        }

    # -- dispatch ------------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        answered = ensureDeferred(self._answer(request))
        at_once: list[bytes] = []
        answered.addCallback(_kept, at_once)
        if at_once:
            return at_once[0]
        # The control answers later: the request waits, unless its client goes.
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        answered.addCallback(_finish, request, gone)
        return NOT_DONE_YET

    async def _answer(self, request: Request) -> bytes:
        try:
            self._authorize(request)
            if getattr(request, "body_too_large", False):
                raise _Answer(413, f"body over {MAX_BODY_BYTES} bytes")
            handlers, parts = self._route(request)
            method = request.method.decode("ascii", "replace")
            handler = handlers.get(method)
            if handler is None:
                allowed = ", ".join(sorted(handlers))
                raise _Answer(405, f"{method} not allowed here", {"Allow": allowed})
            status, answer = await handler(request, parts)
        except _Answer as error:
            for name, value in error.headers.items():
                request.setHeader(name, value)
            status, answer = error.status, {"error": error.message}
        except BadRequest as error:
            status, answer = 400, {"error": str(error)}
        except Unavailable as error:
            status, answer = 503, {"error": str(error) or "unavailable"}
        except Exception:
            held_back = self.throttle.allow("error")
            if held_back is not None:
                _log.failure(
                    "admin API: unexpected error on {method} {path} ({suppressed} more "
                    "since the last report)",
                    method=request.method,
                    path=request.path,
                    suppressed=held_back,
                )
            status, answer = 500, {"error": "internal error"}
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-store")
        request.setHeader("X-Content-Type-Options", "nosniff")
        return orjson.dumps(answer)

    def _authorize(self, request: Request) -> None:
        values = request.requestHeaders.getRawHeaders(b"authorization") or []
        presented = b""
        if len(values) == 1:
            scheme, _, credentials = values[0].strip().partition(b" ")
            if scheme.lower() == b"bearer":
                presented = credentials.strip()
        # Compared in constant time whatever was presented, so that timing
        # tells nothing about the token.
        if not hmac.compare_digest(presented, self._token) or not presented:
            held_back = self.throttle.allow("unauthorized")
            if held_back is not None:
                _log.warn(
                    "admin API: refused a request from {address} without the right bearer "
                    "token ({suppressed} more since the last report)",
                    address=getattr(request.getClientAddress(), "host", "?"),
                    suppressed=held_back,
                )
            raise _Answer(
                401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="admin"'}
            )

    def _route(self, request: Request) -> tuple[dict[str, Handler], list[str]]:
        parts = [part.decode("utf-8", "replace") for part in (request.postpath or [])]
        if parts and parts[-1] == "":
            parts.pop()  # a trailing slash
        for pattern, handlers in self.routes.items():
            values = _match(pattern, parts)
            if values is not None:
                return handlers, values
        raise _Answer(404, "no such path")

    # -- handlers -------------------------------------------------------------------------

    async def _list(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        size = self.max_lobby_size
        found = await _resolved(self.control.lobbies())
        return 200, {"lobbies": [lobby_json(info, size) for info in found]}

    async def _found(self, name: str) -> LobbyInfo:
        info = await _resolved(self.control.lobby(name))
        if info is None:
            raise _Answer(404, "no such lobby")
        return info

    async def _get(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        return 200, lobby_json(await self._found(parts[0]), self.max_lobby_size)

    async def _reserve(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        fields = read_json_object(
            _read_body(request), frozenset({"mode", "ttl", "size", "players"})
        )
        mode = _mode(fields.get("mode", "mesh"))
        ttl = _ttl(fields.get("ttl", DEFAULT_RESERVATION_TTL))
        size = _size(fields.get("size"), self.max_lobby_size or MAX_SIZE)
        players = _players(fields.get("players", []), size)
        try:
            name = self.control.reserve_lobby(mesh=mode == "mesh", ttl=ttl, size=size)
        except Refused as refused:
            raise _Answer(refused.status, refused.reason) from None
        answer = lobby_json(await self._found(name), self.max_lobby_size)
        if self.token_auth is not None:
            answer["tokens"] = {
                player: self.token_auth.mint(player, lobby=name, ttl=ttl) for player in players
            }
        request.setHeader("Location", f"{_mount_prefix(request)}/v1/lobbies/{name}")
        return 201, answer

    async def _seal(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        read_json_object(_read_body(request), frozenset())
        name = parts[0]
        if not await _resolved(self.control.seal_lobby(name)):
            raise _Answer(404, "no such lobby")
        return 200, lobby_json(await self._found(name), self.max_lobby_size)

    async def _close(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        reason = read_reason(_read_body(request), CloseReason.CLOSED_BY_SERVER.text)
        name = parts[0]
        if not await _resolved(self.control.close_lobby(name, reason)):
            raise _Answer(404, "no such lobby")
        return 200, {"name": name, "reason": reason}

    async def _kick(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        reason = read_reason(_read_body(request), CloseReason.KICKED.text)
        name, peer = parts
        info = await self._found(name)
        peer_id = int(peer) if peer.isascii() and peer.isdigit() and len(peer) <= 10 else 0
        if not any(member.peer_id == peer_id for member in info.members):
            raise _Answer(404, "no such peer in this lobby")
        if not await _resolved(self.control.kick(peer_id, reason)):
            raise _Answer(404, "no such peer in this lobby")
        return 200, {"lobby": name, "id": peer_id, "reason": reason}

    async def _openapi(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        return 200, orjson.Fragment(self._document)


def _kept(body: bytes, kept: list[bytes]) -> bytes:
    kept.append(body)
    return body


def _finish(body: bytes, request: Request, gone: list[bool]) -> None:
    if not gone:
        # With its length, as an answer given at once has (not in chunks).
        request.setHeader("Content-Length", str(len(body)))
        request.write(body)
        request.finish()


def _match(pattern: tuple[str, ...], parts: list[str]) -> list[str] | None:
    """The values of ``pattern``'s ``{placeholders}`` in ``parts``, or None
    when the path is not of that pattern."""
    if len(pattern) != len(parts):
        return None
    values = []
    for expected, part in zip(pattern, parts, strict=True):
        if expected.startswith("{"):
            values.append(part)
        elif expected != part:
            return None
    return values


def _mode(mode: object) -> str:
    if mode not in ("mesh", "client-server"):
        raise BadRequest('"mode" must be "mesh" or "client-server"')
    return str(mode)


def _ttl(ttl: object) -> float:
    if not _number(ttl) or not math.isfinite(ttl) or not 0 < ttl <= MAX_RESERVATION_TTL:  # type: ignore[arg-type, operator]
        raise BadRequest(f'"ttl" must be a number of seconds > 0 and <= {MAX_RESERVATION_TTL:g}')
    return float(ttl)  # type: ignore[arg-type]


def _size(size: object, most: int) -> int | None:
    if size is not None and (type(size) is not int or not 1 <= size <= most):
        raise BadRequest(f'"size" must be a whole number from 1 to {most}')
    return size


def _players(players: object, size: int | None) -> list[str]:
    if (
        not isinstance(players, list)
        or len(players) > MAX_PLAYERS
        or not all(isinstance(p, str) and 0 < len(p) <= MAX_PLAYER_CHARS for p in players)
    ):
        raise BadRequest(
            f'"players" must be a list of at most {MAX_PLAYERS} names, each 1 to '
            f"{MAX_PLAYER_CHARS} characters"
        )
    if len(set(players)) != len(players):
        raise BadRequest('"players" names each player once')
    if size is not None and len(players) > size:
        raise BadRequest('more "players" than the lobby\'s "size"')
    return players


def _read_body(request: Request) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        # Mounted on a site without `AdminRequest`: the limit still holds.
        raise _Answer(413, f"body over {MAX_BODY_BYTES} bytes")
    return data


def _mount_prefix(request: Request) -> str:
    """The path this resource is mounted at ("" at a site's root)."""
    consumed = [part.decode("utf-8", "replace") for part in (request.prepath or [])]
    return "".join(f"/{part}" for part in consumed if part)


# -- the site ---------------------------------------------------------------------------


class AdminRequest(Request):
    """A request whose body is held only up to `MAX_BODY_BYTES` (in memory,
    never in a temporary file). Beyond that it is read and thrown away, and
    the resource answers 413; beyond `MAX_DISCARDED_BYTES` the 413 goes out
    at once and the connection is closed."""

    body_too_large = False
    _answered_early = False
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is not None and length > MAX_BODY_BYTES:
            self.body_too_large = True

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._answered_early:
            return
        if self._body_bytes > MAX_DISCARDED_BYTES:
            self._answer_early()
            return
        if self._body_bytes > MAX_BODY_BYTES:
            self.body_too_large = True
        if not self.body_too_large:
            assert self.content is not None
            self.content.write(data)

    def _answer_early(self) -> None:
        self._answered_early = True
        body = orjson.dumps({"error": f"body over {MAX_BODY_BYTES} bytes"})
        head = (
            "HTTP/1.1 413 Content Too Large\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        transport = self.channel.transport
        assert transport is not None
        transport.write(head.encode("ascii") + body)
        transport.loseConnection()

    def process(self) -> None:
        if self._answered_early:
            return  # answered already; the connection is closing
        super().process()  # type: ignore[no-untyped-call]


class AdminSite(Site):
    """A site serving ``resource`` (an `AdminResource`) on its own port:
    bodies bounded (`AdminRequest`), idle connections closed after
    `IDLE_TIMEOUT`, and no access log (a line per request, which anyone
    reaching the port could cause)."""

    requestFactory = AdminRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource, timeout=IDLE_TIMEOUT)  # type: ignore[no-untyped-call]

    def log(self, request: http.Request) -> None:
        pass


# -- the OpenAPI document ---------------------------------------------------------------


def _json(schema: dict[str, Any] | str, description: str) -> dict[str, Any]:
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


_UNAUTHORIZED = _error("No `Authorization: Bearer <token>`, or the wrong token.")
_TOO_LARGE = _error(f"The body is over {MAX_BODY_BYTES} bytes.")
_BAD_BODY = _error("The body is not JSON, not an object, or a field is wrong; `error` says which.")
_NO_LOBBY = _error("No such lobby (never made, or closed).")
_UNAVAILABLE = _error(
    "Only on a cluster node: Redis is unreachable, or the node running the lobby did not "
    "answer in time."
)
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The lobby's name.",
    "schema": {"type": "string"},
}
_REASON_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reason"}}},
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API."""
    nullable_string = {"type": ["string", "null"]}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": {"type": "string", "description": "What is wrong."}},
        },
        "Peer": {
            "type": "object",
            "required": ["id", "identity", "address", "framing"],
            "additionalProperties": False,
            "properties": {
                "id": {
                    "type": "integer",
                    "minimum": 2,
                    "maximum": 2**31 - 1,
                    "description": "The peer's id on the server (what a kick takes); its lobby "
                    "shows the host as 1.",
                },
                "identity": {
                    **nullable_string,
                    "description": "Who it is: the token's `sub`, or the auth callback's "
                    "`identity`; null when anonymous.",
                },
                "address": {"type": "string", "description": "The client's IP address."},
                "framing": {
                    "enum": ["json", "lines", ""],
                    "description": "`json` (Godot 4), `lines` (Godot 3), or empty before its "
                    "first message.",
                },
            },
        },
        "Lobby": {
            "type": "object",
            "required": [
                "name",
                "mode",
                "sealed",
                "members",
                "size",
                "pool",
                "title",
                "created",
                "peers",
            ],
            "additionalProperties": False,
            "properties": _lobby_properties(),
        },
        "LobbyList": {
            "type": "object",
            "required": ["lobbies"],
            "additionalProperties": False,
            "properties": {
                "lobbies": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Lobby"},
                    "description": "Every lobby, reserved and sealed ones included.",
                }
            },
        },
        "Reservation": {
            "type": "object",
            "required": [
                "name",
                "mode",
                "sealed",
                "members",
                "size",
                "pool",
                "title",
                "created",
                "peers",
            ],
            "additionalProperties": False,
            "properties": {
                **_lobby_properties(),
                "tokens": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Present only when the server has token auth on: per "
                    "player, a join token (JWT) bound to this lobby (its `lobby` claim), "
                    "subject the player, valid for the reservation's `ttl`.",
                },
            },
        },
        "ReserveRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["mesh", "client-server"], "default": "mesh"},
                "ttl": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_RESERVATION_TTL,
                    "default": DEFAULT_RESERVATION_TTL,
                    "description": "Seconds the lobby waits for its host (the first player "
                    "to join it); also the join tokens' lifetime.",
                },
                "size": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Most members (host included), instead of the server's "
                    "--max-lobby-size, and at most that when the server sets one.",
                },
                "players": {
                    "type": "array",
                    "maxItems": MAX_PLAYERS,
                    "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_PLAYER_CHARS},
                    "description": "Who will play: with token auth on, each gets a join token.",
                },
            },
        },
        "Reason": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "description": f"The close reason the players are shown (at most "
                    f"{MAX_REASON_BYTES} bytes of UTF-8).",
                }
            },
        },
        "Closed": {
            "type": "object",
            "required": ["name", "reason"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
        },
        "Kicked": {
            "type": "object",
            "required": ["lobby", "id", "reason"],
            "additionalProperties": False,
            "properties": {
                "lobby": {"type": "string"},
                "id": {"type": "integer"},
                "reason": {"type": "string"},
            },
        },
    }
    paths: dict[str, Any] = {
        "/v1/lobbies": {
            "get": {
                "operationId": "listLobbies",
                "summary": "Every lobby, private ones too.",
                "responses": {
                    "200": _json("LobbyList", "The lobbies."),
                    "401": _UNAUTHORIZED,
                    "503": _error(
                        "Only on a cluster node: Redis is unreachable (a node that does not "
                        "answer in time is left out of the list instead)."
                    ),
                },
            },
            "post": {
                "operationId": "reserveLobby",
                "summary": "Reserve a lobby for players a matchmaker picked.",
                "description": "The first player to JOIN its name becomes its host (id 1) in "
                "the reserved mode; unclaimed after `ttl` seconds it is gone. An empty body "
                "reserves a mesh lobby for 60 s.",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReserveRequest"}
                        }
                    },
                },
                "responses": {
                    "201": {
                        **_json("Reservation", "Reserved; `Location` names it."),
                        "headers": {
                            "Location": {
                                "description": "The lobby's path.",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "400": _BAD_BODY,
                    "401": _UNAUTHORIZED,
                    "413": _TOO_LARGE,
                    "503": _error("At the lobby limit, or shutting down."),
                },
            },
        },
        "/v1/lobbies/{name}": {
            "parameters": [_NAME],
            "get": {
                "operationId": "getLobby",
                "summary": "One lobby.",
                "responses": {
                    "200": _json("Lobby", "The lobby."),
                    "401": _UNAUTHORIZED,
                    "404": _NO_LOBBY,
                    "503": _UNAVAILABLE,
                },
            },
            "delete": {
                "operationId": "closeLobby",
                "summary": "Close the lobby: every member is closed with 4000 and the reason.",
                "requestBody": _REASON_BODY,
                "responses": {
                    "200": _json("Closed", "Closed, with the reason its members got."),
                    "400": _BAD_BODY,
                    "401": _UNAUTHORIZED,
                    "404": _NO_LOBBY,
                    "413": _TOO_LARGE,
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/v1/lobbies/{name}/seal": {
            "parameters": [_NAME],
            "post": {
                "operationId": "sealLobby",
                "summary": "Seal the lobby as its host would.",
                "description": "Every member gets SEAL, nobody may join any more, and after "
                "the seal timeout the members are closed with 1000 `Seal complete`. Sealing a "
                "sealed lobby changes nothing. A reservation nobody has claimed is sealed too: "
                "nobody can claim it, and it ends at its seal timeout or its reservation's "
                "end, whichever is first. The body, if any, is an empty object.",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "additionalProperties": False}
                        }
                    },
                },
                "responses": {
                    "200": _json("Lobby", "The lobby, sealed."),
                    "400": _BAD_BODY,
                    "401": _UNAUTHORIZED,
                    "404": _NO_LOBBY,
                    "413": _TOO_LARGE,
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/v1/lobbies/{name}/peers/{id}": {
            "parameters": [
                _NAME,
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "The peer's `id` (as listed in the lobby's `peers`).",
                    "schema": {"type": "integer"},
                },
            ],
            "delete": {
                "operationId": "kickPeer",
                "summary": "Kick a member: it is closed with 4000 and the reason.",
                "description": "Its lobby sees it leave as if it had disconnected; kicking "
                "the host ends the lobby as when a host leaves.",
                "requestBody": _REASON_BODY,
                "responses": {
                    "200": _json("Kicked", "Kicked."),
                    "400": _BAD_BODY,
                    "401": _UNAUTHORIZED,
                    "404": _error("No such lobby, or no such peer in it."),
                    "413": _TOO_LARGE,
                    "503": _UNAVAILABLE,
                },
            },
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                    "401": _UNAUTHORIZED,
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "webrtc-signal admin API",
            "version": VERSION,
            "description": "Lobby control for game backends. Every request needs "
            "`Authorization: Bearer <token>` (401 otherwise). Bodies are JSON objects of at "
            f"most {MAX_BODY_BYTES} bytes (413 beyond). A method a path does not take is "
            'answered 405 with `Allow`; an unknown path 404. Errors are `{"error": ...}`.',
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _lobby_properties() -> dict[str, Any]:
    return {
        "name": {"type": "string", "description": "What players JOIN."},
        "mode": {
            "type": "string",
            "description": "Its topology: `mesh` or `client-server`.",
            "examples": ["mesh", "client-server"],
        },
        "sealed": {"type": "boolean"},
        "members": {
            "type": "integer",
            "minimum": 0,
            "description": "Members now, host included (0: a reservation not claimed yet).",
        },
        "size": {
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "Most members: the lobby's own limit, else the server's "
            "--max-lobby-size; null when there is none.",
        },
        "pool": {
            "type": ["string", "null"],
            "description": "The quick-match pool it was made for.",
        },
        "title": {"type": ["string", "null"], "description": "Its title in lobby lists."},
        "created": {
            "type": "string",
            "format": "date-time",
            "description": "When it was created or reserved: ISO 8601, UTC, to the "
            "millisecond (`2024-05-01T12:00:00.250Z`).",
        },
        "peers": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/Peer"},
            "description": "Its members: host first, then in the order they joined.",
        },
    }
