"""The byte rate limit (``--max-byte-rate`` / ``--max-byte-burst``) over real
sockets, on the server's task.Clock: what one connection can move in N
seconds of the clock is at most rate x N + burst, past it 4000 `Too many
messages`; a flood of 40 connections from 4 addresses moves no more than
their buckets allow; a 16-peer mesh negotiating at once stays well inside
the defaults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.internet import endpoints, reactor, task

from webrtc_signal import SignalingConfig
from webrtc_signal.protocol.limits import MessageRate

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import connect_from
from ..support.wsclient import WAIT, RecordingClient, RecordingClientFactory, with_timeout

JOIN, ID, PEER_CONNECT, OFFER, ANSWER, CANDIDATE = 0, 1, 2, 4, 5, 6
TOO_MANY = (4000, "Too many messages")
RATE, BURST = 65536, 1024 * 1024  # the defaults
SIZE = 60_000  # bytes of each flood message, as sent


def offer_of_size(size: int, destination: int = 1, filler: str = "x") -> str:
    """An OFFER whose JSON text is exactly ``size`` bytes of UTF-8."""
    head = f'{{"type":{OFFER},"id":{destination},"data":"'
    tail = '"}'
    room = size - len(head) - len(tail)
    per_char = len(filler.encode())
    assert room % per_char == 0
    text = head + filler * (room // per_char) + tail
    assert len(text.encode()) == size
    return text


async def until(condition: Callable[[], bool], what: str, timeout: float = 20 * WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await task.deferLater(reactor, 0.005)


def relayed_to(receiver: RecordingClient) -> int:
    """Relayed messages waiting in a raw receiver's inbox."""
    return sum(1 for payload in receiver.inbox.pending if payload.startswith(b'{"type":4'))


async def raw_client_from(url: str, source: str) -> RecordingClient:
    """A raw (unparsed) recording client connected from ``source``."""
    port = int(url.rsplit(":", 1)[1])
    factory = RecordingClientFactory(url, raw=True)
    endpoint = endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, timeout=WAIT, bindAddress=(source, 0)
    )
    await with_timeout(endpoint.connect(factory), WAIT)
    return await with_timeout(factory.opened, WAIT)


async def pair(
    server: RunningServer, source: str, receiving_from: str = "127.0.0.1"
) -> tuple[RecordingClient, RecordingClient]:
    """A lobby of a receiving host (raw) and a guest from ``source``."""
    receiver = await raw_client_from(server.url, receiving_from)
    server.clients.append(receiver)
    receiver.send(JOIN, 0, "")
    await receiver.next()  # ID
    lobby = json.loads(await receiver.next())["data"]
    guest = await connect_from(server.url, source)
    server.clients.append(guest)
    guest.send(JOIN, 0, lobby)
    await guest.expect(ID)
    await guest.expect(PEER_CONNECT, 1)
    await guest.expect(JOIN, 0, lobby)
    await receiver.next()  # PEER_CONNECT of the guest
    return receiver, guest


def test_the_two_buckets_of_a_connection() -> None:
    rate = MessageRate(2, 3, 100, 250, now=10.0)
    # Three messages at once (the message burst), 240 of the 250 bytes.
    assert [rate.take(10.0, 80) for _ in range(4)] == [True, True, True, False]
    # Half a second refills one message and 50 bytes: 60 bytes are there.
    assert rate.take(10.5, 61) is False
    assert rate.take(10.5, 60) is True
    # A refusal spends nothing; idle time refills both to their burst, never beyond.
    assert [rate.take(100.0, 250) for _ in range(2)] == [True, False]
    assert rate.take(100.0, 0) is True
    # A clock going backwards refills nothing.
    assert rate.take(50.0, 1) is False


def test_a_rate_of_0_turns_its_bucket_off() -> None:
    bytes_only = MessageRate(0, 0, 100, 100)
    assert all(bytes_only.take(0.0, 1) for _ in range(100))
    assert bytes_only.take(0.0, 1) is False
    messages_only = MessageRate(1, 5, 0, 0)
    assert all(messages_only.take(0.0, 10**9) for _ in range(5))
    assert messages_only.take(0.0, 0) is False


@pytest_twisted.ensureDeferred
async def test_one_connection_moves_at_most_rate_times_seconds_plus_burst(
    make_server: ServerMaker,
) -> None:
    # The message rate off: this is about bytes.
    server = await make_server(SignalingConfig(max_message_rate=0))
    receiver, flooder = await pair(server, "127.0.0.2")
    offer = offer_of_size(SIZE)
    # The burst: 17 offers (1,020,000 bytes) pass at once.
    for _ in range(17):
        flooder.send_raw(offer)
    await until(lambda: relayed_to(receiver) == 17, "the burst relayed")
    # Then each second of the clock refills 65,536 bytes: one more offer.
    seconds = 5
    for n in range(seconds):
        server.clock.advance(1)
        flooder.send_raw(offer)
        await until(lambda n=n: relayed_to(receiver) == 18 + n, f"second {n + 1}'s offer")
    # The bucket holds 56,256 bytes now: one more offer is one too many.
    flooder.send_raw(offer)
    assert await flooder.wait_closed() == TOO_MANY
    await receiver.round_trip()
    moved = relayed_to(receiver) * SIZE
    assert moved == 22 * SIZE
    assert moved <= RATE * seconds + BURST < moved + SIZE


@pytest_twisted.ensureDeferred
async def test_bytes_are_counted_as_utf8_not_characters(make_server: ServerMaker) -> None:
    server = await make_server(
        SignalingConfig(max_message_rate=0, max_byte_rate=1024, max_byte_burst=64 * 1024)
    )
    receiver, flooder = await pair(server, "127.0.0.2")
    # 40,001 bytes of UTF-8, about 20,000 characters: two are over 64 KiB.
    wide = offer_of_size(40_001, filler="é")
    flooder.send_raw(wide)
    await until(lambda: relayed_to(receiver) == 1, "the first relayed")
    flooder.send_raw(wide)
    assert await flooder.wait_closed() == TOO_MANY


FLOODERS = 40
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
# The receivers' lobbies: ten per address, within the lobby burst of one.
RECEIVERS = ("127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13")
# Each flooder sends this many 60 KB offers per second of the clock (300 KB/s,
# under the message rate of 50/s): it outruns the 64 KiB/s refill.
PER_SECOND = 5
FLOOD_SECONDS = 7


@pytest_twisted.ensureDeferred
async def test_forty_flooders_move_no_more_than_their_buckets_allow(
    make_server: ServerMaker,
) -> None:
    server = await make_server()  # every limit at its default
    pairs = [
        await pair(server, SOURCES[n % len(SOURCES)], RECEIVERS[n % len(RECEIVERS)])
        for n in range(FLOODERS)
    ]
    offer = offer_of_size(SIZE)
    sent = [0] * FLOODERS
    closed_at: dict[int, int] = {}
    for second in range(FLOOD_SECONDS):
        for n, (_, flooder) in enumerate(pairs):
            if n not in closed_at:
                for _ in range(PER_SECOND):
                    flooder.send_raw(offer)
                sent[n] += PER_SECOND

        def settled(n: int) -> bool:
            receiver, flooder = pairs[n]
            return flooder.closed.called or relayed_to(receiver) == sent[n]

        await until(lambda: all(settled(n) for n in range(FLOODERS)), f"second {second}")
        for n, (_, flooder) in enumerate(pairs):
            if flooder.closed.called:
                closed_at.setdefault(n, second)
        server.clock.advance(1)
    # Every flooder hit its bucket, at the same second of the clock.
    assert sorted(set(closed_at.values())) == [4]
    for _, flooder in pairs:
        assert flooder.closed.result == TOO_MANY
    for receiver, _ in pairs:
        await receiver.round_trip()
    moved = [relayed_to(receiver) * SIZE for receiver, _ in pairs]
    allowed = RATE * 4 + BURST  # per connection, after 4 s of the clock
    assert all(allowed - SIZE < each <= allowed for each in moved), moved
    # 40 x 1.26 MB over 4 s, not 830 MB in 7 s; nobody else was closed.
    assert sum(moved) == FLOODERS * 21 * SIZE
    assert all(not receiver.closed.called for receiver, _ in pairs)


# -- the busiest honest client ----------------------------------------------------------


MESH = 16
SDP_SIZE = 4096
CANDIDATES_PER_PEER = 12


def relays(client: RecordingClient) -> int:
    """Relayed messages waiting in a JSON client's inbox (the PEER_CONNECTs
    of later joiners are there too)."""
    return sum(1 for message in client.pending() if message["type"] in (OFFER, ANSWER, CANDIDATE))


def candidate(destination: int, n: int) -> str:
    """A Godot candidate message of ordinary size (about 200 bytes)."""
    line = (
        f"candidate:{842163049 + n} 1 udp 1677729535 203.0.113.{n % 250} {50000 + n} typ srflx "
        f"raddr 192.168.1.{n % 250} rport {50000 + n} generation 0 ufrag EhXv network-cost 999"
    )
    return f'{{"type":{CANDIDATE},"id":{destination},"data":"\\n0\\n0\\n{line}"}}'


def sdp(kind: int, destination: int) -> str:
    text = offer_of_size(SDP_SIZE, destination)
    return text.replace(f'"type":{OFFER}', f'"type":{kind}', 1)


@pytest_twisted.ensureDeferred
async def test_a_16_peer_mesh_negotiating_at_once_stays_inside_the_defaults(
    make_server: ServerMaker,
) -> None:
    server = await make_server()  # every limit at its default
    host, lobby = await server.create(mesh=True)
    peers: list[tuple[RecordingClient, int]] = [(host, 1)]
    for _ in range(MESH - 1):
        peers.append(await server.join(lobby))
    ids = [peer_id for _, peer_id in peers]
    sent_bytes: list[int] = []
    # Everyone at once, with the clock standing still (no refill at all):
    # an offer to each higher id, an answer to each lower one, and a dozen
    # candidates to each.
    for client, own in peers:
        messages = []
        for other in ids:
            if other != own:
                messages.append(sdp(OFFER if other > own else ANSWER, other))
                messages += [candidate(other, n) for n in range(CANDIDATES_PER_PEER)]
        for text in messages:
            client.send_raw(text)
        sent_bytes.append(sum(len(text.encode()) for text in messages))
    per_peer = (MESH - 1) * (1 + CANDIDATES_PER_PEER)
    await until(lambda: all(relays(client) == per_peer for client, _ in peers), "every relay")
    assert all(not client.closed.called for client, _ in peers)
    # The headroom docs/security.md quotes: about 98 KB of a 1 MiB burst.
    assert max(sent_bytes) < BURST / 10
    assert per_peer == 195
