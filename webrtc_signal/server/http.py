"""The browser demo: the static page a plain HTTP GET to the server gets.

The files live in ``static/`` and are read once, into complete HTTP responses,
so answering a request is one write. Only GET and HEAD reach here (Autobahn
refuses other methods); the query string is ignored. ``/ice-servers`` is
answered by `webrtc_signal.server.ice` instead.
"""

from __future__ import annotations

from importlib.resources import files

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page talks to its own origin's WebSocket (or one typed in) and that
# server's /ice-servers, and nothing else.
_SECURITY_HEADERS = (
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss: http: https:; "
    "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'\r\n"
)


def _head(status: str, content_type: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-cache\r\n"
        f"{_SECURITY_HEADERS}"
        "Connection: close\r\n\r\n"
    ).encode("ascii")


# Per path: the whole response to a GET, and its head alone for a HEAD.
_Responses = tuple[bytes, bytes]


def _response(status: str, content_type: str, body: bytes) -> _Responses:
    head = _head(status, content_type, body)
    return head + body, head


def _load() -> dict[str, _Responses]:
    responses = {}
    for item in files(__package__).joinpath("static").iterdir():
        suffix = item.name[item.name.rfind(".") :]
        if item.is_file() and suffix in _CONTENT_TYPES:
            responses[f"/{item.name}"] = _response(
                "200 OK", _CONTENT_TYPES[suffix], item.read_bytes()
            )
    responses["/"] = responses["/index.html"]
    return responses


_RESPONSES = _load()
_NOT_FOUND = _response("404 Not Found", "text/plain; charset=utf-8", b"Not found\n")
_UPGRADE_REQUIRED = _response(
    "426 Upgrade Required", "text/plain; charset=utf-8", b"This is a WebSocket server.\n"
)


def http_response(path: str, head_only: bool = False, serve_demo: bool = True) -> bytes:
    """The whole HTTP response for a GET of ``path`` (426 when the demo is
    off); with ``head_only``, the response to a HEAD: the same status and
    headers, no body."""
    get, head = _RESPONSES.get(path, _NOT_FOUND) if serve_demo else _UPGRADE_REQUIRED
    return head if head_only else get
