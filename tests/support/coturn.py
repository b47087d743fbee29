"""A real TURN server for the tests: Debian's coturn (``turnserver``) on
127.0.0.1 with a random port, taking TURN REST API credentials made from a
shared secret (``use-auth-secret`` + ``static-auth-secret``), relaying on
127.0.0.1 only, without TLS or its admin CLI, logging verbosely to a file the
tests read. Stopped after the test.

Without ``turnserver`` the tests that need it are skipped, unless
WEBRTC_SIGNAL_REQUIRE_TURN=1 (CI sets it) makes that a failure.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_twisted
from twisted.internet import defer

from .processes import Spawned, require_program, spawn, until_listening
from .wsclient import with_timeout

REALM = "webrtc-signal.test"


@dataclass
class Coturn:
    port: int
    secret: str
    log_file: Path
    process: Spawned

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def require_turnserver() -> str:
    return require_program(
        "turnserver",
        "apt-get install coturn, or make turn",
        "WEBRTC_SIGNAL_REQUIRE_TURN",
        "TURN test",
    )


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


async def start_coturn(directory: Path, secret: str = "test-turn-secret") -> Coturn:
    turnserver = require_turnserver()
    port = free_port()
    log_file = directory / "turnserver.log"
    argv = [
        turnserver,
        "-n",  # no configuration file: everything is here
        "--verbose",  # logs each allocation, which the tests look for
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        # Both peers relay to 127.0.0.1 here; coturn refuses loopback peers
        # by default (a guard for production servers, not for a test).
        "--allow-loopback-peers",
        f"--log-file={log_file}",
        "--simple-log",
        "--no-stdout-log",
        f"--pidfile={directory / 'turnserver.pid'}",
        f"--db={directory / 'turndb'}",
    ]
    process = spawn(argv)
    server = Coturn(port, secret, log_file, process)
    try:
        await until_listening(port, process, "turnserver")
    except BaseException:
        await stop_coturn(server)
        raise
    return server


async def stop_coturn(server: Coturn) -> None:
    if server.process.ended.called:
        return
    server.process.transport.signalProcess("TERM")
    try:
        await with_timeout(server.process.ended, 5)
    except defer.TimeoutError:
        server.process.transport.signalProcess("KILL")
        await with_timeout(server.process.ended, 5)


@pytest_twisted.async_yield_fixture(name="coturn")
async def coturn_fixture(tmp_path: Path) -> AsyncIterator[Coturn]:
    """A running coturn for one test, as the fixture ``coturn`` (import
    ``coturn_fixture`` into the test module)."""
    server = await start_coturn(tmp_path)
    try:
        yield server
    finally:
        await stop_coturn(server)
