"""The helpers that start coturn and redis-server on a port the test holds:
when another process takes the port in the instant between its release and
the start, the start is retried on a new port instead of failing the test;
and each server counts as ready only once it answers on the protocol the
tests use (STUN over UDP, Redis PING)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import pytest_twisted

from .coturn import Coturn, require_turnserver, start_coturn_on, stop_coturn
from .processes import HeldPort, PortTaken, start_on_a_held_port
from .redis import RedisServer, answers_ping, require_redis_server


class Thief:
    """Takes the ports it is given, as another process on the machine could."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.ports: list[int] = []

    def take(self, port: int, udp: bool = False) -> None:
        kinds = [socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
        for kind in kinds:
            taken = socket.socket(socket.AF_INET, kind)
            taken.bind(("127.0.0.1", port))
            if kind == socket.SOCK_STREAM:
                taken.listen()
            self.sockets.append(taken)
        self.ports.append(port)

    def close(self) -> None:
        for taken in self.sockets:
            taken.close()


def test_a_held_port_is_taken_until_it_is_released() -> None:
    held = HeldPort(udp=True)
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", held.port))
    port = held.release()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as other:
            other.bind(("127.0.0.1", port))


@pytest_twisted.ensureDeferred
async def test_redis_started_on_a_stolen_port_starts_again_on_another(tmp_path: Path) -> None:
    executable = require_redis_server()
    thief = Thief()
    started: list[RedisServer] = []

    async def start(held: HeldPort) -> RedisServer:
        server = RedisServer(executable, held.port, tmp_path)
        if not thief.ports:
            held.release()
            thief.take(held.port)  # in the instant before redis-server binds
        await server.start(held)
        started.append(server)
        return server

    try:
        server = await start_on_a_held_port(start, "redis-server")
        assert server.port != thief.ports[0]
        assert await answers_ping(server.port)
        assert not await answers_ping(thief.ports[0], timeout=0.5)
    finally:
        thief.close()
        for running in started:
            await running.stop()


@pytest_twisted.ensureDeferred
async def test_redis_on_a_port_in_use_says_so() -> None:
    thief = Thief()
    held = HeldPort()
    port = held.release()
    thief.take(port)
    try:
        server = RedisServer(require_redis_server(), port, Path("/tmp"))
        with pytest.raises(PortTaken):
            await server.start()
    finally:
        thief.close()


@pytest_twisted.ensureDeferred
async def test_coturn_whose_udp_port_is_stolen_starts_again_on_another(tmp_path: Path) -> None:
    """coturn opens its TCP listener even when its UDP port is taken (and
    retries UDP forever): only a UDP answer proves it ready."""
    turnserver = require_turnserver()
    thief = Thief()
    started: list[Coturn] = []

    async def start(held: HeldPort) -> Coturn:
        if not thief.ports:
            thief.take(held.release(), udp=True)  # UDP only: TCP stays free
        server = await start_coturn_on(held, turnserver, tmp_path, "secret")
        started.append(server)
        return server

    try:
        server = await start_on_a_held_port(start, "turnserver", udp=True)
        assert server.port != thief.ports[0]
        assert not server.process.ended.called
    finally:
        thief.close()
        for running in started:
            await stop_coturn(running)
