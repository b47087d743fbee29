"""The twistd plugin as a user gets it: the package built as a wheel, installed
(not editable) into a fresh virtual environment, and run as
``twistd -n webrtc-signal`` in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from ..support.http import http_get
from ..support.processes import spawn
from ..support.wsclient import connect

ROOT = Path(__file__).parents[2]
JOIN, ID, PEER_CONNECT, OFFER = 0, 1, 2, 4


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the built wheel and its dependencies, nothing else."""
    work = tmp_path_factory.mktemp("fresh")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("webrtc_signal-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


def run_outside_the_checkout(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        cwd=venv,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


def test_installed_wheel_is_not_the_checkout(fresh_venv: Path) -> None:
    found = run_outside_the_checkout(
        fresh_venv, "python", "-c", "import webrtc_signal; print(webrtc_signal.__file__)"
    )
    assert found.returncode == 0, found.stderr
    assert str(fresh_venv) in found.stdout


def test_twistd_lists_the_plugin(fresh_venv: Path) -> None:
    listed = run_outside_the_checkout(fresh_venv, "twistd", "--help")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^\s+webrtc-signal\s+WebRTC signaling server", listed.stdout, re.M)


def test_a_bad_option_is_a_usage_error_and_exits_non_zero(fresh_venv: Path) -> None:
    result = run_outside_the_checkout(
        fresh_venv, "twistd", "-n", "--pidfile=", "webrtc-signal", "--seal-timeout", "-1"
    )
    assert result.returncode != 0
    assert "--seal-timeout must be a finite number of seconds >= 0" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest_twisted.ensureDeferred
async def test_twistd_serves_a_lobby_and_stops_on_sigterm(fresh_venv: Path) -> None:
    process = spawn(
        [
            str(fresh_venv / "bin" / "twistd"), "-n", "--pidfile=", "webrtc-signal",
            "--port", "tcp:0:interface=127.0.0.1",
        ],
        env={"PATH": os.environ.get("PATH", "")},
        inherit_env=False,  # nothing of this checkout's environment
        path=str(fresh_venv),
    )  # fmt: skip
    try:
        listening = await process.wait_for_match(
            r"webrtc-signal listening on 127\.0\.0\.1 port (\d+)"
        )
        port = int(listening.group(1))
        url = f"ws://127.0.0.1:{port}"
        host = await connect(url)
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(url)
        guest.send(JOIN, 0, lobby)
        guest_id = (await guest.expect(ID))["id"]
        await guest.expect(PEER_CONNECT, 1)
        await guest.expect(JOIN, 0, lobby)
        await host.expect(PEER_CONNECT, guest_id)
        guest.send(OFFER, 1, "hello from a subprocess test")
        await host.expect(OFFER, guest_id, "hello from a subprocess test")
        # The wheel carries the demo's files, served on the same port.
        status, _, page = await http_get(port, "/")
        assert status == 200 and b"<title>webrtc-signal demo</title>" in page
    finally:
        if not process.ended.called:
            process.transport.signalProcess(signal.SIGTERM)
    assert await host.wait_closed(10) == (1001, "Server shutting down")
    assert await guest.wait_closed(10) == (1001, "Server shutting down")
    # twistd ends itself with the signal it got, so its parent sees SIGTERM.
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    log = process.output
    assert f"created mesh lobby {lobby}" in log
    assert f"peer {guest_id} joined lobby {lobby} (members: 2)" in log
    assert "hello from a subprocess test" not in log  # relays are not logged
    assert "webrtc-signal stopped" in log


@pytest_twisted.ensureDeferred
async def test_twistd_with_token_auth_and_a_lobby_size_limit(
    fresh_venv: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-secret-for-the-twistd-test-32-bytes\n")
    minted = run_outside_the_checkout(
        fresh_venv, "webrtc-signal-token", "--secret-file", str(secret), "--subject", "op"
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    process = spawn(
        [
            str(fresh_venv / "bin" / "twistd"), "-n", "--pidfile=", "webrtc-signal",
            "--port", "tcp:0:interface=127.0.0.1",
            "--token-secret-file", str(secret), "--max-lobby-size", "1",
        ],
        env={"PATH": os.environ.get("PATH", "")},
        inherit_env=False,
        path=str(fresh_venv),
    )  # fmt: skip
    try:
        listening = await process.wait_for_match(
            r"webrtc-signal listening on 127\.0\.0\.1 port (\d+)"
        )
        port = int(listening.group(1))
        upgrade = (
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        )
        status, _, _ = await http_get(port, "/", upgrade)
        assert status == 401
        host = await connect(f"ws://127.0.0.1:{port}/?token={token}")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(f"ws://127.0.0.1:{port}/?token={token}")
        guest.send(JOIN, 0, lobby)
        assert await guest.wait_closed() == (4000, "Lobby is full")
    finally:
        if not process.ended.called:
            process.transport.signalProcess(signal.SIGTERM)
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    assert f"created mesh lobby {lobby}" in process.output
