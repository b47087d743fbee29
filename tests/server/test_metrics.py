"""Prometheus metrics over real sockets: a whole life of lobbies, then
``GET /metrics`` read with prometheus_client's own parser, value by value."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.resource import Resource
from twisted.web.server import Site

from webrtc_signal import PeerInfo, Refused, SignalingConfig, SignalingService
from webrtc_signal.app import Options
from webrtc_signal.events import LobbyClosed, LobbyCreated, PeerDisconnected
from webrtc_signal.protocol.core import Lobby
from webrtc_signal.protocol.topology import MESH
from webrtc_signal.server.metrics import (
    CANDIDATE_TYPES,
    LIFETIME_BUCKETS,
    MAX_EXTRA_REASONS,
    MEMBERS_BUCKETS,
    SEAL_BUCKETS,
    TrafficCounts,
)

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get
from ..support.processes import spawn
from ..support.rawws import raw_cleanup, raw_connect, upgrade_request  # noqa: F401 (fixture)
from ..support.twistd import TWISTD, start_twistd
from ..support.wsclient import RecordingClient, host_and_guest, with_timeout

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)

# Real candidate lines (RFC 8839), one per type.
HOST = "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host generation 0"
SRFLX = "candidate:2 1 udp 1686052607 203.0.113.7 61234 typ srflx raddr 192.168.1.20 rport 5000"
PRFLX = "candidate:3 1 udp 1845501695 198.51.100.9 40000 typ prflx raddr 192.168.1.20 rport 5000"
RELAY = "candidate:4 1 udp 41885439 192.0.2.50 3478 typ relay raddr 203.0.113.7 rport 61234"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def godot(line: str) -> str:
    """A candidate as Godot's demo (and ours) carries it."""
    return f"\n0\n0\n{line}"


def browser(line: str) -> str:
    """A candidate as a browser client carrying RTCIceCandidate JSON sends it."""
    return json.dumps({"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0})


def sent_size(type_: int, id_: int, data: str) -> int:
    """Bytes of a relayed message as the server sends it (compact JSON, UTF-8)."""
    message = {"type": type_, "id": id_, "data": data}
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def samples(text: str) -> Samples:
    """Every sample of an exposition, parsed by prometheus_client itself."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def family(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples named ``name``, by their labels."""
    return {labels: v for (sample, labels), v in found.items() if sample == name}


def histogram(
    found: Samples, name: str, observations: list[float], buckets: tuple[float, ...]
) -> None:
    """Assert a histogram holds exactly ``observations``."""
    for bound in (*buckets, float("inf")):
        le = "+Inf" if bound == float("inf") else str(float(bound))
        expected = sum(1 for o in observations if o <= bound)
        assert value(found, f"{name}_bucket", le=le) == expected, (name, le)
    assert value(found, f"{name}_count") == len(observations)
    assert value(found, f"{name}_sum") == pytest.approx(sum(observations))


class _Body(Protocol):
    """Collects a response body (readBody warns about Twisted's own transport)."""

    def __init__(self) -> None:
        self.data = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(self.data)
        else:
            self.done.errback(reason)


async def fetch(url: str) -> tuple[int, str, bytes]:
    """GET ``url`` with Twisted's HTTP client: status, content type, body."""
    response = await with_timeout(Agent(reactor).request(b"GET", url.encode()), 5)
    collector = _Body()
    response.deliverBody(collector)
    body = await with_timeout(collector.done, 5)
    content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode()
    return response.code, content_type, body


@pytest_twisted.async_yield_fixture
async def metrics_site() -> AsyncIterator[Any]:
    """Serve a service's `metrics_resource` at /metrics on a Site of its own."""
    ports: list[Any] = []

    def serve(service: SignalingService) -> str:
        root = Resource()
        root.putChild(b"metrics", service.metrics_resource())
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}/metrics"

    yield serve
    for port in ports:
        await port.stopListening()


async def scrape(url: str) -> Samples:
    status, content_type, body = await fetch(url)
    assert status == 200
    assert content_type.startswith("text/plain")
    return samples(body.decode())


async def settled(server: RunningServer) -> None:
    """Until the server has seen every connection go (bounded)."""
    for _ in range(500):
        if not server.engine.connections and not server.factory.signaling.peers:
            return
        await deferLater(reactor, 0.01)
    raise AssertionError("connections still open")


async def relay(
    sender: RecordingClient, receiver: RecordingClient, type_: int, to: int, as_: int, data: str
) -> int:
    """Relay one message and wait for it; returns its size as sent."""
    sender.send(type_, to, data)
    await receiver.expect(type_, as_, data)
    return sent_size(type_, as_, data)


class DenyOnRequest:
    """Token auth's shape: refuse connections that ask for it."""

    def authenticate(self, request: Any) -> None:
        if "deny" in request.query:
            raise Refused("Log in first", status=401)


@pytest_twisted.ensureDeferred
async def test_a_whole_life_of_lobbies_in_exact_numbers(
    make_server: ServerMaker, metrics_site: Any
) -> None:
    """Lobby A: mesh, offer, answer, a candidate of every type (Godot and
    browser formats, one relay), sealed, closed by the seal timeout. Lobby B:
    reserved, claimed, client-server, one host candidate, sealed, closed:
    sealed without a relay candidate. Lobby C: its host leaves unsealed.
    And two refused connections: at the server's Origin check, and by the
    authenticate hook."""
    config = SignalingConfig(ping_interval=0, allowed_origins=("https://game.example",))
    server = await make_server(config, hooks=DenyOnRequest())
    clock, service = server.clock, server.service
    url = metrics_site(service)
    sizes = {OFFER: 0, ANSWER: 0, CANDIDATE: 0}

    # -- lobby A, created at t=0 --
    host_a, lobby_a = await server.create(mesh=True)
    guest_a, guest_id = await server.join(lobby_a)
    await host_a.expect(PEER_CONNECT, guest_id)
    sizes[OFFER] += await relay(guest_a, host_a, OFFER, 1, guest_id, "v=0\r\ns=café\r\n")
    sizes[ANSWER] += await relay(host_a, guest_a, ANSWER, guest_id, 1, "v=0\r\ns=-\r\n")
    for sender, receiver, to, as_, data in [
        (guest_a, host_a, 1, guest_id, godot(HOST)),
        (host_a, guest_a, guest_id, 1, godot(SRFLX)),
        (guest_a, host_a, 1, guest_id, browser(PRFLX)),
        (host_a, guest_a, guest_id, 1, browser(RELAY)),
        # Godot's end of candidates: no candidate line at all.
        (guest_a, host_a, 1, guest_id, "\n0\n0\n"),
    ]:
        sizes[CANDIDATE] += await relay(sender, receiver, CANDIDATE, to, as_, data)
    clock.advance(3)
    host_a.send(SEAL)
    await host_a.expect(SEAL, 0)
    await guest_a.expect(SEAL, 0)

    # -- lobby B, reserved at t=3 --
    lobby_b = service.reserve_lobby(mesh=False, ttl=100)
    registry = service.metrics_registry
    assert registry.get_sample_value("webrtc_signal_reserved_lobbies") == 1

    middle = await scrape(url)
    assert value(middle, "webrtc_signal_peers") == 2
    assert family(middle, "webrtc_signal_lobbies") == {
        frozenset({("mode", "mesh"), ("sealed", "true")}): 1,
        frozenset({("mode", "mesh"), ("sealed", "false")}): 0,
        frozenset({("mode", "client-server"), ("sealed", "true")}): 0,
        frozenset({("mode", "client-server"), ("sealed", "false")}): 0,
    }
    assert value(middle, "webrtc_signal_reserved_lobbies") == 1
    assert value(middle, "webrtc_signal_lobbies_created_total") == 2
    assert value(middle, "webrtc_signal_lobbies_sealed_total") == 1

    clock.advance(10)  # t=13: lobby A's seal timeout
    for client in (host_a, guest_a):
        assert await client.wait_closed() == (1000, "Seal complete")

    host_b = await server.connect()
    host_b.send(JOIN, 0, lobby_b)
    await host_b.expect(ID, 1, "")
    await host_b.expect(JOIN, 0, lobby_b)
    assert registry.get_sample_value("webrtc_signal_reserved_lobbies") == 0
    assert (
        registry.get_sample_value(
            "webrtc_signal_lobbies", {"mode": "client-server", "sealed": "false"}
        )
        == 1
    )
    guest_b, guest_b_id = await server.join(lobby_b)
    await host_b.expect(PEER_CONNECT, guest_b_id)
    sizes[CANDIDATE] += await relay(guest_b, host_b, CANDIDATE, 1, guest_b_id, godot(HOST))
    clock.advance(1)  # t=14
    host_b.send(SEAL)
    await guest_b.expect(SEAL, 0)
    clock.advance(10)  # t=24
    for client in (host_b, guest_b):
        assert await client.wait_closed() == (1000, "Seal complete")

    # -- lobby C, created at t=24; its host leaves at t=25 --
    host_c, lobby_c = await server.create(mesh=True)
    guest_c, _ = await server.join(lobby_c)
    clock.advance(1)
    host_c.sendClose(1000, "bye")
    assert await guest_c.wait_closed() == (4000, "Room host has disconnected")

    # -- refused: by the server (Origin), by the game server's hook (401) --
    port = int(server.url.rsplit(":", 1)[1])
    bad_origin = await raw_connect(port, headers="Origin: https://evil.example\r\n")
    assert bad_origin.status == 403
    refused = await raw_connect(port, request=upgrade_request(port, path="/?deny=1"))
    assert refused.status == 401
    await host_c.wait_closed()
    await settled(server)

    found = await scrape(url)
    assert value(found, "webrtc_signal_peers") == 0
    assert set(family(found, "webrtc_signal_lobbies").values()) == {0}
    assert value(found, "webrtc_signal_reserved_lobbies") == 0
    assert family(found, "webrtc_signal_connections_total") == {
        # A, B and C: two each.
        frozenset({("outcome", "accepted"), ("code", ""), ("reason", "")}): 6,
        frozenset({("outcome", "refused"), ("code", "403"), ("reason", "Origin not allowed")}): 1,
        frozenset({("outcome", "refused"), ("code", "401"), ("reason", "Log in first")}): 1,
    }
    assert family(found, "webrtc_signal_closes_total") == {
        frozenset({("code", "1000"), ("reason", "Seal complete"), ("by", "server")}): 4,
        frozenset(
            {("code", "4000"), ("reason", "Room host has disconnected"), ("by", "server")}
        ): 1,
        # Host C's own close: its reason ("bye") is not a label.
        frozenset({("code", "1000"), ("reason", ""), ("by", "client")}): 1,
    }
    assert value(found, "webrtc_signal_lobbies_created_total") == 3
    assert value(found, "webrtc_signal_lobbies_sealed_total") == 2
    assert family(found, "webrtc_signal_lobbies_closed_total") == {
        frozenset({("reason", "Seal complete")}): 2,
        frozenset({("reason", "Room host has disconnected")}): 1,
    }
    assert family(found, "webrtc_signal_relayed_messages_total") == {
        frozenset({("type", "offer")}): 1,
        frozenset({("type", "answer")}): 1,
        frozenset({("type", "candidate")}): 6,
    }
    assert family(found, "webrtc_signal_relayed_bytes_total") == {
        frozenset({("type", "offer")}): sizes[OFFER],
        frozenset({("type", "answer")}): sizes[ANSWER],
        frozenset({("type", "candidate")}): sizes[CANDIDATE],
    }
    assert family(found, "webrtc_signal_candidates_total") == {
        frozenset({("candidate_type", "host")}): 2,
        frozenset({("candidate_type", "srflx")}): 1,
        frozenset({("candidate_type", "prflx")}): 1,
        frozenset({("candidate_type", "relay")}): 1,
        frozenset({("candidate_type", "unknown")}): 1,
    }
    # B was sealed and saw no relay candidate; A saw one; C was never sealed.
    assert value(found, "webrtc_signal_lobbies_without_relay_total") == 1
    # Times on the service's clock: A 0 -> 3 -> 13, B 3 -> 14 -> 24, C 24 -> 25.
    histogram(found, "webrtc_signal_lobby_lifetime_seconds", [13, 21, 1], LIFETIME_BUCKETS)
    histogram(found, "webrtc_signal_lobby_seal_seconds", [3, 11], SEAL_BUCKETS)
    histogram(found, "webrtc_signal_lobby_members_at_seal", [2, 2], MEMBERS_BUCKETS)


def refused(registry: CollectorRegistry, code: str, reason: str) -> float | None:
    labels = {"outcome": "refused", "code": code, "reason": reason}
    return registry.get_sample_value("webrtc_signal_connections_total", labels)


@pytest_twisted.ensureDeferred
async def test_refusals_at_the_upgrade_and_at_the_peer_limit_count_by_reason(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_peers=1, max_peers_per_address=1))
    registry = server.service.metrics_registry
    port = int(server.url.rsplit(":", 1)[1])
    await server.connect()
    # The same address again: the per-address limit, at the upgrade.
    assert (await raw_connect(port)).status == 429
    # Another address: through the upgrade, then over the peer limit (an event).
    over = await raw_connect(port, source="127.0.0.2")
    assert over.status == 101
    assert await over.wait_close() == (4000, "Too many peers connected")
    # An opening handshake over 16 KiB.
    huge = upgrade_request(port, "X-Padding: " + "a" * 17000 + "\r\n")
    assert (await raw_connect(port, source="127.0.0.3", request=huge)).status == 431

    assert refused(registry, "429", "Too many connections from your address") == 1
    assert refused(registry, "4000", "Too many peers connected") == 1
    assert refused(registry, "431", "Request Header Fields Too Large") == 1
    accepted = {"outcome": "accepted", "code": "", "reason": ""}
    assert registry.get_sample_value("webrtc_signal_connections_total", accepted) == 1


@pytest_twisted.ensureDeferred
async def test_a_draining_server_counts_the_connections_it_refuses(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(drain_timeout=30))
    registry = server.service.metrics_registry
    port = int(server.url.rsplit(":", 1)[1])
    host, _ = await server.create()
    stopping = server.service.stopService()
    assert (await raw_connect(port)).status == 503
    assert refused(registry, "503", "Server draining") == 1
    host.sendClose(1000)
    await with_timeout(stopping, 5)
    # The lobby closed as its host left: gauges back to zero.
    lobbies = {"mode": "mesh", "sealed": "false"}
    assert registry.get_sample_value("webrtc_signal_lobbies", lobbies) == 0
    assert registry.get_sample_value("webrtc_signal_lobby_lifetime_seconds_count") == 1


def test_reasons_from_hooks_are_capped_and_client_reasons_are_no_label() -> None:
    """A game server may close with any text: past MAX_EXTRA_REASONS
    distinct ones they count as "other"; the close table's never do. A
    client's reason is not recorded, and its code only if RFC 6455 has it."""
    service = SignalingService(clock=Clock())
    observe = service.metrics.observe
    peer = PeerInfo(2, None, None, None, "127.0.0.1")
    for number in range(MAX_EXTRA_REASONS + 10):
        observe(PeerDisconnected(peer, 4000, f"Kicked: reason {number}", by_server=True))
    observe(PeerDisconnected(peer, 4000, "Invalid destination", by_server=True))
    observe(PeerDisconnected(peer, 1001, "going to another lobby", by_server=False))
    observe(PeerDisconnected(peer, 4321, "anything at all", by_server=False))
    observe(LobbyCreated("L" * 16, peer, True))
    observe(LobbyClosed("L" * 16, "Kicked: reason 999"))

    found = samples(generate_latest(service.metrics_registry).decode())
    closes = family(found, "webrtc_signal_closes_total")
    reasons = {dict(labels)["reason"] for labels in closes}
    assert len(reasons) == MAX_EXTRA_REASONS + 3  # + other, the table's, a client's ""
    server_closes = {
        dict(labels)["reason"]: count
        for labels, count in closes.items()
        if dict(labels)["by"] == "server"
    }
    assert server_closes["other"] == 10
    assert server_closes["Invalid destination"] == 1
    assert server_closes["Kicked: reason 0"] == 1
    assert value(found, "webrtc_signal_closes_total", code="1001", reason="", by="client") == 1
    assert value(found, "webrtc_signal_closes_total", code="other", reason="", by="client") == 1
    # The budget is shared: a new text from close_lobby is "other" now too.
    assert family(found, "webrtc_signal_lobbies_closed_total") == {
        frozenset({("reason", "other")}): 1
    }


def test_each_service_has_a_registry_of_its_own_unless_given_one() -> None:
    one, two = SignalingService(clock=Clock()), SignalingService(clock=Clock())
    assert one.metrics_registry is not two.metrics_registry
    assert one.metrics_registry is not REGISTRY
    assert REGISTRY.get_sample_value("webrtc_signal_peers") is None

    registry = CollectorRegistry()
    players = Counter("game_players", "Players of the game.", registry=registry)
    players.inc(3)
    shared = SignalingService(clock=Clock(), metrics_registry=registry)
    assert shared.metrics_registry is registry
    assert registry.get_sample_value("game_players_total") == 3
    assert registry.get_sample_value("webrtc_signal_peers") == 0
    # Two services in one registry would report the same series twice.
    with pytest.raises(ValueError, match="Duplicated"):
        SignalingService(clock=Clock(), metrics_registry=registry)


# -- twistd: --metrics ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_twistd_serves_the_metrics_on_their_own_port() -> None:
    process, (port, metrics_port) = await start_twistd(
        "--no-demo", "--metrics", "tcp:0:interface=127.0.0.1",
        "--seal-timeout", "0.2", "--allowed-origin", "https://game.example",
    )  # fmt: skip
    try:
        await process.wait_for(f"serving metrics at /metrics on 127.0.0.1 port {metrics_port}")
        url = f"ws://127.0.0.1:{port}"
        host, lobby, guest, guest_id = await host_and_guest(url)
        size = await relay(guest, host, OFFER, 1, guest_id, "v=0\r\n")
        await relay(host, guest, CANDIDATE, guest_id, 1, godot(RELAY))
        await relay(guest, host, CANDIDATE, 1, guest_id, godot(HOST))
        host.send(SEAL)
        for client in (host, guest):
            assert await client.wait_closed() == (1000, "Seal complete")
        bad_origin = await raw_connect(port, headers="Origin: https://evil.example\r\n")
        assert bad_origin.status == 403
        # The signaling port has no /metrics: the demo is off, so 426.
        status, _, _ = await http_get(port, "/metrics")
        assert status == 426

        url = f"http://127.0.0.1:{metrics_port}/metrics"
        for _ in range(100):  # until the server has seen both sockets go
            found = await scrape(url)
            if value(found, "webrtc_signal_peers") == 0:
                break
            await deferLater(reactor, 0.05)
        assert value(found, "webrtc_signal_peers") == 0
        assert family(found, "webrtc_signal_connections_total") == {
            frozenset({("outcome", "accepted"), ("code", ""), ("reason", "")}): 2,
            frozenset(
                {("outcome", "refused"), ("code", "403"), ("reason", "Origin not allowed")}
            ): 1,
        }
        assert family(found, "webrtc_signal_closes_total") == {
            frozenset({("code", "1000"), ("reason", "Seal complete"), ("by", "server")}): 2,
        }
        assert value(found, "webrtc_signal_lobbies_created_total") == 1
        assert value(found, "webrtc_signal_lobbies_sealed_total") == 1
        assert family(found, "webrtc_signal_lobbies_closed_total") == {
            frozenset({("reason", "Seal complete")}): 1
        }
        assert value(found, "webrtc_signal_relayed_messages_total", type="offer") == 1
        assert value(found, "webrtc_signal_relayed_bytes_total", type="offer") == size
        assert value(found, "webrtc_signal_relayed_messages_total", type="candidate") == 2
        assert value(found, "webrtc_signal_candidates_total", candidate_type="relay") == 1
        assert value(found, "webrtc_signal_candidates_total", candidate_type="host") == 1
        assert value(found, "webrtc_signal_lobbies_without_relay_total") == 0
        assert value(found, "webrtc_signal_lobby_members_at_seal_sum") == 2
        assert value(found, "webrtc_signal_lobby_seal_seconds_count") == 1
        # Real time here: at least the 0.2 s seal timeout.
        assert value(found, "webrtc_signal_lobby_lifetime_seconds_count") == 1
        assert value(found, "webrtc_signal_lobby_lifetime_seconds_sum") >= 0.2
    finally:
        if not process.ended.called:
            process.transport.signalProcess("TERM")
    assert await process.finished(15) == f"signal {signal.SIGTERM}", process.output
    assert "Traceback" not in process.output


@pytest_twisted.ensureDeferred
async def test_a_busy_metrics_port_ends_twistd_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        metrics = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        process = spawn(
            [TWISTD, "-n", "--pidfile=", "webrtc-signal",
             "--port", "tcp:0:interface=127.0.0.1", "--metrics", metrics],
        )  # fmt: skip
        assert await process.finished(20) == 1, process.output
    assert f"cannot listen on {metrics} (--metrics)" in process.output
    assert "Traceback" not in process.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics", "tcp:abc"], "--metrics 'tcp:abc' is not usable"),
        (["--metrics", "nonsense:9100"], "--metrics 'nonsense:9100' is not usable"),
        (["--metrics", "tcp:99999"], "--metrics 'tcp:99999' is not usable: port 99999 is out"),
        (
            ["--port", "tcp:9080", "--metrics", "tcp:9080:interface=127.0.0.1"],
            "--metrics 'tcp:9080:interface=127.0.0.1' is the signaling port",
        ),
    ],
)
def test_a_bad_metrics_endpoint_is_a_usage_error_naming_the_option(
    argv: list[str], message: str
) -> None:
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(argv)
    assert str(raised.value).startswith(message), str(raised.value)


def test_metrics_are_off_by_default() -> None:
    options = Options()
    options.parseOptions([])
    assert options["metrics_endpoint"] is None


def test_twistd_refuses_a_bad_metrics_endpoint_with_a_usage_error() -> None:
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "webrtc-signal", "--metrics", "tcp:abc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--metrics 'tcp:abc' is not usable" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_without_an_observer_relay_candidates_of_closed_lobbies_are_forgotten() -> None:
    """A bare factory (no service, so no metrics observer) must not keep a
    name for every lobby that ever saw a relay candidate."""
    lobbies: dict[str, Lobby] = {}
    traffic = TrafficCounts(lobbies)
    for number in range(3000):
        lobby = Lobby(f"lobby{number:011d}", host=None, topology=MESH)
        lobbies[lobby.name] = lobby
        traffic.typed_candidate(godot(RELAY), lobby.name)
        if number % 10:
            del lobbies[lobby.name]  # closed; one in ten stays open
    assert len(traffic.relay_lobbies) <= len(lobbies) + 1024 + 1
    assert set(lobbies) <= traffic.relay_lobbies
    assert traffic.candidates[CANDIDATE_TYPES.index("relay")] == 3000
