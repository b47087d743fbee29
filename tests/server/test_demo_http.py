"""The server answers plain HTTP GETs with the browser demo, on the same port
as the WebSocket endpoint; --no-demo turns that off."""

from __future__ import annotations

from importlib.resources import files

import pytest
import pytest_twisted

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get

STATIC = files("webrtc_signal.server") / "static"


def port_of(server: RunningServer) -> int:
    return server.service.port.getHost().port


@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/?lobby=AbCdEf0123456789", "index.html", "text/html; charset=utf-8"),
        ("/demo.js", "demo.js", "text/javascript; charset=utf-8"),
        ("/demo.css", "demo.css", "text/css; charset=utf-8"),
        ("/icon.svg", "icon.svg", "image/svg+xml"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_demo_files_are_served(
    server: RunningServer, path: str, file: str, content_type: str
) -> None:
    status, headers, body = await http_get(port_of(server), path)
    assert status == 200
    assert headers["content-type"] == content_type
    assert body == (STATIC / file).read_bytes()
    assert int(headers["content-length"]) == len(body)
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/nope", "/static/demo.js", "/../setup.cfg", "/index.html/x"])
@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_404(server: RunningServer, path: str) -> None:
    status, _, body = await http_get(port_of(server), path)
    assert status == 404
    assert body == b"Not found\n"


@pytest_twisted.ensureDeferred
async def test_no_open_redirect(server: RunningServer) -> None:
    status, headers, _ = await http_get(port_of(server), "/?redirect=http%3A%2F%2Fevil.example%2F")
    assert status == 200
    assert "location" not in headers


@pytest_twisted.ensureDeferred
async def test_websocket_still_answers_at_any_path(server: RunningServer) -> None:
    from ..support.wsclient import connect

    base = server.url
    for path in ("/", "/signal", "/index.html", "/any/path?x=1"):
        client = await connect(base + path)
        client.send(0, 0, "")
        assert (await client.expect(1))["id"] == 1
        client.dropConnection(abort=True)


@pytest_twisted.ensureDeferred
async def test_no_demo_answers_426(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(serve_demo=False))
    status, _, body = await http_get(port_of(server), "/")
    assert status == 426
    assert b"<html" not in body.lower()
