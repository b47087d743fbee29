"""Unfinished handshakes, over real sockets: one address's connections that
have not completed their upgrade are counted from the TCP accept
(``--max-handshakes-per-address``) and timed (``--handshake-timeout``, on
the server's task.Clock), so one address cannot starve everyone else."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, reactor, task
from twisted.internet.protocol import Factory, Protocol

from webrtc_signal import SignalingConfig
from webrtc_signal.server.admission import HandshakeLimits

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import RawWebSocket, raw_cleanup, upgrade_request
from ..support.wsclient import WAIT, with_timeout

__all__ = ["raw_cleanup"]

ATTACKER, PLAYER = "127.0.0.2", "127.0.0.3"
HANDSHAKES = "Too many unfinished handshakes from your address"
TIMEOUT = "Upgrade not complete in time"


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def handshakes(server: RunningServer) -> HandshakeLimits:
    limits: HandshakeLimits = server.service.port.factory.handshakes  # type: ignore[union-attr]
    return limits


def refused(server: RunningServer, reason: str) -> int:
    return server.engine.traffic.refusals.get((0, reason), 0)


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait (polling the reactor, bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await task.deferLater(reactor, 0.005)


class Quiet(Factory):
    noisy = False


class Held(Protocol):
    """A connection that sends ``data`` (maybe nothing) and records what it
    receives and when it is closed."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data
        self.received = b""
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        if self.data:
            self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object) -> None:
        self.lost.callback(None)


async def open_from(port: int, source: str, protocol: Protocol) -> Any:
    endpoint = endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=WAIT, bindAddress=(source, 0)
    )
    return await with_timeout(endpoint.connect(Quiet.forProtocol(lambda: protocol)), WAIT)


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for thousands of sockets (both ends live in this process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- the target ------------------------------------------------------------------


ATTEMPTS = 5_000
# Attacker connections accepted by the kernel but not yet closed by the
# server, at most (the held ones included): below the listen backlog (50),
# so that the player's connects are never dropped for a full accept queue.
IN_FLIGHT = 40
PLAYERS = 20


async def upgrade_time(port: int) -> float:
    """Seconds from connect to a completed upgrade, from the player's address."""
    started = time.monotonic()
    player = RawWebSocket(upgrade_request(port))
    await open_from(port, PLAYER, player)
    status = await with_timeout(player.answered, WAIT)
    took = time.monotonic() - started
    assert status == 101, player.response_head
    player.transport.loseConnection()
    return took


@pytest.mark.unmeasured
@pytest_twisted.ensureDeferred
async def test_one_address_with_5000_unfinished_connections_starves_nobody(
    make_server: ServerMaker, many_files: None
) -> None:
    server = await make_server()
    port = port_of(server)
    slots = defer.DeferredSemaphore(IN_FLIGHT)
    players: list[defer.Deferred[float]] = []
    for attempt in range(ATTEMPTS):
        await slots.acquire()
        attacker = Held()
        attacker.lost.addBoth(lambda _: slots.release())
        await open_from(port, ATTACKER, attacker)
        if attempt % (ATTEMPTS // PLAYERS) == ATTEMPTS // PLAYERS // 2:
            # A player comes in the middle of the storm.
            players.append(defer.ensureDeferred(upgrade_time(port)))
    times = await with_timeout(defer.gatherResults(players), 60)
    await until(
        lambda: refused(server, HANDSHAKES) == ATTEMPTS - 16, "every attempt over 16 refused"
    )
    # The attacker holds its 16; every other connection was closed at once.
    assert handshakes(server).unfinished[ATTACKER] == 16
    assert len(times) == PLAYERS
    assert max(times) < 1.0, sorted(times)


# -- the limit ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_one_over_the_limit_is_closed_before_anything_is_read(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_handshakes_per_address=2))
    port = port_of(server)
    held = [Held(), Held()]
    for protocol in held:
        await open_from(port, ATTACKER, protocol)
    await until(lambda: handshakes(server).unfinished[ATTACKER] == 2, "two counted")
    # The third sends an oversized request head at once: it is never read
    # (no 431), the connection is just gone.
    third = Held(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20_000)
    await open_from(port, ATTACKER, third)
    await with_timeout(third.lost, WAIT)
    assert third.received == b""
    assert refused(server, HANDSHAKES) == 1
    assert server.engine.traffic.refusals.get((431, "Request Header Fields Too Large")) is None
    # Another address is not affected.
    assert await upgrade_time(port) < WAIT
    assert all(not protocol.lost.called for protocol in held)


@pytest_twisted.ensureDeferred
async def test_a_slot_is_freed_by_a_completed_upgrade_and_by_a_close(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_handshakes_per_address=2))
    port = port_of(server)
    limits = handshakes(server)
    slow = RawWebSocket(b"")
    idle = Held()
    await open_from(port, ATTACKER, slow)
    await open_from(port, ATTACKER, idle)
    await until(lambda: limits.unfinished[ATTACKER] == 2, "two counted")
    # The slow one finishes its upgrade: it is a player now, its slot free.
    slow.transport.write(upgrade_request(port))
    assert await with_timeout(slow.answered, WAIT) == 101
    await until(lambda: limits.unfinished[ATTACKER] == 1, "the upgraded one not counted")
    # The idle one goes away: its slot is free too.
    idle.transport.loseConnection()
    await until(lambda: limits.unfinished[ATTACKER] == 0, "the closed one not counted")
    assert len(limits.unfinished) == 0  # nothing kept per address once it is 0
    for _ in range(2):
        await open_from(port, ATTACKER, Held())
    await until(lambda: limits.unfinished[ATTACKER] == 2, "two new ones counted")
    assert refused(server, HANDSHAKES) == 0


@pytest_twisted.ensureDeferred
async def test_connections_from_a_trusted_proxy_are_not_counted(
    make_server: ServerMaker,
) -> None:
    server = await make_server(
        SignalingConfig(max_handshakes_per_address=2, trust_forwarded_for=("127.0.0.1",))
    )
    port = port_of(server)
    proxied = [Held() for _ in range(6)]
    for protocol in proxied:
        await open_from(port, "127.0.0.1", protocol)
    # A round trip through the server: all six were accepted by now.
    assert await upgrade_time(port) < WAIT
    assert len(handshakes(server).unfinished) == 0
    assert all(not protocol.lost.called for protocol in proxied)
    assert refused(server, HANDSHAKES) == 0


@pytest_twisted.ensureDeferred
async def test_the_limit_is_off_with_0(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_handshakes_per_address=0))
    port = port_of(server)
    idle = [Held() for _ in range(40)]
    for protocol in idle:
        await open_from(port, ATTACKER, protocol)
    assert await upgrade_time(port) < WAIT
    assert all(not protocol.lost.called for protocol in idle)
    assert refused(server, HANDSHAKES) == 0


# -- the timeout, on the server's clock ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_upgrade_not_complete_in_time_is_dropped(make_server: ServerMaker) -> None:
    server = await make_server()  # --handshake-timeout 2.0
    port = port_of(server)
    partial = Held(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    await open_from(port, ATTACKER, partial)
    await until(lambda: handshakes(server).unfinished[ATTACKER] == 1, "counted")
    server.clock.advance(1.9)
    # Still there after a round trip through the server.
    assert await upgrade_time(port) < WAIT
    assert not partial.lost.called
    server.clock.advance(0.1)
    await with_timeout(partial.lost, WAIT)
    assert partial.received == b""  # dropped: no answer
    assert refused(server, TIMEOUT) == 1
    assert handshakes(server).unfinished[ATTACKER] == 0


@pytest_twisted.ensureDeferred
async def test_a_completed_upgrade_is_never_timed_out(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(ping_interval=0, join_timeout=3600))
    port = port_of(server)
    player = RawWebSocket(upgrade_request(port))
    await open_from(port, PLAYER, player)
    assert await with_timeout(player.answered, WAIT) == 101
    server.clock.advance(60)
    player.send_json(0, 0, "")
    assert (await player.next_json())["type"] == 1
    assert refused(server, TIMEOUT) == 0


@pytest_twisted.ensureDeferred
async def test_a_plain_http_request_holds_its_slot_until_the_idle_timeout(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_handshakes_per_address=1))
    port = port_of(server)
    # A request head that promises a body it never sends: the web site
    # waits for it, and the slot stays taken meanwhile.
    waiting = Held(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    await open_from(port, ATTACKER, waiting)
    await until(lambda: handshakes(server).unfinished[ATTACKER] == 1, "counted")
    second = Held()
    await open_from(port, ATTACKER, second)
    await with_timeout(second.lost, WAIT)
    assert refused(server, HANDSHAKES) == 1
    # The site's idle timeout is the handshake timeout, on the same clock.
    server.clock.advance(2.0)
    await with_timeout(waiting.lost, WAIT)
    await until(lambda: handshakes(server).unfinished[ATTACKER] == 0, "the slot is free")
