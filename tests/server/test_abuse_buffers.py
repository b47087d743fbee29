"""Bounded memory per connection, over real sockets: the send buffer limit,
keepalive pongs that must echo their ping, the upgrade request size limit,
no Server header, and what a message that breaks the server gets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.logger import LogLevel, globalLogPublisher

from webrtc_signal import SignalingConfig
from webrtc_signal.server.front import MAX_REQUEST_HEAD as MAX_UPGRADE_REQUEST

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import raw_cleanup, raw_connect, upgrade_request
from ..support.wsclient import with_timeout

__all__ = ["raw_cleanup"]  # a fixture: aborts raw clients after each test

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Every event the server logs under its own namespace during the test."""
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace", "").startswith("webrtc_signal") or event.get("log_failure"):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


async def tick() -> None:
    await task.deferLater(reactor, 0.01, lambda: None)


# -- the send buffer ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_peer_that_stops_reading_is_dropped_and_leaves_its_lobby(
    make_server: ServerMaker, log_events: list[dict[str, Any]]
) -> None:
    # Default send-buffer limit (1 MiB); the message and byte rate limits off
    # so the host can send fast enough to fill the buffers quickly.
    server = await make_server(SignalingConfig(max_message_rate=0, max_byte_rate=0))
    host, lobby = await server.create()
    other, other_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, other_id)
    slow = await raw_connect(port_of(server))
    slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send_json(JOIN, 0, lobby)
    slow_id = (await slow.next_json())["id"]
    await host.expect(PEER_CONNECT, slow_id)
    await other.expect(PEER_CONNECT, slow_id)
    slow.transport.pauseProducing()  # reads nothing more: a hung client

    # The other guest floods the slow one with offers. (What it sends after
    # the drop gets it closed for an invalid destination; that is its business.)
    offer = "x" * 60_000
    gone = None
    # Bounded: the kernel's socket buffers hold a few MB, the limit 1 MiB more.
    for _ in range(60):
        for _ in range(10):
            if other.state == other.STATE_OPEN:
                other.send(OFFER, slow_id, offer)
        # Time passes (the host's round trips are pings, which are rate limited).
        server.clock.advance(0.1)
        await host.round_trip()
        gone = [m["id"] for m in host.pending() if m["type"] == PEER_DISCONNECT]
        if slow_id in gone:
            break
    # Its lobby mates hear it leave like any other; the lobby still relays.
    assert slow_id in gone
    guest, guest_id = await server.join(lobby)
    host.send(CANDIDATE, guest_id, "still here")
    await guest.expect(CANDIDATE, 1, "still here")
    # The server holds nothing for it any more.
    assert all(c.signaling_peer.peer_id != slow_id for c in server.engine.connections)
    warnings = [e for e in log_events if "is not reading" in e.get("log_format", "")]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == LogLevel.warn
    assert warnings[0]["peer_id"] == slow_id
    assert warnings[0]["lobby"] == lobby
    assert warnings[0]["address"].startswith("127.0.0.1:")


@pytest_twisted.ensureDeferred
async def test_the_send_buffer_limit_can_be_turned_off(make_server: ServerMaker) -> None:
    server = await make_server(
        SignalingConfig(max_message_rate=0, max_byte_rate=0, max_send_buffer=0)
    )
    host, lobby = await server.create()
    slow = await raw_connect(port_of(server))
    slow.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send_json(JOIN, 0, lobby)
    slow_id = (await slow.next_json())["id"]
    await host.expect(PEER_CONNECT, slow_id)
    slow.transport.pauseProducing()
    for _ in range(20):
        for _ in range(10):
            host.send(OFFER, slow_id, "x" * 60_000)
        await host.round_trip()
    assert host.pending() == []
    assert len(server.engine.connections) == 2


# -- keepalive --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unsolicited_pongs_do_not_keep_a_silent_peer_alive(server: RunningServer) -> None:
    host, lobby = await server.create()
    mute, mute_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, mute_id)
    mute.answer_pings = False
    interval = server.service.config.ping_interval
    for _ in range(2):
        server.clock.advance(interval)
        # An empty pong, and one with a guessed payload: neither is the answer.
        mute.sendPong(b"")
        mute.sendPong(b"\x00" * 8)
        await host.round_trip()
    await host.expect(PEER_DISCONNECT, mute_id)
    assert mute.pings == 1


@pytest_twisted.ensureDeferred
async def test_keepalive_pings_carry_a_fresh_random_payload(server: RunningServer) -> None:
    client = await server.connect()
    seen: list[bytes] = []
    answer = type(client).onPing

    def record(payload: bytes) -> None:
        seen.append(payload)
        answer(client, payload)

    client.onPing = record  # type: ignore[method-assign]
    client.send(JOIN, 0, "")
    await client.expect(ID)
    for _ in range(3):
        server.clock.advance(server.service.config.ping_interval)
        await client.round_trip()
    assert len(seen) == 3 and len(set(seen)) == 3
    assert all(len(payload) == 8 for payload in seen)
    assert client in [c for c in server.clients]
    assert len(server.engine.connections) == 1


# -- the opening handshake ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_upgrade_request_that_never_ends_gets_431(server: RunningServer) -> None:
    port = port_of(server)
    client = await raw_connect(port, request=upgrade_request(port)[:-2], wait_answer=False)
    for n in range(40):
        client.transport.write(f"X-Filler-{n}: {'y' * 500}\r\n".encode())
        await tick()
        if client.status is not None:
            break
    assert await with_timeout(client.answered, 5) == 431
    await client.wait_lost()
    assert "Server:" not in client.response_head
    # Refused before any slot was taken; the server still serves.
    assert server.engine.connections == {}
    await server.create()


@pytest.mark.parametrize("size", [MAX_UPGRADE_REQUEST - 200, MAX_UPGRADE_REQUEST + 200])
@pytest_twisted.ensureDeferred
async def test_a_complete_upgrade_request_is_read_up_to_16_kib(
    server: RunningServer, size: int
) -> None:
    port = port_of(server)
    base = len(upgrade_request(port))
    filler = "X-Filler: " + "y" * (size - base - len("X-Filler: \r\n")) + "\r\n"
    request = upgrade_request(port, filler)
    assert len(request) == size
    client = await raw_connect(port, request=request)
    assert client.status == (101 if size <= MAX_UPGRADE_REQUEST else 431)


@pytest_twisted.ensureDeferred
async def test_the_end_of_the_headers_is_found_across_writes(server: RunningServer) -> None:
    port = port_of(server)
    request = upgrade_request(port)
    client = await raw_connect(port, request=b"", wait_answer=False)
    # Split inside the final CRLFCRLF, and one byte at a time before it.
    for piece in [
        request[:-30],
        *[request[i : i + 1] for i in range(len(request) - 30, len(request))],
    ]:
        client.transport.write(piece)
        await tick()
    assert await with_timeout(client.answered, 5) == 101


@pytest_twisted.ensureDeferred
async def test_the_upgrade_response_names_no_library(server: RunningServer) -> None:
    client = await raw_connect(port_of(server))
    assert client.status == 101
    assert "server:" not in client.response_head.lower()
    assert "autobahn" not in client.response_head.lower()


# -- messages that break things -----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_5000_digit_line_destination_is_a_format_error_without_traceback(
    server: RunningServer, log_events: list[dict[str, Any]]
) -> None:
    client = await raw_connect(port_of(server))
    client.send("J: \n")
    assert (await client.next_frame())[1].startswith(b"I: ")
    client.send("O: " + "9" * 5000 + "\nsdp")
    assert await client.wait_close() == (4000, "Invalid message format")
    assert not [e for e in log_events if e.get("log_failure") is not None]


@pytest_twisted.ensureDeferred
async def test_json_with_leading_whitespace_speaks_json(server: RunningServer) -> None:
    client = await raw_connect(port_of(server))
    client.send(' \r\n\t{"type": 0, "id": 0, "data": ""}')
    assert await client.next_json() == {"type": ID, "id": 1, "data": "true"}


@pytest_twisted.ensureDeferred
async def test_an_unexpected_error_closes_with_1011_and_is_logged_once_a_minute(
    server: RunningServer, log_events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, lobby = await server.create()
    core = server.factory.signaling
    receive = core.receive

    # A fault injected into the core: the real one has no such bug left to find.
    def broken(peer: Any, message: Any, now: float = 0.0) -> Any:
        if getattr(message, "data", None) == "boom":
            raise RuntimeError("boom")
        return receive(peer, message, now)

    monkeypatch.setattr(core, "receive", broken)

    async def blow_up() -> tuple[int | None, str | None]:
        guest, _ = await server.join(lobby)
        guest.send(CANDIDATE, 1, "boom")
        return await guest.wait_closed()

    for _ in range(3):
        assert await blow_up() == (1011, "Internal server error")
    failures = [e for e in log_events if e.get("log_failure") is not None]
    assert len(failures) == 1
    assert failures[0]["log_failure"].check(RuntimeError)
    server.clock.advance(60)
    assert await blow_up() == (1011, "Internal server error")
    failures = [e for e in log_events if e.get("log_failure") is not None]
    assert len(failures) == 2
    assert failures[1]["suppressed"] == 2
    # The lobby lived through all of it.
    guest, guest_id = await server.join(lobby)
    host.send(OFFER, guest_id, json.dumps({"sdp": "ok"}))
    await guest.expect(OFFER, 1)
