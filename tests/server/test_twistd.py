"""The twistd plugin as a user gets it: the package built as a wheel, installed
(not editable) into a fresh virtual environment, and run as
``twistd -n webrtc-signal`` in a subprocess."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import pytest_twisted

import webrtc_signal

from ..support.http import http_get
from ..support.processes import HeldPort, PortUnavailable, Spawned, spawn, start_on_a_held_port
from ..support.twistd import read_port_file, start_twistd
from ..support.wsclient import connect, host_and_guest

ROOT = Path(__file__).parents[2]
JOIN, ID, PEER_CONNECT, OFFER = 0, 1, 2, 4
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")
# The version as installed: what setup.cfg's ``attr:`` read from the package.
SETUP_VERSION = metadata.version("webrtc-signal")


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
    assert "--seal-timeout must be a number of seconds more than 0" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest_twisted.ensureDeferred
async def test_twistd_serves_a_lobby_and_stops_on_sigterm(fresh_venv: Path) -> None:
    process, (port,) = await start_twistd(
        twistd=str(fresh_venv / "bin" / "twistd"),
        env={"PATH": os.environ.get("PATH", "")},
        inherit_env=False,  # nothing of this checkout's environment
        path=str(fresh_venv),
    )
    try:
        await process.wait_for(f"webrtc-signal {SETUP_VERSION} listening on 127.0.0.1 port {port}")
        url = f"ws://127.0.0.1:{port}"
        host, lobby, guest, guest_id = await host_and_guest(url)
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


def test_the_version_is_written_once_and_installed_from_there() -> None:
    """protocol/version.py holds it; setup.cfg reads it for the metadata."""
    assert SETUP["metadata"]["version"] == "attr: webrtc_signal.protocol.version.VERSION"
    assert webrtc_signal.__version__ == SETUP_VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", SETUP_VERSION), SETUP_VERSION


@pytest.mark.parametrize("argv", [["-n", "webrtc-signal"], ["webrtc-signal"]])
def test_version_option_prints_our_version(fresh_venv: Path, argv: list[str]) -> None:
    result = run_outside_the_checkout(fresh_venv, "twistd", "--pidfile=", *argv, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"webrtc-signal {SETUP_VERSION}\n"


def test_the_wheel_carries_the_license(fresh_venv: Path) -> None:
    (dist_info,) = fresh_venv.glob("lib/python3*/site-packages/webrtc_signal-*.dist-info")
    (license_file,) = dist_info.rglob("LICENSE")
    assert license_file.read_text() == (ROOT / "LICENSE").read_text()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_busy_port_ends_the_foreground_server_with_one_line(
    fresh_venv: Path, busy_port: int
) -> None:
    result = run_outside_the_checkout(
        fresh_venv, "twistd", "-n", "--pidfile=", "webrtc-signal",
        "--port", f"tcp:{busy_port}:interface=127.0.0.1",
    )  # fmt: skip
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    problems = [line for line in output.splitlines() if "webrtc-signal:" in line]
    assert len(problems) == 1, output
    assert problems[0].endswith(
        f"webrtc-signal: cannot listen on tcp:{busy_port}:interface=127.0.0.1: "
        "[Errno 98] Address already in use"
    )


def test_a_busy_port_ends_the_daemon_at_once(
    fresh_venv: Path, busy_port: int, tmp_path: Path
) -> None:
    """Without -n, twistd forks a daemon and waits for its report: a failure
    to listen must reach it, or the command waits forever (bounded here)."""
    pidfile, logfile = tmp_path / "s.pid", tmp_path / "s.log"
    description = f"tcp:{busy_port}:interface=127.0.0.1"
    result = run_outside_the_checkout(
        fresh_venv, "twistd", "--pidfile", str(pidfile), "--logfile", str(logfile),
        "webrtc-signal", "--port", description,
    )  # fmt: skip
    assert result.returncode == 1
    message = f"webrtc-signal: cannot listen on {description}: [Errno 98] Address already in use"
    assert message in result.stderr
    # The daemon reports to the waiting parent first, then logs and removes
    # its pidfile: wait (bounded) for it to finish that.
    deadline = time.monotonic() + 10
    while (message not in logfile.read_text() or pidfile.exists()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert message in logfile.read_text()
    assert "Traceback" not in result.stderr + logfile.read_text()
    # Not a pidfile naming a process that is gone.
    assert not pidfile.exists()


def test_a_port_out_of_range_is_a_usage_error(fresh_venv: Path) -> None:
    result = run_outside_the_checkout(
        fresh_venv, "twistd", "-n", "--pidfile=", "webrtc-signal", "--port", "tcp:99999"
    )
    assert result.returncode == 1
    assert "--port 'tcp:99999' is not usable: port 99999 is out of range (0-65535)" in (
        result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: twistd --uid/--gid drops privileges")
@pytest_twisted.ensureDeferred
async def test_root_opens_a_privileged_port_then_runs_as_nobody() -> None:
    """twistd opens ports in privilegedStartService, as root, then switches
    to --uid/--gid. The checkout's own twistd, as the unprivileged user must
    be able to read the code it runs. The port, below 1024, is held by the
    test until twistd starts. The port file is written as nobody, so in a
    directory of nobody's that nobody can reach (pytest's are root's alone)."""
    ports = Path(tempfile.mkdtemp(prefix="webrtc-signal-nobody-"))
    os.chown(ports, 65534, 65534)

    async def start(held: HeldPort) -> tuple[Spawned, int]:
        port = held.release()
        return await start_twistd(
            "--port", f"tcp:{port}:interface=127.0.0.1",
            twistd_options=["--uid", "65534", "--gid", "65534"],
            directory=ports,
            path="/",
        )  # fmt: skip

    try:
        process, (port,) = await start_on_a_held_port(start, "twistd", numbers=range(1023, 900, -1))
    except PortUnavailable:
        pytest.skip("no free port between 901 and 1023 on 127.0.0.1")
    try:
        await process.wait_for("set uid/gid 65534/65534")
        status = Path(f"/proc/{process.transport.pid}/status").read_text()
        assert re.search(r"^Uid:\s+65534\s+65534\s+65534\s+65534$", status, re.M), status
        assert re.search(r"^Gid:\s+65534\s+65534\s+65534\s+65534$", status, re.M), status
        client = await connect(f"ws://127.0.0.1:{port}")
        client.send(JOIN, 0, "")
        await client.expect(ID, 1, "true")
        await client.expect(JOIN, 0)
    finally:
        if not process.ended.called:
            process.transport.signalProcess(signal.SIGTERM)
    assert await client.wait_closed(10) == (1001, "Server shutting down")
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    shutil.rmtree(ports)


@pytest_twisted.ensureDeferred
async def test_the_images_command_serves_from_the_installed_wheel(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """What the Docker image runs, without Docker: the Dockerfile's CMD,
    ENV (its configuration file, copied from deploy/) and HEALTHCHECK, from a
    venv holding the wheel and its runtime dependencies only (as the image's
    `pip install /wheels/*.whl` does), on a loopback port given as
    `docker run -e WEBRTC_SIGNAL_PORT=...` would give it."""
    import json

    from ..deploy.test_deploy import CONFIG, dockerfile_environment, dockerfile_instructions

    instructions = dict(dockerfile_instructions())
    command = json.loads(instructions["CMD"])
    environment = {**dockerfile_environment(), "WEBRTC_SIGNAL_CONFIG": str(CONFIG)}
    environment["WEBRTC_SIGNAL_PORT"] = "tcp:0:interface=127.0.0.1"
    listed = run_outside_the_checkout(fresh_venv, "python", "-m", "pip", "list")
    for extra in ("pytest", "aiortc", "hypothesis"):
        assert extra not in listed.stdout.lower()
    port_file = tmp_path / "ports"
    process = spawn(
        [str(fresh_venv / "bin" / command[0]), *command[1:], "--port-file", str(port_file)],
        env={"PATH": os.environ.get("PATH", ""), **environment},
        inherit_env=False,
        path=str(fresh_venv),
    )
    try:
        ((_, port),) = await read_port_file(port_file, process)
        health = instructions["HEALTHCHECK"].split("CMD", 1)[1].strip()
        probe = json.loads(health)
        probe = [part.replace(":9080/", f":{port}/") for part in probe]
        checked = await run_to_end([str(fresh_venv / "bin" / probe[0]), *probe[1:]])
        assert checked == 0
        host = await connect(f"ws://127.0.0.1:{port}")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        status, _, body = await http_get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "peers": 1, "lobbies": 1})
        host.dropConnection(abort=True)
    finally:
        if not process.ended.called:
            process.transport.signalProcess(signal.SIGTERM)
    # No lobby left, so the drain ends at once.
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    records = [json.loads(line) for line in process.output.splitlines()]
    assert any(r.get("event_kind") == "lobby created" and r["lobby"] == lobby for r in records)
    assert any(r.get("event_kind") == "drain ended" for r in records)


async def run_to_end(argv: list[str]) -> int:
    """Run ``argv`` to its end without blocking the reactor; its exit status."""
    probe = spawn(argv, env={"PATH": os.environ.get("PATH", "")}, inherit_env=False)
    status = await probe.finished(15)
    assert isinstance(status, int), (status, probe.output)
    return status


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
    process, (port,) = await start_twistd(
        "--token-secret-file", str(secret), "--max-lobby-size", "1",
        twistd=str(fresh_venv / "bin" / "twistd"),
        env={"PATH": os.environ.get("PATH", "")},
        inherit_env=False,
        path=str(fresh_venv),
    )  # fmt: skip
    try:
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
