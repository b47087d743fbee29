"""`_internals.LeanServerProtocol`: Autobahn's server protocol with a lean
set-up and opening handshake answers every request exactly as Autobahn's own
path does, keeps an idle connection small, and keeps Autobahn's futures and
settings working."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerProtocol

from webrtc_signal.events import PeerDisconnected
from webrtc_signal.server import _internals
from webrtc_signal.server.websocket import SignalingServerProtocol

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import raw_cleanup, raw_connect  # noqa: F401
from ..support.wsclient import WAIT, with_timeout
from ..support.wsframes import frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
JOIN = 0


class AutobahnPath(SignalingServerProtocol):
    """The same protocol, with Autobahn's own opening handshake."""

    processHandshake = WebSocketServerProtocol.processHandshake


def request(port: int, *lines: str, target: str = "/", drop: tuple[str, ...] = ()) -> bytes:
    """An upgrade request with the fixed key, ``lines`` added and the
    headers named in ``drop`` left out."""
    usual = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    head = [f"GET {target} HTTP/1.1"]
    head += [f"{name}: {value}" for name, value in usual.items() if name not in drop]
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


CASES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "plain": ((), {}),
    "query": ((), {"target": "/lobby?name=abc&x=1&x=2"}),
    "origin": (("Origin: http://example.com",), {}),
    "null origin": (("Origin: null",), {}),
    "two origins": (("Origin: http://a.example", "Origin: http://b.example"), {}),
    "bad origin": (("Origin: ::bad::",), {}),
    "browser": (
        (
            "Origin: https://game.example:8443",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "User-Agent: Mozilla/5.0",
            "Cache-Control: no-cache",
        ),
        {},
    ),
    "bad deflate offer": (("Sec-WebSocket-Extensions: permessage-deflate; bogus=1",), {}),
    "other extension": (("Sec-WebSocket-Extensions: x-webkit-deflate-frame",), {}),
    "subprotocol": (("Sec-WebSocket-Protocol: chat, superchat",), {}),
    "mixed case tokens": (("Upgrade: WebSocket", "Connection: keep-alive, Upgrade"), {}),
    "version 8": (("Sec-WebSocket-Version: 8",), {"drop": ("Sec-WebSocket-Version",)}),
    "version 12": (("Sec-WebSocket-Version: 12",), {"drop": ("Sec-WebSocket-Version",)}),
    "short key": (("Sec-WebSocket-Key: abc==",), {"drop": ("Sec-WebSocket-Key",)}),
    "bad key": (("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ*==",), {"drop": ("Sec-WebSocket-Key",)}),
    "no host": ((), {"drop": ("Host",)}),
    "bad port": (("Host: 127.0.0.1:port",), {"drop": ("Host",)}),
    "ipv6 host": (("Host: [::1]",), {"drop": ("Host",)}),
    "no connection": ((), {"drop": ("Connection",)}),
    "fragment": ((), {"target": "/#part"}),
    "params": ((), {"target": "/a;b"}),
    "absolute": ((), {"target": "http://example.com/"}),
    "HTTP/1.0": ((), {"target": "/ HTTP/1.0 x"}),
}


async def answer(server: RunningServer, raw: bytes) -> bytes:
    """Everything the server answers before the client hangs up (after a
    101: once its head is in)."""
    client = await raw_connect(server.service.port.getHost().port, request=raw)
    if client.status != 101:
        await client.wait_lost()
    client.transport.loseConnection()
    return client.response_head.encode("latin-1") + b"|" + client.buffer


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("case", CASES)
async def test_every_upgrade_request_is_answered_as_autobahn_answers_it(
    server: RunningServer, case: str
) -> None:
    lines, options = CASES[case]
    raw = request(server.service.port.getHost().port, *lines, **options)
    lean = await answer(server, raw)
    factory = server.factory
    factory.protocol = AutobahnPath
    _internals.forget_configured_protocol(factory)
    try:
        autobahn = await answer(server, raw)
    finally:
        factory.protocol = SignalingServerProtocol
        _internals.forget_configured_protocol(factory)
    assert lean == autobahn


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_keeps_few_attributes_of_its_own(server: RunningServer) -> None:
    """The settings are the class's, the usual values too: an idle joined
    connection holds only what is its own (memory per connection)."""
    await server.create()
    (connection,) = server.engine.connections
    own = vars(connection)
    assert len(own) <= 20, sorted(own)
    for made_on_first_use in ("send_queue", "utf8validator", "trafficStats", "is_open"):
        assert made_on_first_use not in own
    assert "http_headers" not in own, "the upgrade went through Autobahn's own path"
    assert connection.maxMessagePayloadSize == server.service.config.max_message_size


@pytest_twisted.ensureDeferred
async def test_autobahns_futures_fire_for_a_lean_connection(server: RunningServer) -> None:
    """is_open, made after the lean open, has fired; is_closed fires at the close."""
    await server.create()
    (connection,) = server.engine.connections
    opened: list[object] = []
    connection.is_open.addCallback(opened.append)
    assert opened == [None]
    closed = connection.is_closed
    connection.dropConnection(abort=True)
    assert await with_timeout(closed, WAIT) is connection


@pytest_twisted.ensureDeferred
async def test_new_settings_reach_the_next_connection(make_server: ServerMaker) -> None:
    server = await make_server()
    await server.create()
    factory = server.factory
    factory.setProtocolOptions(maxMessagePayloadSize=1234, maxFramePayloadSize=1234)
    await server.create()
    sizes = sorted(c.maxMessagePayloadSize for c in server.engine.connections)
    assert sizes == sorted([server.service.config.max_message_size, 1234])


# -- a client's close frame ---------------------------------------------------------


class AutobahnCloses(SignalingServerProtocol):
    """The same protocol, with every close frame parsed by Autobahn."""

    def rest_to_autobahn(self, rest: bytes) -> None:
        _internals.resume_parser(self)


CLOSES = {
    "empty": b"",
    "normal": struct.pack("!H", 1000),
    "going away, with a reason": struct.pack("!H", 1001) + b"bye",
    "an application's code": struct.pack("!H", 4000) + b"game over",
    "a reason of 123 bytes": struct.pack("!H", 1000) + b"r" * 123,
    "a UTF-8 reason": struct.pack("!H", 1000) + "fin ✓ é".encode(),
    "code 999": struct.pack("!H", 999),
    "code 1005, never sent": struct.pack("!H", 1005),
    "code 5000": struct.pack("!H", 5000),
    "a reason that is not UTF-8": struct.pack("!H", 1000) + b"\xff\xfe",
    "a payload of one byte": b"\x03",
}


async def closing(server: RunningServer, payload: bytes) -> tuple[object, ...]:
    """What a joined peer that sends a close frame with ``payload`` gets
    back (every frame, then the end of TCP) and what the server reports."""
    gone: list[tuple[int, str]] = []
    server.service.add_observer(
        lambda event: (
            isinstance(event, PeerDisconnected) and gone.append((event.code, event.reason))
        )
    )
    client = await raw_connect(server.service.port.getHost().port)
    client.send_json(JOIN, 0, "")
    assert (await client.next_json())["type"] == 1  # its ID: a peer in a lobby
    assert (await client.next_json())["type"] == JOIN  # the lobby's name (random)
    client.transport.write(frame(payload, opcode=8, mask=os.urandom(4)))
    await client.wait_lost()
    frames = []
    while client.frames.pending:
        frames.append(await client.next_frame())
    return tuple(frames), tuple(gone)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("case", CLOSES)
async def test_every_close_frame_is_answered_as_autobahn_answers_it(
    make_server: ServerMaker, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path hands a client's close frame to Autobahn's handler
    itself: the same answer, the same end and the same code and reason
    reported as when Autobahn's parser reads it."""
    taken: list[object] = []
    handler = _internals.close_frame_received
    monkeypatch.setattr(
        _internals,
        "close_frame_received",
        lambda *args: taken.append(args) or handler(*args),
    )
    lean = await closing(await make_server(), CLOSES[case])
    assert len(taken) == (0 if case == "a payload of one byte" else 1)
    server = await make_server()
    server.factory.protocol = AutobahnCloses
    _internals.forget_configured_protocol(server.factory)
    assert await closing(server, CLOSES[case]) == lean
    assert len(taken) == (0 if case == "a payload of one byte" else 1)
