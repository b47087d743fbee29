"""``GET /healthz`` and draining restarts, over real sockets; the drain's
timers (and the server's) run on the test's clock."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs

from webrtc_signal import SignalingConfig
from webrtc_signal.server import drain

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get
from ..support.wsclient import with_timeout

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)
DRAINING = SignalingConfig(drain_timeout=30, seal_timeout=10, join_timeout=60)


def port_of(server: RunningServer) -> int:
    return server.service.port.getHost().port


async def healthz(port: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    status, headers, body = await http_get(port, "/healthz")
    # The time of the answer says nothing here; no server header names a library.
    headers.pop("date", None)
    assert "server" not in headers
    return status, headers, json.loads(body)


async def upgrade_status(port: int) -> int:
    """The status a WebSocket upgrade request gets."""
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
    )
    status, _, _ = await http_get(port, "/", upgrade)
    return status


async def lobbies_left(server: RunningServer, count: int) -> None:
    """Wait (a bounded while) until the server has seen lobbies close down to ``count``."""
    for _ in range(500):
        if len(server.factory.signaling.lobbies) == count:
            return
        await deferLater(reactor, 0.01)
    pytest.fail(f"{len(server.factory.signaling.lobbies)} lobbies left, not {count}")


@pytest.mark.parametrize("demo", [True, False], ids=["demo", "no-demo"])
@pytest_twisted.ensureDeferred
async def test_healthz_says_ok_and_counts_peers_and_lobbies(
    make_server: ServerMaker, demo: bool
) -> None:
    server = await make_server(SignalingConfig(serve_demo=demo))
    port = port_of(server)
    assert await healthz(port) == (
        200,
        {
            "content-type": "application/json",
            "content-length": "38",
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            "connection": "close",
        },
        {"status": "ok", "peers": 0, "lobbies": 0},
    )
    _, lobby = await server.create()
    await server.join(lobby)
    await server.connect()
    assert (await healthz(port))[2] == {"status": "ok", "peers": 3, "lobbies": 1}
    # Only that path: the rest is as before (the demo, or 426 without it).
    status, _, _ = await http_get(port, "/")
    assert status == (200 if demo else 426)
    status, _, _ = await http_get(port, "/healthz/")
    assert status == (404 if demo else 426)


@pytest_twisted.ensureDeferred
async def test_service_health_is_what_healthz_answers(server: RunningServer) -> None:
    await server.create()
    assert server.service.health() == {"status": "ok", "peers": 1, "lobbies": 1}


@pytest_twisted.ensureDeferred
async def test_a_draining_server_lets_its_lobbies_finish_and_refuses_newcomers(
    make_server: ServerMaker,
) -> None:
    server = await make_server(DRAINING)
    port = port_of(server)
    host, lobby = await server.create()
    guest, guest_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, guest_id)
    waiting = await server.connect()
    joining = await server.connect()

    stopping = server.service.stopService()
    assert not stopping.called

    # New connections: 503 at the upgrade; the health check says draining.
    assert await upgrade_status(port) == 503
    status, headers, body = await healthz(port)
    assert (status, headers["content-type"]) == (503, "application/json")
    assert body == {"status": "draining", "peers": 4, "lobbies": 1}
    # No new lobby: a connected peer asking for one is closed with 1001.
    waiting.send(JOIN, 0, "")
    assert await waiting.wait_closed() == (1001, "Server shutting down")
    # The open lobby carries on: a join, relays, the seal.
    joining.send(JOIN, 0, lobby)
    joining_id = (await joining.expect(ID))["id"]
    seen = {(await joining.expect(PEER_CONNECT))["id"] for _ in range(2)}
    assert seen == {1, guest_id}
    await joining.expect(JOIN, 0, lobby)
    await host.expect(PEER_CONNECT, joining_id)
    await guest.expect(PEER_CONNECT, joining_id)
    guest.send(OFFER, 1, "offer while draining")
    await host.expect(OFFER, guest_id, "offer while draining")
    host.send(ANSWER, guest_id, "answer while draining")
    await guest.expect(ANSWER, 1, "answer while draining")
    host.send(SEAL)
    for client in (host, guest, joining):
        await client.expect(SEAL, 0)
    server.clock.advance(10)  # the seal timeout, well inside the drain's 30 s
    for client in (host, guest, joining):
        assert await client.wait_closed() == (1000, "Seal complete")
    await with_timeout(stopping, 5)
    assert server.service.port is None
    assert not server.factory.signaling.accepting


@pytest_twisted.ensureDeferred
async def test_the_drain_timeout_closes_what_is_left_with_1001(
    make_server: ServerMaker,
) -> None:
    server = await make_server(DRAINING)
    host, lobby = await server.create()
    guest, _ = await server.join(lobby)
    with capturedLogs() as events:
        stopping = server.service.stopService()
        server.clock.advance(29.9)
        assert not stopping.called
        server.clock.advance(0.1)
        assert await host.wait_closed() == (1001, "Server shutting down")
        assert await guest.wait_closed() == (1001, "Server shutting down")
        await with_timeout(stopping, 5)
    ended = [e for e in events if e.get("event_kind") == "drain ended"]
    assert [(e["why"], e["lobbies"]) for e in ended] == [("timeout", 1)]


@pytest_twisted.ensureDeferred
async def test_end_drain_stops_waiting_at_once(make_server: ServerMaker) -> None:
    server = await make_server(DRAINING)
    host, _ = await server.create()
    stopping = server.service.stopService()
    server.service.end_drain()
    assert await host.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopping, 5)
    assert server.core_timers() == 0
    assert not server.clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_a_drain_with_no_lobbies_stops_at_once(make_server: ServerMaker) -> None:
    server = await make_server(DRAINING)
    idle = await server.connect()
    stopping = server.service.stopService()
    assert await idle.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopping, 5)


@pytest_twisted.ensureDeferred
async def test_no_drain_timeout_stops_at_once_as_before(server: RunningServer) -> None:
    host, _ = await server.create()
    stopping = server.service.stopService()
    assert await host.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopping, 5)


@pytest_twisted.ensureDeferred
async def test_the_drain_logs_its_start_progress_and_end(make_server: ServerMaker) -> None:
    server = await make_server(DRAINING)
    hosts = [(await server.create())[0] for _ in range(3)]
    with capturedLogs() as events:
        stopping = server.service.stopService()
        server.clock.advance(drain.PROGRESS_INTERVAL)  # nothing changed: no line
        for left, host in zip((2, 1), hosts, strict=False):
            host.dropConnection(abort=True)
            await lobbies_left(server, left)
            server.clock.advance(drain.PROGRESS_INTERVAL)
        hosts[2].dropConnection(abort=True)
        await with_timeout(stopping, 5)
    lines = [
        (e["event_kind"], e["lobbies"])
        for e in events
        if str(e.get("event_kind", "")).startswith("drain")
    ]
    assert lines == [
        ("drain started", 3),
        ("drain progress", 2),
        ("drain progress", 1),
        ("drain ended", 0),
    ]
    ended = next(e for e in events if e.get("event_kind") == "drain ended")
    assert ended["why"] == "lobbies closed"
    assert ended["elapsed"] == pytest.approx(3 * drain.PROGRESS_INTERVAL)
