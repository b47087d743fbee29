"""The server answers plain HTTP GETs (and HEADs) with the browser demo, on
the same port as the WebSocket endpoint; --no-demo turns that off."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get, http_request

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


@pytest.mark.parametrize("path", ["/", "/demo.js", "/nope"])
@pytest_twisted.ensureDeferred
async def test_head_gets_the_get_headers_and_no_body(server: RunningServer, path: str) -> None:
    """Health and link checkers send HEAD."""
    get = await http_request(port_of(server), "GET", path)
    head = await http_request(port_of(server), "HEAD", path)
    get_head, _, body = get.partition(b"\r\n\r\n")
    assert body
    # The same headers; a Date may have moved on a second between the two.
    assert without_date(head) == without_date(get_head + b"\r\n\r\n")


def without_date(response: bytes) -> bytes:
    return re.sub(rb"(?im)^date: [^\r\n]*\r\n", b"date: -\r\n", response)


@pytest_twisted.ensureDeferred
async def test_head_with_the_demo_off_gets_426_too(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(serve_demo=False))
    head = await http_request(port_of(server), "HEAD", "/")
    assert head.startswith(b"HTTP/1.1 426 ")


@pytest_twisted.ensureDeferred
async def test_other_methods_are_still_refused(server: RunningServer) -> None:
    response = await http_request(port_of(server), "POST", "/")
    assert response.startswith(b"HTTP/1.1 405 ")


@pytest.fixture
def warnings_logged() -> Iterator[list[dict[str, Any]]]:
    """Every event at warn or above that anyone logs during the test."""
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level", LogLevel.info) >= LogLevel.warn:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


@pytest.mark.parametrize("serve_demo", [True, False])
@pytest_twisted.ensureDeferred
async def test_plain_http_requests_log_no_warning(
    make_server: ServerMaker, warnings_logged: list[dict[str, Any]], serve_demo: bool
) -> None:
    """A page and its assets, or a scanner, is no cause for a warning."""
    server = await make_server(SignalingConfig(serve_demo=serve_demo))
    for method, path in [("GET", "/"), ("GET", "/demo.js"), ("GET", "/nope"), ("HEAD", "/")]:
        await http_request(port_of(server), method, path)
    # The server's side of each connection has closed by now (the client saw
    # the end of the response), but give its log one more turn of the reactor.
    await deferLater(reactor, 0.05, lambda: None)
    assert [formatEvent(event) for event in warnings_logged] == []


@pytest_twisted.ensureDeferred
async def test_a_genuine_protocol_violation_still_warns(
    server: RunningServer, warnings_logged: list[dict[str, Any]]
) -> None:
    """Only the plain-HTTP drops went quiet: a client breaking the WebSocket
    protocol (an unmasked frame) is still a warning."""
    client = await server.connect(raw=True)
    client.transport.write(b"\x81\x02hi")  # a client frame must be masked
    await client.wait_closed()
    assert any("unmasked" in formatEvent(event) for event in warnings_logged), [
        formatEvent(event) for event in warnings_logged
    ]
