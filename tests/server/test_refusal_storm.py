"""A refusal storm from one address, over real sockets, on the server's
task.Clock: every refusal is counted, but the log gets one line per kind
and then one summary per 10 s; never one line per refusal."""

from __future__ import annotations

import io
from typing import Any

import pytest_twisted
from twisted.internet import endpoints, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel, capturedLogs

from webrtc_signal import SignalingConfig, TokenAuth
from webrtc_signal.server import logs
from webrtc_signal.server.tokens import make_token

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import RawWebSocket, raw_cleanup, upgrade_request
from ..support.wsclient import WAIT, with_timeout

__all__ = ["raw_cleanup"]

SECRET = b"a-test-secret-of-thirty-two-bytes!!"
ATTACKER, NO_TOKEN, IDLER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
JOIN, ID = 0, 1
TOO_MANY = "Too many connections from your address"
HANDSHAKES = "Too many unfinished handshakes from your address"
TIMEOUT = "Upgrade not complete in time"
# The target: a 12 s storm writes at most this much log.
MAX_LINES, MAX_BYTES = 50, 20 * 1024


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def token() -> str:
    return make_token(SECRET, subject="player", ttl=600)


class QuietFactory(Factory):
    # The test's own clients must not add "Starting factory" lines to the
    # log being measured: only the server's lines count.
    noisy = False


async def connect_from(port: int, source: str, protocol: Protocol) -> None:
    endpoint = endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=WAIT, bindAddress=(source, 0)
    )
    await with_timeout(endpoint.connect(QuietFactory.forProtocol(lambda: protocol)), WAIT)


async def status_of(port: int, source: str, request: bytes) -> int:
    """The HTTP status an upgrade ``request`` from ``source`` gets (0: the
    connection was closed without an answer), once the server hung up."""
    client = RawWebSocket(request)
    await connect_from(port, source, client)
    await client.wait_lost()
    return client.status or 0


async def idle_connections(port: int, source: str, count: int) -> None:
    """``count`` TCP connections from ``source`` that send nothing."""
    for _ in range(count):
        await connect_from(port, source, Protocol())


def written(events: list[dict[str, Any]]) -> list[str]:
    """The text lines twistd would write at its default level (info) for
    ``events``, tokens redacted, exactly as the file observer writes them."""
    out = io.StringIO()
    observer = logs.LevelFilter(logs.file_observer(out, "text"), LogLevel.info)
    for event in events:
        observer(event)
    return out.getvalue().splitlines(keepends=True)


async def hosts_from(server: RunningServer, source: str, count: int) -> list[Any]:
    hosts = []
    port = port_of(server)
    for _ in range(count):
        host = RawWebSocket(upgrade_request(port, "", f"/?token={token()}"))
        await connect_from(port, source, host)
        assert await with_timeout(host.answered, WAIT) == 101
        host.send_json(JOIN, 0, "")
        assert (await host.next_json())["type"] == ID
        hosts.append(host)
    return hosts


@pytest_twisted.ensureDeferred
async def test_a_twelve_second_refusal_storm_writes_a_few_lines(make_server: ServerMaker) -> None:
    server = await make_server(
        SignalingConfig(
            max_peers_per_address=2,
            allowed_origins=("https://game.example.com",),
            handshake_timeout=1.0,
            ping_interval=0,
        ),
        hooks=TokenAuth(SECRET),
    )
    port = port_of(server)
    # The attacker holds its two connections: every further upgrade is 429.
    await hosts_from(server, ATTACKER, 2)
    with_token = upgrade_request(port, "", f"/?token={token()}")
    from_attacker = {
        403: upgrade_request(port, "Origin: https://evil.example.com\r\n", f"/?token={token()}"),
        405: with_token.replace(b"GET ", b"HEAD ", 1),
        431: upgrade_request(port, "X-Padding: " + "a" * 17_000 + "\r\n"),
    }
    no_token = upgrade_request(port)
    statuses: list[int] = []
    with capturedLogs() as events:
        for _ in range(12):
            for _ in range(30):
                statuses.append(await status_of(port, ATTACKER, with_token))
            for _ in range(3):
                for request in from_attacker.values():
                    statuses.append(await status_of(port, ATTACKER, request))
                # From an address with no connection yet: the token check answers.
                statuses.append(await status_of(port, NO_TOKEN, no_token))
            # Connections that never send their request: 16 are held (until
            # the handshake timeout drops them), the rest closed at once.
            await idle_connections(port, IDLER, 20)
            server.clock.advance(1)
        # The summaries of the last interval, written by the timer.
        for _ in range(10):
            server.clock.advance(1)
    assert {status: statuses.count(status) for status in set(statuses)} == {
        429: 360,
        403: 36,
        405: 36,
        431: 36,
        401: 36,
    }
    lines = written(events)
    text = "".join(lines)
    assert len(lines) <= MAX_LINES, text
    assert len(text.encode()) <= MAX_BYTES, text
    # One line per kind, then what was held back, by how much.
    assert text.count(f"refused a connection from {ATTACKER}: 429 {TOO_MANY}") == 1
    assert f'suppressed 299 more "{TOO_MANY}" from {ATTACKER} in the last 10 s' in text
    assert f'suppressed 60 more "{TOO_MANY}" from {ATTACKER} in the last 10 s' in text
    for whole, reason, source in [
        (f"refused a connection from {ATTACKER}: 403", "Origin not allowed", ATTACKER),
        (f"refused a connection from {ATTACKER}: 405", "HEAD cannot open a WebSocket", ATTACKER),
        (
            f"refused a connection from {ATTACKER}: 431",
            "Request Header Fields Too Large",
            ATTACKER,
        ),
        (f"connection from {NO_TOKEN} refused: 401", "Missing token", NO_TOKEN),
        (f"closed a connection from {IDLER}:", HANDSHAKES, IDLER),
        (f"closed a connection from {IDLER}:", TIMEOUT, IDLER),
    ]:
        assert text.count(f"{whole} {reason}\n") == 1, reason
        assert f'more "{reason}" from {source} in the last 10 s' in text, reason
    # The metrics counted every single refusal.
    scraped = scrape(server)
    assert scraped[("429", TOO_MANY)] == 360
    assert scraped[("401", "Missing token")] == 36
    assert scraped[("403", "Origin not allowed")] == 36
    assert scraped[("", HANDSHAKES)] == 12 * 4
    assert scraped[("", TIMEOUT)] == 12 * 16


def scrape(server: RunningServer) -> dict[tuple[str, str], float]:
    """Refusals by (code, reason), from the service's Prometheus registry."""
    found = {}
    for family in server.service.metrics_registry.collect():
        if family.name == "webrtc_signal_connections":
            for sample in family.samples:
                if sample.labels.get("outcome") == "refused":
                    found[sample.labels["code"], sample.labels["reason"]] = sample.value
    return found


@pytest_twisted.ensureDeferred
async def test_each_refused_upgrade_gets_exactly_one_info_line(make_server: ServerMaker) -> None:
    server = await make_server(
        SignalingConfig(max_peers_per_address=1, allowed_origins=("https://game.example.com",)),
        hooks=TokenAuth(SECRET),
    )
    port = port_of(server)
    await hosts_from(server, ATTACKER, 1)
    refusals = [
        (429, ATTACKER, upgrade_request(port, "", f"/?token={token()}")),
        (
            403,
            NO_TOKEN,
            upgrade_request(port, "Origin: https://evil.example.com\r\n", f"/?token={token()}"),
        ),
        (401, NO_TOKEN, upgrade_request(port)),
    ]
    for status, source, request in refusals:
        with capturedLogs() as events:
            assert await status_of(port, source, request) == status
        lines = written(events)
        assert len(lines) == 1, lines
        assert f" {status} " in lines[0] and source in lines[0], lines
