"""A real TURN server for the tests: Debian's coturn (``turnserver``) on
127.0.0.1, on a port (UDP and TCP) the test held until the moment it started,
taking TURN REST API credentials made from a
shared secret (``use-auth-secret`` + ``static-auth-secret``), relaying on
127.0.0.1 only, without TLS or its admin CLI, logging verbosely to a file the
tests read. It is ready once it answers a STUN binding request over UDP, the
transport the tests use (coturn opens its TCP listener even when its UDP port
is taken, and keeps trying that one). Stopped after the test.

Without ``turnserver`` the tests that need it are skipped, unless
WEBRTC_SIGNAL_REQUIRE_TURN=1 (CI sets it) makes that a failure.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_twisted
from twisted.internet import defer, protocol

from .processes import (
    HeldPort,
    PortTaken,
    Spawned,
    poll,
    require_program,
    spawn,
    start_on_a_held_port,
)
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


# STUN (RFC 8489): a Binding request, and the success answer's type.
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
MAGIC_COOKIE = 0x2112A442
# What coturn says when its port is taken (it then retries forever).
PORT_TAKEN = "Cannot bind"


class _StunProbe(protocol.DatagramProtocol):
    """Sends STUN binding requests to one port; notes a matching answer."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.transaction = os.urandom(12)
        self.answered = False

    def ask(self) -> bool:
        if not self.answered and self.transport is not None:
            header = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE)
            self.transport.write(header + self.transaction, self.target)
        return self.answered

    def datagramReceived(self, data: bytes, address: object) -> None:
        if len(data) >= 20:
            kind, _, cookie = struct.unpack("!HHI", data[:8])
            if (kind, cookie, data[8:20]) == (BINDING_SUCCESS, MAGIC_COOKIE, self.transaction):
                self.answered = True


async def start_coturn(directory: Path, secret: str = "test-turn-secret") -> Coturn:
    turnserver = require_turnserver()
    return await start_on_a_held_port(
        lambda held: start_coturn_on(held, turnserver, directory, secret), "turnserver", udp=True
    )


async def start_coturn_on(held: HeldPort, turnserver: str, directory: Path, secret: str) -> Coturn:
    """coturn on ``held``'s port, released right before the start; ready
    once it answers over UDP. `PortTaken` if it found the port taken."""
    log_file = directory / "turnserver.log"
    log_file.unlink(missing_ok=True)
    port = held.port
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
    held.release()
    server = Coturn(port, secret, log_file, spawn(argv))
    try:
        await until_serving_udp(server)
    except BaseException:
        await stop_coturn(server)
        raise
    return server


async def until_serving_udp(server: Coturn) -> None:
    """Wait until coturn answers STUN over UDP on its port; `PortTaken` if
    it says it cannot bind."""
    from twisted.internet import reactor

    probe = _StunProbe(server.port)
    listening = reactor.listenUDP(0, probe, interface="127.0.0.1")

    def ready() -> bool:
        if PORT_TAKEN in server.process.output or PORT_TAKEN in server.log():
            raise PortTaken()
        return probe.ask()

    try:
        await poll(ready, f"answering STUN on UDP port {server.port}", process=server.process)
    finally:
        await listening.stopListening()


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
