"""Credentials from GET /ice-servers against a real coturn: coturn's own
client (turnutils_uclient) allocates a relay with them, and is refused with a
wrong secret or an expiry in the past."""

from __future__ import annotations

import json
import shutil
import time

import pytest_twisted

from webrtc_signal import SignalingConfig

from ..conftest import ServerMaker
from ..support.coturn import Coturn, coturn_fixture  # noqa: F401 (the fixture coturn)
from ..support.http import http_get
from ..support.processes import spawn


async def credentials_from(server_port: int) -> tuple[str, str]:
    status, _, body = await http_get(server_port, "/ice-servers")
    assert status == 200
    (turn,) = json.loads(body)["iceServers"]
    return turn["username"], turn["credential"]


def uclient(port: int, username: str, password: str) -> list[str]:
    # -y: two clients relaying to each other; -X: an IPv4 relay; -v: say the
    # relay address. One message each is enough to see an allocation.
    binary = shutil.which("turnutils_uclient") or "/usr/bin/turnutils_uclient"
    return [binary, "-v", "-y", "-X", "-n", "1", "-m", "1", "-p", str(port),
            "-u", username, "-w", password, "127.0.0.1"]  # fmt: skip


async def serve(make_server: ServerMaker, coturn: Coturn, secret: str, now: float) -> int:
    config = SignalingConfig(turn_urls=(coturn.url,), turn_secret=secret, turn_ttl=600)
    server = await make_server(config)
    server.clock.advance(now)
    return int(server.service.port.getHost().port)


@pytest_twisted.ensureDeferred
async def test_coturn_allocates_a_relay_with_our_credentials(
    make_server: ServerMaker,
    coturn: Coturn,
) -> None:
    port = await serve(make_server, coturn, coturn.secret, time.time())
    username, password = await credentials_from(port)
    client = spawn(uclient(coturn.port, username, password))
    line = await client.wait_for("Received relay addr", timeout=10)
    assert "127.0.0.1:" in line
    client.transport.signalProcess("KILL")
    await client.finished(5)
    assert f"user <{username}>: incoming packet ALLOCATE processed, success" in coturn.log()


@pytest_twisted.ensureDeferred
async def test_coturn_refuses_a_wrong_secret(
    make_server: ServerMaker,
    coturn: Coturn,
) -> None:
    port = await serve(make_server, coturn, "not the secret", time.time())
    username, password = await credentials_from(port)
    client = spawn(uclient(coturn.port, username, password))
    assert await client.finished(10) != 0
    assert "Cannot complete Allocation" in client.output
    assert "Received relay addr" not in client.output
    assert f"user <{username}>: incoming packet message processed, error 401" in coturn.log()


@pytest_twisted.ensureDeferred
async def test_coturn_refuses_an_expired_credential(
    make_server: ServerMaker,
    coturn: Coturn,
) -> None:
    # Minted two TTLs ago on the server's clock: expired a TTL ago.
    port = await serve(make_server, coturn, coturn.secret, time.time() - 1200)
    username, password = await credentials_from(port)
    assert int(username.split(":")[0]) < time.time()
    client = spawn(uclient(coturn.port, username, password))
    assert await client.finished(10) != 0
    assert "Cannot complete Allocation" in client.output
    assert f"user <{username}>: incoming packet message processed, error 401" in coturn.log()
