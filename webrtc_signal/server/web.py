"""The server's plain HTTP answers, as ``twisted.web`` resources: the browser
demo, ``/healthz`` and ``/ice-servers`` (`ice_servers`).

The same resources serve the standalone port (its front door hands every
request that is not a WebSocket upgrade to a `site` of them) and an
embedding program's own site (``SignalingService.resources()``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import orjson
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

HEALTH_PATH = b"healthz"
ICE_SERVERS_PATH = b"ice-servers"
# Seconds of silence that end a plain HTTP connection when the handshake
# timeout, which otherwise bounds it, is off.
DEFAULT_IDLE_TIMEOUT = 60.0

_CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
# The page talks to its own origin's WebSocket (or one typed in) and that
# server's /ice-servers, and nothing else.
_SECURITY_HEADERS = (
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
    (
        b"Content-Security-Policy",
        b"default-src 'self'; connect-src 'self' ws: wss: http: https:; "
        b"img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
    ),
)


def _load_demo() -> dict[bytes, tuple[bytes, bytes]]:
    """The demo's files by path, read once: (content type, body)."""
    found = {}
    for item in files(__package__).joinpath("static").iterdir():
        suffix = item.name[item.name.rfind(".") :]
        if item.is_file() and suffix in _CONTENT_TYPES:
            found[item.name.encode()] = (_CONTENT_TYPES[suffix], item.read_bytes())
    found[b""] = found[b"index.html"]
    return found


_DEMO = _load_demo()


class DemoResource(Resource):
    """The browser demo's files (``/`` is its page); 404 for anything else."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render_GET(self, request: Request) -> bytes:
        path = b"/".join(request.postpath or [b""])
        found = _DEMO.get(path)
        for name, value in _SECURITY_HEADERS:
            request.setHeader(name, value)
        request.setHeader(b"Cache-Control", b"no-cache")
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"Not found\n"
        content_type, body = found
        request.setHeader(b"Content-Type", content_type)
        return body


class UpgradeRequiredResource(Resource):
    """What a plain GET gets without the demo: 426 Upgrade Required."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(426)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Upgrade", b"websocket")
        return b"This is a WebSocket server.\n"


class HealthResource(Resource):
    """``GET /healthz``: whether this server takes new players, for load
    balancers and container health checks.

    200 with ``{"status": "ok", ...}`` while serving; 503 with
    ``"draining"`` while a stopping server lets its open lobbies finish,
    ``"stopping"`` once it closes everything, and ``"degraded"`` (with a
    ``reason``) while it cannot create lobbies (a cluster node without
    Redis). The body also counts peers and lobbies, so the same request tells
    an operator how busy the server is."""

    isLeaf = True

    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.health = health

    def render_GET(self, request: Request) -> bytes:
        body = self.health()
        request.setResponseCode(200 if body["status"] == "ok" else 503)
        request.setHeader(b"Content-Type", b"application/json")
        # A cached answer would hide a drain from the load balancer.
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return orjson.dumps(body) + b"\n"


class SignalingRoot(Resource):
    """The standalone port's plain HTTP: the demo (or 426 without it) at
    every path but the named children."""

    def __init__(self, children: dict[bytes, Resource], serve_demo: bool) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.fallback: Resource = DemoResource() if serve_demo else UpgradeRequiredResource()
        for name, child in children.items():
            self.putChild(name, child)

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        # A child answers its own path only ("/healthz", not "/healthz/x").
        child: Resource | None = self.children.get(path)
        if child is not None and not request.postpath:
            return child
        return self.getChild(path, request)

    def getChild(self, path: bytes, request: Request) -> Resource:
        # Everything below "/" that no child claims: the fallback sees the
        # whole path.
        if request.postpath is not None and request.prepath:
            request.postpath.insert(0, path)
            request.prepath.pop()
        return self.fallback


class OneRequestPerConnection(Request):
    """A request whose connection closes once it is answered: a plain HTTP
    connection on the signaling port holds one of its address's handshake
    slots (see `front`), so it is not kept for more."""

    def process(self) -> None:
        self.setHeader(b"Connection", b"close")
        self.channel.persistent = False
        if self.method not in (b"GET", b"HEAD"):
            # Everything here is read-only.
            self.setResponseCode(405)
            self.setHeader(b"Allow", b"GET, HEAD")
            self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            self.write(b"Method not allowed\n")  # type: ignore[no-untyped-call]
            self.finish()  # type: ignore[no-untyped-call]
            return
        super().process()  # type: ignore[no-untyped-call]

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:
        # No library name or version in the Server header: it only helps
        # someone matching servers to known flaws.
        if name in (b"server", b"Server", "server", "Server"):
            return
        super().setHeader(name, value)  # type: ignore[no-untyped-call]


class SignalingSite(Site):
    """The standalone port's HTTP site: one request per connection, no
    access-log line per request (a scanner or a load balancer's health
    checks would fill the log), and ``idle_timeout`` seconds of silence
    close a connection."""

    noisy = False
    requestFactory = OneRequestPerConnection

    def __init__(self, root: Resource, clock: IReactorTime, idle_timeout: float) -> None:
        super().__init__(root, timeout=idle_timeout, reactor=clock)  # type: ignore[no-untyped-call]

    def log(self, request: object) -> None:
        pass
