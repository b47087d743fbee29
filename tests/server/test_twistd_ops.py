"""Operating the server through real ``twistd -n webrtc-signal`` processes:
JSON logs and log levels, the health check, draining restarts on SIGTERM, and
the ``--port-file`` that says where a server on port 0 listens."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import succeed
from twisted.internet.task import deferLater

from webrtc_signal.server.port_file import PortFile, PortFileError, address_line

from ..support.http import http_get
from ..support.processes import Spawned, spawn
from ..support.twistd import parse_address, read_port_file, start_twistd, twistd_argv
from ..support.wsclient import RecordingClient, connect, host_and_guest

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NOTICE_FIELDS = {
    "event_kind",
    "peer_id",
    "address",
    "lobby",
    "members",
    "mode",
    "close_code",
    "reason",
}


_running: list[Spawned] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """A test that fails half-way must not leave its twistd running."""
    yield
    while _running:
        process = _running.pop()
        if not process.ended.called:
            process.transport.signalProcess("KILL")


async def start(*options: str) -> tuple[Spawned, int]:
    """twistd on a loopback port the kernel picks; returns once it listens."""
    process, (port,) = await start_twistd(*options)
    _running.append(process)
    return process, port


async def lobby_life(url: str) -> tuple[str, int]:
    """Create, join, relay, a refusal, seal: returns the lobby and the guest's id."""
    host, lobby, guest, guest_id = await host_and_guest(url)
    guest.send(OFFER, 1, "v=0 offer")
    await host.expect(OFFER, guest_id, "v=0 offer")
    lost = await connect(url)
    lost.send(JOIN, 0, "NoSuchLobby00000")
    assert await lost.wait_closed() == (4000, "Lobby does not exists")
    host.send(SEAL)
    await guest.expect(SEAL, 0)
    await host.expect(SEAL, 0)
    for client in (host, guest):
        assert await client.wait_closed() == (1000, "Seal complete")
    return lobby, guest_id


async def upgrade_status(port: int) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    status, _, _ = await http_get(
        port,
        "/",
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n",
    )
    return status


def stop(process: Spawned) -> None:
    if not process.ended.called:
        process.transport.signalProcess(signal.SIGTERM)


# -- logs ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_json_logs_every_line_parses_and_carries_the_fields() -> None:
    process, port = await start(
        "--log-format", "json", "--log-level", "debug", "--seal-timeout", "0.2"
    )
    try:
        lobby, guest_id = await lobby_life(f"ws://127.0.0.1:{port}")
    finally:
        stop(process)
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    records = [json.loads(line) for line in process.output.splitlines()]
    for record in records:
        assert ISO_UTC.match(record["time"]), record
        assert record["level"] in {"debug", "info", "warn", "error", "critical"}
        assert record["namespace"] and record["message"]
    ours = [r for r in records if "event_kind" in r and r["namespace"] == "webrtc_signal"]
    for record in ours:
        if record["event_kind"] not in {"drain started", "drain progress", "drain ended"}:
            assert set(record) >= NOTICE_FIELDS, record
    kinds = [(r["event_kind"], r["lobby"]) for r in ours]
    assert ("lobby created", lobby) in kinds
    assert ("lobby joined", lobby) in kinds
    assert ("lobby sealed", lobby) in kinds
    assert ("lobby deleted", lobby) in kinds
    assert [r["level"] for r in ours if r["event_kind"] == "connected"] == ["debug"] * 3
    joined = next(r for r in ours if r["event_kind"] == "lobby joined")
    assert (joined["peer_id"], joined["members"], joined["mode"]) == (guest_id, 2, "")
    assert joined["address"] == "127.0.0.1"
    refused = next(r for r in ours if r["event_kind"] == "closed")
    assert (refused["close_code"], refused["reason"]) == (4000, "Lobby does not exists")
    deleted = next(r for r in ours if r["event_kind"] == "lobby deleted")
    assert (deleted["close_code"], deleted["reason"]) == (1000, "Seal complete")
    assert "v=0 offer" not in process.output  # relays are never logged


@pytest_twisted.ensureDeferred
async def test_the_default_level_hides_per_connection_lines() -> None:
    process, port = await start("--seal-timeout", "0.2")
    try:
        lobby, _ = await lobby_life(f"ws://127.0.0.1:{port}")
    finally:
        stop(process)
    await process.finished(15)
    assert f"created mesh lobby {lobby}" in process.output
    assert "[webrtc_signal#info] closing peer" in process.output
    assert " connected from " not in process.output
    assert " disconnected (lobby " not in process.output


@pytest_twisted.ensureDeferred
async def test_log_level_warn_hides_info_lines() -> None:
    process, port = await start("--log-level", "warn", "--seal-timeout", "0.2")
    try:
        await lobby_life(f"ws://127.0.0.1:{port}")
    finally:
        stop(process)
    await process.finished(15)
    assert "#info]" not in process.output
    assert "#debug]" not in process.output
    assert "lobby" not in process.output


# -- draining --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sigterm_drains_open_lobbies_then_exits_before_the_timeout() -> None:
    process, port = await start(
        "--drain-timeout", "30", "--seal-timeout", "1", "--join-timeout", "30"
    )
    url = f"ws://127.0.0.1:{port}"
    try:
        host = await connect(url)
        host.send(JOIN, 0, "")
        await host.expect(ID, 1)
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(url)
        guest.send(JOIN, 0, lobby)
        guest_id = (await guest.expect(ID))["id"]
        await guest.expect(PEER_CONNECT, 1)
        await guest.expect(JOIN, 0, lobby)
        await host.expect(PEER_CONNECT, guest_id)
        waiting = await connect(url)

        signalled = time.monotonic()
        process.transport.signalProcess(signal.SIGTERM)
        await process.wait_for("draining: 1 lobbies open, 3 peers connected")
        status, _, body = await http_get(port, "/healthz")
        assert (status, json.loads(body)) == (
            503,
            {"status": "draining", "peers": 3, "lobbies": 1},
        )
        assert await upgrade_status(port) == 503
        waiting.send(JOIN, 0, "")
        assert await waiting.wait_closed() == (1001, "Server shutting down")
        # The open lobby finishes its handshake and its seal.
        guest.send(ANSWER, 1, "answer while draining")
        await host.expect(ANSWER, guest_id, "answer while draining")
        host.send(SEAL)
        await guest.expect(SEAL, 0)
        assert await host.wait_closed(10) == (1000, "Seal complete")
        assert await guest.wait_closed(10) == (1000, "Seal complete")
    finally:
        stop(process)
    assert await process.finished(20) == f"signal {signal.SIGTERM}", process.output
    assert time.monotonic() - signalled < 15  # far from the 30 s drain timeout
    assert "drain ended (lobbies closed)" in process.output
    assert "webrtc-signal stopped" in process.output
    assert "Traceback" not in process.output


@pytest_twisted.ensureDeferred
async def test_a_second_sigterm_ends_the_drain_at_once() -> None:
    process, port = await start("--drain-timeout", "60")
    clients: list[RecordingClient] = []
    try:
        url = f"ws://127.0.0.1:{port}"
        host = await connect(url)
        host.send(JOIN, 0, "")
        await host.expect(ID, 1)
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(url)
        guest.send(JOIN, 0, lobby)
        await guest.expect(ID)
        await guest.expect(PEER_CONNECT, 1)
        await guest.expect(JOIN, 0, lobby)
        clients += [host, guest]
        process.transport.signalProcess(signal.SIGTERM)
        await process.wait_for("draining: 1 lobbies open")
        # Still draining a moment later: the lobby keeps the server up.
        await deferLater(reactor, 0.3)
        assert not process.ended.called
        process.transport.signalProcess(signal.SIGTERM)
        for client in clients:
            assert await client.wait_closed(10) == (1001, "Server shutting down")
    finally:
        stop(process)
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    assert "drain ended (ended early)" in process.output
    assert "Traceback" not in process.output


@pytest_twisted.ensureDeferred
async def test_no_drain_timeout_stops_at_once() -> None:
    process, port = await start()
    host = await connect(f"ws://127.0.0.1:{port}")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)
    await host.expect(JOIN, 0)
    stop(process)
    assert await host.wait_closed(10) == (1001, "Server shutting down")
    assert await process.finished(15) == f"signal {signal.SIGTERM}"
    assert "draining" not in process.output


# -- --port-file -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_port_file_names_the_signaling_then_the_metrics_port(tmp_path: Path) -> None:
    process = spawn(
        twistd_argv(
            tmp_path / "ports",
            ["--metrics", r"tcp6:0:interface=\:\:1", "--drain-timeout", "30"],
        )
    )
    _running.append(process)
    (signaling, metrics) = await read_port_file(tmp_path / "ports", process)
    assert signaling[0] == "127.0.0.1" and metrics[0] == "::1"
    lines = (tmp_path / "ports").read_text().splitlines()
    assert lines == [f"127.0.0.1:{signaling[1]}", f"[::1]:{metrics[1]}"]
    # Written whole, by a rename: no temporary file is left beside it.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ports"]
    # Both are the ports the process serves on.
    status, _, _ = await http_get(signaling[1], "/healthz")
    assert status == 200
    await process.wait_for(f"serving metrics at /metrics on ::1 port {metrics[1]}")
    host = await connect(f"ws://127.0.0.1:{signaling[1]}")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)
    await host.expect(JOIN, 0)
    process.transport.signalProcess(signal.SIGTERM)
    # Still there while the lobby drains: the ports are still open.
    await process.wait_for("draining: 1 lobbies open")
    assert (tmp_path / "ports").exists()
    host.dropConnection(abort=True)
    assert await process.finished(20) == f"signal {signal.SIGTERM}", process.output
    assert list(tmp_path.iterdir()) == []


def test_a_port_file_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "ports"
    result = subprocess.run(
        twistd_argv(missing, []), capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    # One line on stderr, naming the option.
    assert result.stderr == (
        f"webrtc-signal: --port-file {str(missing)!r}: "
        f"the directory {str(missing.parent)!r} does not exist\n"
    )
    assert result.stdout == ""


def test_an_ipv6_address_is_bracketed() -> None:
    assert address_line(IPv6Address("TCP", "::", 9080)) == "[::]:9080"
    assert address_line(IPv4Address("TCP", "0.0.0.0", 9080)) == "0.0.0.0:9080"
    assert parse_address("[::]:9080") == ("::", 9080)


@pytest_twisted.ensureDeferred
async def test_a_port_file_that_cannot_be_written_at_start_is_one_line(tmp_path: Path) -> None:
    """The directory checked at start may be gone when the ports are open."""
    from twisted.internet import endpoints
    from twisted.internet.protocol import Factory, Protocol

    gone = tmp_path / "gone"
    gone.mkdir()
    port_file = PortFile(str(gone / "ports"))
    gone.rmdir()
    listening = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(Protocol)
    )
    try:
        with pytest.raises(PortFileError) as raised:
            port_file.start([succeed(listening)])
    finally:
        await listening.stopListening()
    assert str(raised.value) == (
        f"cannot write --port-file {str(gone / 'ports')!r}: No such file or directory"
    )


def test_a_clean_exit_leaves_a_successors_port_file(tmp_path: Path) -> None:
    """A restart with the same --port-file: the new process writes the file
    while the old one drains; the old one's exit must not remove it."""

    class Port:
        def __init__(self, port: int) -> None:
            self.port = port

        def getHost(self) -> IPv4Address:
            return IPv4Address("TCP", "127.0.0.1", self.port)

    path = tmp_path / "ports"
    old, new = PortFile(str(path)), PortFile(str(path))
    old.start([succeed(Port(1000))])
    new.start([succeed(Port(2000))])
    old.remove()
    assert path.read_text() == "127.0.0.1:2000\n"
    new.remove()
    assert not path.exists()
