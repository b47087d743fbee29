"""Webhooks against real twisted.web receivers on loopback: the events a real
server makes arrive signed and shaped as documented; retries, give-ups,
rejections and queue overflow are counted; one lobby's events stay in order
while lobbies are delivered side by side; a hanging receiver does not slow
signaling down."""

from __future__ import annotations

import base64
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import task
from twisted.internet.ssl import Certificate
from twisted.web.client import BrowserLikePolicyForHTTPS

from webrtc_signal import PeerInfo, SignalingConfig, TokenAuth
from webrtc_signal.events import LobbyClosed, LobbyCreated, PeerJoined, PeerLeft
from webrtc_signal.server.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    check_url,
    sign,
    url_label,
    verify,
)

from ..conftest import ServerMaker
from ..support.certs import make_localhost_certificate
from ..support.wsclient import host_and_guest, with_timeout
from .backends_support import Received, RunningReceiver, start_receiver, wait_for

SECRET = b"webhook-secret-for-tests-0123456789"
TOKEN_SECRET = b"token-secret-for-tests-0123456789abcdef"
KEYS = {"id", "type", "time", "node", "lobby", "pool", "peer", "identity", "reason"}
OFFER = 4


@pytest_twisted.async_yield_fixture
async def receivers() -> AsyncIterator[Callable[..., Any]]:
    started: list[RunningReceiver] = []

    async def start(**kwargs: Any) -> RunningReceiver:
        running = await start_receiver(**kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


@pytest_twisted.async_yield_fixture
async def senders() -> AsyncIterator[Callable[..., WebhookSender]]:
    made: list[tuple[WebhookSender, Any]] = []

    def make(urls: list[str], **kwargs: Any) -> WebhookSender:
        kwargs.setdefault("registry", CollectorRegistry())
        sender = WebhookSender(urls, SECRET, **kwargs)
        made.append((sender, kwargs.get("clock")))
        return sender

    yield make
    for sender, clock in made:
        stopping = sender.stop(timeout=1.0)
        if isinstance(clock, task.Clock):
            clock.advance(1.0)
        await with_timeout(stopping, 10)


def sample(sender: WebhookSender, name: str, **labels: str) -> float:
    return sender.registry.get_sample_value(name, labels) or 0.0


async def next_retry(sender: WebhookSender) -> Any:
    """The timer of the retry the (only) URL's failed delivery waits for."""
    retries = sender.destinations[0].retries
    await wait_for(lambda: retries, "a retry scheduled")
    (call,) = retries.values()
    return call


def peer(peer_id: int, lobby: str, identity: object = None) -> PeerInfo:
    return PeerInfo(peer_id, 2, lobby, identity, "127.0.0.1", "json")


def checked(got: Received, clock: task.Clock) -> dict[str, Any]:
    """The event in a delivery, after checking its signature and headers."""
    timestamp = got.headers[TIMESTAMP_HEADER.lower()]
    signature = got.headers[SIGNATURE_HEADER.lower()]
    assert got.method == "POST"
    assert got.headers["content-type"] == "application/json"
    assert verify(SECRET, timestamp, got.body, signature, now=clock.seconds())
    assert not verify(b"another secret", timestamp, got.body, signature, now=clock.seconds())
    event: dict[str, Any] = orjson.loads(got.body)
    assert set(event) == KEYS
    return event


# -- what arrives ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_real_servers_lobby_events_arrive_signed_in_order_over_http_and_https(
    make_server: ServerMaker, receivers: Any, senders: Any, tmp_path: Path
) -> None:
    certificate = make_localhost_certificate(tmp_path)
    plain = await receivers()
    secure = await receivers(tls=(str(certificate.cert), str(certificate.key)))
    trust = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(certificate.cert_pem))
    clock = task.Clock()
    clock.advance(1_700_000_000.25)
    server = await make_server(hooks=TokenAuth(TOKEN_SECRET))
    sender = senders(
        [plain.url, secure.url],
        clock=clock,
        node="node-a",
        registry=server.service.metrics_registry,
        tls_policy=trust,
    )
    server.service.add_observer(sender.observe)
    token = TokenAuth(TOKEN_SECRET).mint
    host = await server.connect_to(f"/?token={token('alice')}")
    host.send(0, 0, "")
    await host.expect(1, 1)
    lobby = (await host.expect(0, 0))["data"]
    guest = await server.connect_to(f"/?token={token('bob')}")
    guest.send(0, 0, lobby)
    guest_id = (await guest.expect(1))["id"]
    await host.expect(2, guest_id)
    guest.sendClose(1000)
    await host.expect(3, guest_id)
    host.send(7)
    await host.expect(7)
    assert server.service.close_lobby(lobby, "Match over")

    expected = [
        ("lobby_created", "alice", None),
        ("peer_joined", "alice", None),
        ("peer_joined", "bob", None),
        ("peer_left", "bob", ""),
        ("lobby_sealed", None, None),
        ("peer_left", "alice", "Match over"),
        ("lobby_closed", None, "Match over"),
    ]
    for receiver in (plain.receiver, secure.receiver):
        events = [checked(await receiver.next(), clock) for _ in expected]
        assert [(e["type"], e["identity"], e["reason"]) for e in events] == expected
        assert {e["lobby"] for e in events} == {lobby}
        assert {e["node"] for e in events} == {"node-a"}
        assert {e["time"] for e in events} == {"2023-11-14T22:13:20.250Z"}
        assert {e["pool"] for e in events} == {None}
        assert events[2]["peer"] == events[3]["peer"] != events[1]["peer"]
        assert events[4]["peer"] is None and events[6]["peer"] is None
    await wait_for(lambda: sender.held() == 0, "every answer read")
    plain_ids = [orjson.loads(got.body)["id"] for got in plain.receiver.received]
    secure_ids = [orjson.loads(got.body)["id"] for got in secure.receiver.received]
    # One id per event, the same for every URL (a receiver dedupes by it).
    assert len(set(plain_ids)) == len(expected) and plain_ids == secure_ids
    registry = server.service.metrics_registry
    for running in (plain, secure):
        delivered = registry.get_sample_value(
            "webrtc_signal_webhook_delivered_total", {"url": url_label(running.url)}
        )
        assert delivered == len(expected)
        count = registry.get_sample_value(
            "webrtc_signal_webhook_delivery_seconds_count", {"url": url_label(running.url)}
        )
        assert count == len(expected)


@pytest_twisted.ensureDeferred
async def test_a_reserved_lobby_with_a_pool_names_it_in_every_event(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    clock = task.Clock()
    sender = senders([running.url], clock=clock)
    sender.observe(LobbyCreated("L1", None, True, pool="ranked-2v2"))
    host = peer(11, "L1", "carol")
    sender.observe(PeerJoined("L1", host, 1))
    sender.observe(PeerLeft("L1", host, "Room host has disconnected"))
    sender.observe(LobbyClosed("L1", "Room host has disconnected"))
    sender.observe(LobbyCreated("L2", None, True))
    arrived = [checked(await running.receiver.next(), clock) for _ in range(5)]
    # L2 goes beside L1's events, not after them: lobbies are independent.
    events = [e for e in arrived if e["lobby"] == "L1"]
    assert [e["pool"] for e in events] == ["ranked-2v2"] * 4
    assert [e["pool"] for e in arrived if e["lobby"] == "L2"] == [None]
    assert events[0]["peer"] is None and events[0]["identity"] is None
    assert (events[1]["peer"], events[1]["identity"]) == (11, "carol")
    # The closed lobby's pool is forgotten: the table holds open lobbies only.
    assert sender._pools == {}


# -- failures ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_retries_with_backoff_while_the_receiver_is_down_then_delivers(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    running.factory.down = True
    clock = task.Clock()
    sender = senders([running.url], clock=clock)
    sender.observe(LobbyCreated("L1", None, True))
    delays = []
    for attempt in range(1, 5):
        await wait_for(lambda n=attempt: running.factory.dropped == n, f"attempt {attempt}")
        call = await next_retry(sender)
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [0.5, 1.0, 2.0, 4.0]
    await wait_for(lambda: running.factory.dropped == 5, "attempt 5")
    running.factory.down = False
    call = await next_retry(sender)
    assert call.getTime() - clock.seconds() == 8.0
    clock.advance(8.0)
    event = checked(await running.receiver.next(), clock)
    assert event["type"] == "lobby_created"
    await wait_for(lambda: sender.held() == 0, "the queue to empty")
    labels = {"url": url_label(running.url)}
    assert sample(sender, "webrtc_signal_webhook_delivered_total", **labels) == 1
    dropped = sample(sender, "webrtc_signal_webhook_dropped_total", **labels, reason="expired")
    assert dropped == 0
    # Queued, retried and delivered over 15.5 s of the clock.
    assert sample(sender, "webrtc_signal_webhook_delivery_seconds_sum", **labels) == 15.5


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_does_not_answer_in_time_is_retried(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    running.receiver.hold = True
    clock = task.Clock()
    sender = senders([running.url], clock=clock, timeout=3.0)
    sender.observe(LobbyCreated("L1", None, True))
    first = await running.receiver.next()
    gone = first.request.notifyFinish()
    clock.advance(3.0)
    # Timed out: the call's connection is closed, and a retry is due.
    with pytest.raises(Exception):  # noqa: B017 (the receiver sees a lost connection)
        await with_timeout(gone, 10)
    call = await next_retry(sender)
    assert call.getTime() - clock.seconds() == 0.5
    running.receiver.hold = False
    clock.advance(0.5)
    again = await running.receiver.next()
    assert again.body == first.body
    await wait_for(lambda: sender.held() == 0, "the queue to empty")
    labels = {"url": url_label(running.url)}
    assert sample(sender, "webrtc_signal_webhook_delivered_total", **labels) == 1


@pytest_twisted.ensureDeferred
async def test_gives_up_after_the_retry_period_counts_it_and_goes_on_with_the_lobby(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    running.receiver.answerer = lambda got: (
        (503, b"{}") if orjson.loads(got.body)["type"] == "lobby_created" else None
    )
    clock = task.Clock()
    sender = senders([running.url], clock=clock)
    sender.observe(LobbyCreated("L1", None, True))
    sender.observe(LobbySealedEvent("L1"))
    attempts_at = []
    for attempt in range(1, 9):
        got = await running.receiver.next()
        attempts_at.append(clock.seconds())
        assert orjson.loads(got.body)["type"] == "lobby_created", attempt
        if attempt < 8:
            call = await next_retry(sender)
            clock.advance(call.getTime() - clock.seconds())
    # 0.5 s doubling, at most 16 s apart, within 60 s of the first attempt.
    assert attempts_at == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 47.5]
    # The next retry would start after 60 s: given up, and the lobby's next
    # event goes at once.
    got = await running.receiver.next()
    assert orjson.loads(got.body)["type"] == "lobby_sealed"
    labels = {"url": url_label(running.url)}
    await wait_for(lambda: sender.held() == 0, "the queue to empty")
    assert sample(sender, "webrtc_signal_webhook_dropped_total", **labels, reason="expired") == 1
    assert sample(sender, "webrtc_signal_webhook_delivered_total", **labels) == 1


def LobbySealedEvent(lobby: str) -> Any:
    from webrtc_signal.events import LobbySealed

    return LobbySealed(lobby, 1)


@pytest_twisted.ensureDeferred
async def test_a_4xx_answer_drops_the_event_without_retrying(receivers: Any, senders: Any) -> None:
    running = await receivers()
    running.receiver.answerer = lambda got: (
        (400, b'{"error":"bad signature"}')
        if orjson.loads(got.body)["type"] == "lobby_created"
        else None
    )
    clock = task.Clock()
    sender = senders([running.url], clock=clock)
    sender.observe(LobbyCreated("L1", None, True))
    sender.observe(LobbyClosed("L1", "Lobby reservation expired"))
    first, second = await running.receiver.next(), await running.receiver.next()
    assert [orjson.loads(got.body)["type"] for got in (first, second)] == [
        "lobby_created",
        "lobby_closed",
    ]
    await wait_for(lambda: sender.held() == 0, "the queue to empty")
    labels = {"url": url_label(running.url)}
    assert sample(sender, "webrtc_signal_webhook_dropped_total", **labels, reason="rejected") == 1
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_a_full_queue_drops_new_events_and_counts_them(receivers: Any, senders: Any) -> None:
    running = await receivers()
    running.receiver.hold = True
    clock = task.Clock()
    sender = senders([running.url], clock=clock, queue_limit=3, concurrency=1)
    for number in range(5):
        sender.observe(LobbyCreated(f"L{number}", None, True))
    labels = {"url": url_label(running.url)}
    assert sample(sender, "webrtc_signal_webhook_dropped_total", **labels, reason="queue_full") == 2
    assert sample(sender, "webrtc_signal_webhook_queued", **labels) == 3
    held = await running.receiver.next()
    running.receiver.hold = False
    running.receiver.answer(held)
    lobbies = [orjson.loads(held.body)["lobby"]]
    lobbies += [orjson.loads((await running.receiver.next()).body)["lobby"] for _ in range(2)]
    assert lobbies == ["L0", "L1", "L2"]
    await wait_for(lambda: sender.held() == 0, "the queue to empty")
    assert sample(sender, "webrtc_signal_webhook_delivered_total", **labels) == 3
    assert sample(sender, "webrtc_signal_webhook_queued", **labels) == 0


@pytest_twisted.ensureDeferred
async def test_one_lobby_in_order_several_lobbies_side_by_side_within_the_limit(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    receiver = running.receiver
    receiver.hold = True
    clock = task.Clock()
    sender = senders([running.url], clock=clock, concurrency=2)
    for lobby, count in (("A", 3), ("B", 2), ("C", 1)):
        sender.observe(LobbyCreated(lobby, None, True))
        for number in range(1, count):
            sender.observe(PeerJoined(lobby, peer(number, lobby), number))
    destination = sender.destinations[0]
    answered: list[Received] = []

    def settled() -> bool:
        # The last answer was read, and every POST begun since has arrived.
        return destination.held == 6 - len(answered) and len(destination.posts) == len(
            receiver.received
        ) - len(answered)

    while len(answered) < 6:
        await wait_for(settled, "the sender to settle")
        in_flight = [got for got in receiver.received if got.held]
        lobbies = [orjson.loads(got.body)["lobby"] for got in in_flight]
        # Never more than the limit, never two of one lobby at once.
        assert 1 <= len(in_flight) <= 2
        assert len(set(lobbies)) == len(lobbies)
        receiver.answer(in_flight[0])
        answered.append(in_flight[0])
    assert len(receiver.received) == 6
    order = [(orjson.loads(got.body)["lobby"], orjson.loads(got.body)["type"]) for got in answered]
    per_lobby = {lobby: [kind for name, kind in order if name == lobby] for lobby in "ABC"}
    assert per_lobby == {
        "A": ["lobby_created", "peer_joined", "peer_joined"],
        "B": ["lobby_created", "peer_joined"],
        "C": ["lobby_created"],
    }
    # C did not wait for all of A: lobbies take turns.
    assert order.index(("C", "lobby_created")) < order.index(("A", "peer_joined"))


@pytest_twisted.ensureDeferred
async def test_stop_waits_a_bounded_time_then_counts_what_is_left(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    running.receiver.hold = True
    clock = task.Clock()
    sender = WebhookSender([running.url], SECRET, clock=clock, registry=CollectorRegistry())
    sender.observe(LobbyCreated("L1", None, True))
    sender.observe(LobbyCreated("L2", None, True))
    await running.receiver.next()
    await running.receiver.next()
    stopping = sender.stop(timeout=5.0)
    sender.observe(LobbyCreated("L3", None, True))  # after stop: not taken
    assert not stopping.called
    clock.advance(5.0)
    await with_timeout(stopping, 10)
    labels = {"url": url_label(running.url)}
    assert sample(sender, "webrtc_signal_webhook_dropped_total", **labels, reason="shutdown") == 2
    assert sender.held() == 0 and clock.getDelayedCalls() == []


# -- signaling is not held up ---------------------------------------------------------


async def relay_latencies(url: str, rounds: int) -> list[float]:
    """Seconds from an OFFER sent to its arrival, one at a time, while each
    round also opens and closes a lobby (events for the webhooks)."""
    host, lobby, guest, guest_id = await host_and_guest(url)
    latencies = []
    for number in range(rounds):
        started = time.perf_counter()
        host.send(OFFER, guest_id, f"sdp {number}")
        await guest.expect(OFFER, 1, f"sdp {number}")
        latencies.append(time.perf_counter() - started)
        churn_host, churn_lobby, churn_guest, _ = await host_and_guest(url)
        churn_host.dropConnection(abort=True)
        churn_guest.dropConnection(abort=True)
    host.dropConnection(abort=True)
    guest.dropConnection(abort=True)
    return latencies


@pytest_twisted.ensureDeferred
async def test_signaling_latency_is_unaffected_while_a_receiver_hangs(
    make_server: ServerMaker, receivers: Any, senders: Any
) -> None:
    rounds = 60
    # Every round creates a lobby from 127.0.0.1: no per-address lobby limits.
    config = SignalingConfig(ping_interval=0, max_lobby_rate=0, max_lobbies_per_address=0)
    baseline_server = await make_server(config)
    baseline = await relay_latencies(baseline_server.url, rounds)

    hanging = await receivers()
    hanging.receiver.hold = True
    server = await make_server(config)
    # The real reactor's clock: timeouts (10 s) would fire in a long run.
    sender = senders([hanging.url], registry=server.service.metrics_registry)
    server.service.add_observer(sender.observe)
    hung = await relay_latencies(server.url, rounds)
    # Every round made events (created, joined, left, closed) that wait.
    assert sender.held() >= rounds * 3
    assert len(hanging.receiver.received) == sender.concurrency

    baseline_median, hung_median = statistics.median(baseline), statistics.median(hung)
    print(
        f"relay latency median: {baseline_median * 1000:.2f} ms without webhooks, "
        f"{hung_median * 1000:.2f} ms with a hanging receiver "
        f"(p90 {sorted(baseline)[rounds * 9 // 10] * 1000:.2f} / "
        f"{sorted(hung)[rounds * 9 // 10] * 1000:.2f} ms; {sender.held()} events held)"
    )
    # Generous: a shared 2-core machine stretches any wall-clock figure, but
    # a delivery that blocked would add its whole timeout (seconds) here.
    assert hung_median < max(5 * baseline_median, 0.05)


# -- the documented receivers ------------------------------------------------------------

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "embedding-hooks.md"


def documented_block(info: str, containing: str) -> str:
    """The fenced ``info`` block of docs/embedding-hooks.md holding ``containing``."""
    blocks = re.findall(rf"^```{info}\n(.*?)^```$", DOCUMENT.read_text(), re.S | re.M)
    (block,) = [block for block in blocks if containing in block]
    return str(block)


@pytest_twisted.ensureDeferred
async def test_the_documented_node_and_python_checks_accept_a_real_delivery_only(
    receivers: Any, senders: Any
) -> None:
    running = await receivers()
    sender = senders([running.url])  # the real clock: the checks compare it with theirs
    sender.observe(LobbyCreated("L1", None, True))
    got = await running.receiver.next()
    timestamp = got.headers[TIMESTAMP_HEADER.lower()]
    signature = got.headers[SIGNATURE_HEADER.lower()]
    forged = got.body.replace(b"lobby_created", b"lobby_closed")
    cases = [
        (timestamp, got.body, signature, True),
        (timestamp, forged, signature, False),
        (
            str(int(timestamp) - 301),
            got.body,
            sign(SECRET, str(int(timestamp) - 301), got.body),
            False,
        ),
        ("", got.body, signature, False),
    ]

    namespace: dict[str, Any] = {}
    exec(documented_block("python", "def verify_webhook"), namespace)
    for ts, body, sig, expected in cases:
        assert namespace["verify_webhook"](SECRET, ts, body, sig) is expected

    node = shutil.which("node")
    assert node is not None, "node is needed for the Node snippet"
    # With node -e, the arguments start at argv[1] (there is no script path).
    script = documented_block("js", "function verifyWebhook") + (
        "const [secret, ts, body, sig] = process.argv.slice(1);\n"
        'console.log(verifyWebhook(secret, ts, Buffer.from(body, "base64"), sig));\n'
    )
    for ts, body, sig, expected in cases:
        ran = subprocess.run(
            [node, "-e", script, SECRET.decode(), ts, base64.b64encode(body).decode(), sig],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert ran.stdout.strip() == str(expected).lower(), (ts, ran.stderr)


# -- pieces -----------------------------------------------------------------------


def test_signature_is_the_hmac_of_timestamp_dot_body_and_verify_checks_the_window() -> None:
    import hashlib
    import hmac

    body = b'{"type":"lobby_created"}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == f"sha256={expected}"
    signature = sign(SECRET, "1700000000", body)
    assert verify(SECRET, "1700000000", body, signature, now=1700000100)
    assert not verify(SECRET, "1700000000", body + b" ", signature, now=1700000100)
    assert not verify(SECRET, "1700000000", body, signature, now=1700000301)
    assert not verify(SECRET, "not a number", body, signature, now=1700000000)


def test_urls_are_checked_and_labelled_without_secrets() -> None:
    assert check_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    for bad in ("ftp://example.com/", "example.com/hook", "http:///nohost"):
        with pytest.raises(ValueError, match="not an http"):
            check_url(bad)
    label = url_label("https://user:pw@hooks.example.com:8443/in?key=secret#frag")
    assert label == "https://hooks.example.com:8443/in"
    assert url_label("http://[::1]:9000/h") == "http://[::1]:9000/h"
    with pytest.raises(ValueError, match="secret is empty"):
        WebhookSender(["http://127.0.0.1/"], b"")
