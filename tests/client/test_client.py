"""The Python signaling client (layer 1) against a real server on 127.0.0.1:
every event, every error path, and the command-line tool."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import defer, endpoints, error, protocol, ssl, task
from twisted.logger import formatEvent, globalLogPublisher

from webrtc_signal import SignalingConfig
from webrtc_signal.client import (
    AnswerReceived,
    CandidateReceived,
    Disconnected,
    Event,
    IdAssigned,
    Joined,
    LobbyJoined,
    LobbySealed,
    OfferReceived,
    PeerConnected,
    PeerDisconnected,
    ProtocolError,
    SignalingClient,
    SignalingClosed,
    parse_candidate_data,
)

from ..conftest import RunningServer, ServerMaker, _reactor, start_server, stop_server
from ..support.certs import make_localhost_certificate
from ..support.processes import Spawned, spawn
from ..support.wsclient import with_timeout


class Recorder:
    """Collects a client's events; `next` waits (bounded) for the next one."""

    def __init__(self, client: SignalingClient) -> None:
        self.events: defer.DeferredQueue[Event] = defer.DeferredQueue()
        client.add_listener(self.events.put)

    async def next(self) -> Event:
        return await with_timeout(self.events.get(), 5)


async def connected(server: RunningServer, **kwargs: Any) -> tuple[SignalingClient, Recorder]:
    client = SignalingClient(server.url, **kwargs)
    recorder = Recorder(client)
    await with_timeout(client.connect(), 5)
    return client, recorder


@pytest_twisted.ensureDeferred
async def test_create_join_relay_seal_and_close(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(seal_timeout=4))
    host, host_events = await connected(server)
    joined = await with_timeout(host.join(), 5)
    assert joined == Joined(joined.lobby, 1, True, frozenset())
    assert await host_events.next() == IdAssigned(1, True)
    assert await host_events.next() == LobbyJoined(joined.lobby)

    guest, guest_events = await connected(server)
    guest_joined = await with_timeout(guest.join(joined.lobby), 5)
    guest_id = guest_joined.peer_id
    assert guest_joined == Joined(joined.lobby, guest_id, True, frozenset({1}))
    assert await guest_events.next() == IdAssigned(guest_id, True)
    assert await guest_events.next() == PeerConnected(1)
    assert await guest_events.next() == LobbyJoined(joined.lobby)
    assert await host_events.next() == PeerConnected(guest_id)
    assert host.peers == {guest_id} and guest.peers == {1}

    guest.send_offer(1, "v=0\r\nan offer ✓")
    assert await host_events.next() == OfferReceived(guest_id, "v=0\r\nan offer ✓")
    host.send_answer(guest_id, "v=0\r\nan answer")
    assert await guest_events.next() == AnswerReceived(1, "v=0\r\nan answer")
    host.send_candidate(guest_id, "0", 0, "candidate:1 1 udp 2122260223 192.0.2.2 5000 typ host")
    assert await guest_events.next() == CandidateReceived(
        1, "0", 0, "candidate:1 1 udp 2122260223 192.0.2.2 5000 typ host"
    )

    host.seal()
    assert await host_events.next() == LobbySealed()
    assert await guest_events.next() == LobbySealed()
    assert host.sealed and guest.sealed
    server.clock.advance(4)
    ended = await with_timeout(guest.closed, 5)
    assert ended == Disconnected(1000, "Seal complete", True)
    assert await guest_events.next() == ended
    assert (await with_timeout(host.closed, 5)).code == 1000
    # Asking again, after the end, answers at once.
    assert (await with_timeout(host.closed, 1)).reason == "Seal complete"


@pytest_twisted.ensureDeferred
async def test_client_server_mode_and_leaving(server: RunningServer) -> None:
    host, host_events = await connected(server)
    joined = await with_timeout(host.join(mesh=False), 5)
    assert (joined.peer_id, joined.mesh) == (1, False)
    a, a_events = await connected(server)
    a_joined = await with_timeout(a.join(joined.lobby, mesh=True), 5)
    assert a_joined.mesh is False  # the lobby's mode, whatever the joiner asks
    b, _ = await connected(server)
    b_joined = await with_timeout(b.join(joined.lobby), 5)
    assert b_joined.peers == frozenset({1})
    assert a.peers == {1}
    await with_timeout(b.close(), 5)
    while (event := await host_events.next()) != PeerDisconnected(b_joined.peer_id):
        pass
    await with_timeout(host.close(), 5)
    ended = await with_timeout(a.closed, 5)
    assert (ended.code, ended.reason) == (4000, "Room host has disconnected")
    assert isinstance(event, PeerDisconnected)


@pytest_twisted.ensureDeferred
async def test_joining_an_unknown_lobby_fails_the_join(server: RunningServer) -> None:
    client, events = await connected(server)
    with pytest.raises(SignalingClosed) as refused:
        await with_timeout(client.join("NoSuchLobby00000"), 5)
    assert refused.value.disconnected == Disconnected(4000, "Lobby does not exists", True)
    assert str(refused.value) == "4000 Lobby does not exists"
    assert await events.next() == refused.value.disconnected


@pytest_twisted.ensureDeferred
async def test_sending_before_connecting_is_an_error_after_closing_a_no_op(
    server: RunningServer,
) -> None:
    client = SignalingClient(server.url)
    assert not client.is_open
    with pytest.raises(RuntimeError, match="not connected"):
        client.seal()
    await with_timeout(client.connect(), 5)
    assert client.is_open
    await with_timeout(client.join(), 5)
    with pytest.raises(RuntimeError, match="already called"):
        client.join()
    assert client.seal() is True
    closing = client.close()
    # The closing handshake has begun: nothing more goes out, and no error.
    assert not client.is_open and client.ended is None
    assert client.send_offer(1, "late") is False
    assert client.send_answer(1, "late") is False
    assert client.send_candidate(1, "0", 0, "candidate:late") is False
    assert client.seal() is False
    again = client.close()  # closing twice: both wait for the same end
    ended = await with_timeout(closing, 5)
    assert ended == await with_timeout(again, 5)
    assert ended.code == 1000 and ended.was_clean
    assert client.send_offer(1, "later") is False
    assert (await with_timeout(client.close(), 1)) == ended


@pytest_twisted.ensureDeferred
async def test_joining_on_a_closing_connection_fails_the_join(server: RunningServer) -> None:
    closing = SignalingClient(server.url)
    await with_timeout(closing.connect(), 5)
    closing.close()
    with pytest.raises(SignalingClosed):
        await with_timeout(closing.join(), 5)  # the end, when it comes, fails it
    ended = SignalingClient(server.url)
    await with_timeout(ended.connect(), 5)
    await with_timeout(ended.close(), 5)
    with pytest.raises(SignalingClosed):
        await with_timeout(ended.join(), 1)  # not even sent: it has ended


class LogCapture:
    """Every log event while in use; ``problems`` are those that carry a
    failure or say an error went unhandled."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> LogCapture:
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc_info: object) -> None:
        globalLogPublisher.removeObserver(self.events.append)

    @property
    def problems(self) -> list[str]:
        found = []
        for event in self.events:
            text = formatEvent(event)
            if "log_failure" in event or "Unhandled" in text or event.get("isError"):
                failure = event.get("log_failure")
                found.append(f"{text}: {failure.getTraceback() if failure else ''}")
        return found


@pytest_twisted.ensureDeferred
async def test_a_server_initiated_close_while_sending_in_a_loop_is_quiet() -> None:
    server = await start_server()
    stopped = False
    try:
        client, _ = await connected(server)
        joined = await with_timeout(client.join(), 5)
        guest, _ = await connected(server)
        guest_id = (await with_timeout(guest.join(joined.lobby), 5)).peer_id
        # The sender loops on the reactor, as a program's load loop would: a
        # send that raised would be logged as an unhandled error.
        states: list[tuple[bool, Disconnected | None, bool]] = []
        done: defer.Deferred[None] = defer.Deferred()

        def send_some() -> None:
            is_open, ended = client.is_open, client.ended
            sent = client.send_offer(guest_id, "v=0") & client.send_candidate(guest_id, "0", 0, "c")
            states.append((is_open, ended, sent))
            if ended is None and len(states) < 100_000:
                _reactor().callLater(0, send_some)
            else:
                done.callback(None)

        with LogCapture() as log:
            _reactor().callLater(0, send_some)
            while len(states) < 3:  # a few sends go through before the close
                await with_timeout(task.deferLater(_reactor(), 0.01, lambda: None), 5)
            stopping = server.service.stopService()
            stopped = True
            await with_timeout(done, 10)
            await with_timeout(stopping, 10)
            gc.collect()  # an unhandled error in a Deferred is logged when it is collected
        assert log.problems == []
        assert client.ended is not None and client.ended.code == 1001
        assert client.ended.reason == "Server shutting down"
        # Open and sending, then (the close frame arrived) closed but not yet
        # ended, sending nothing, then ended: in that order, never back.
        phases = [(is_open, ended is not None) for is_open, ended, _ in states]
        phases = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
        assert phases == [(True, False), (False, False), (False, True)]
        assert all(sent == is_open for is_open, _, sent in states)
    finally:
        if not stopped:
            await stop_server(server)


@pytest_twisted.ensureDeferred
async def test_close_while_connecting_abandons_the_attempt() -> None:
    # A TCP server that never answers the WebSocket handshake.
    accepted: defer.Deferred[None] = defer.Deferred()
    lost: defer.Deferred[None] = defer.Deferred()

    class Silent(protocol.Protocol):
        def connectionMade(self) -> None:
            accepted.callback(None)

        def connectionLost(self, reason: object = None) -> None:
            lost.callback(None)

    port = await endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(Silent)
    )
    try:
        url = f"ws://127.0.0.1:{port.getHost().port}"
        # Closed during the WebSocket handshake: the TCP connection goes too.
        client = SignalingClient(url)
        events = Recorder(client)
        connecting = client.connect()
        await with_timeout(accepted, 5)
        closing = client.close()
        with pytest.raises(SignalingClosed, match="closed before the connection opened"):
            await with_timeout(connecting, 5)
        ended = await with_timeout(closing, 5)
        assert ended == Disconnected(1006, "closed before the connection opened", False)
        assert await events.next() == ended
        await with_timeout(lost, 5)  # not left to the handshake timeout
        assert not client.is_open
        assert client.send_offer(1, "late") is False
        with pytest.raises(SignalingClosed):
            await with_timeout(client.connect(), 1)

        # Closed before TCP even connected: the attempt is cancelled.
        early = SignalingClient(url)
        connecting = early.connect()
        ended = await with_timeout(early.close(), 5)
        assert ended == Disconnected(1006, "closed before the connection opened", False)
        with pytest.raises(SignalingClosed):
            await with_timeout(connecting, 5)

        # Closed before connect() was called.
        never = SignalingClient(url)
        assert (await with_timeout(never.close(), 1)).reason == "never connected"
        with pytest.raises(SignalingClosed):
            await with_timeout(never.connect(), 1)
    finally:
        await port.stopListening()


async def closed_port() -> int:
    """A port nothing listens on: one that was just free."""
    probe = await endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1").listen(
        protocol.Factory()
    )
    port = probe.getHost().port
    await probe.stopListening()
    return port


@pytest_twisted.ensureDeferred
async def test_connecting_nowhere_fails_clearly() -> None:
    client = SignalingClient(f"ws://127.0.0.1:{await closed_port()}")
    with pytest.raises(error.ConnectionRefusedError):
        await with_timeout(client.connect(), 5)
    ended = await with_timeout(client.closed, 5)
    assert ended.code == 1006 and "could not connect" in ended.reason


def test_bad_urls_are_refused_at_once() -> None:
    for url in ("http://example.org", "example.org:9080", "ws://"):
        with pytest.raises(ValueError, match="not a ws:// or wss:// URL"):
            SignalingClient(url)


@pytest_twisted.ensureDeferred
async def test_wss(make_server: ServerMaker, tmp_path: Path) -> None:
    files = make_localhost_certificate(tmp_path)
    description = f"ssl:0:interface=127.0.0.1:privateKey={files.key}:certKey={files.cert}"
    server = await make_server(
        endpoint=endpoints.serverFromString(_reactor(), description), scheme="wss", host="localhost"
    )
    tls = ssl.optionsForClientTLS("localhost", trustRoot=ssl.Certificate.loadPEM(files.cert_pem))
    client, events = await connected(server, tls=tls)
    joined = await with_timeout(client.join(), 5)
    assert joined.peer_id == 1


# -- what a misbehaving server sends -------------------------------------------


class ScriptedServer(WebSocketServerProtocol):
    """Answers any JOIN with the frames the test scripted, then stays open."""

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        for frame, binary in self.factory.script:  # type: ignore[attr-defined]
            self.sendMessage(frame, isBinary=binary)


@pytest_twisted.ensureDeferred
async def test_malformed_server_messages_are_reported_not_raised() -> None:
    script = [
        (b"not json", False),
        (b'{"type": 2, "id": 7, "data": ""}', False),  # a peer before my id
        (b'{"type": 1, "id": 0, "data": "true"}', False),  # id 0 is no peer id
        (b'{"type": 1, "id": 5, "data": "true"}', False),
        (b'{"type": 42, "id": 1, "data": ""}', False),
        (b'{"type": 6, "id": 1, "data": "only\\ntwo"}', False),
        (b'{"type": 6, "id": 1, "data": "\\n0\\nx\\nsdp"}', False),
        (b'{"type": 4, "id": 0, "data": "offer from nobody"}', False),
        (b'{"type": 2, "id": 5, "data": ""}', False),  # myself
        (b'{"type": 2, "id": true, "data": ""}', False),
        (b"\x00\x01", True),
        (b'{"type": 0, "id": 0, "data": "Lobby0123456789AB"}', False),
    ]
    factory = WebSocketServerFactory()
    factory.protocol = ScriptedServer
    factory.script = script  # type: ignore[attr-defined]
    port = await endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1").listen(factory)
    try:
        client = SignalingClient(f"ws://127.0.0.1:{port.getHost().port}")
        events = Recorder(client)
        await with_timeout(client.connect(), 5)
        joined = await with_timeout(client.join(), 5)
        assert joined == Joined("Lobby0123456789AB", 5, True, frozenset())
        seen = []
        while not isinstance(event := await events.next(), LobbyJoined):
            seen.append(event)
        problems = [e.problem for e in seen if isinstance(e, ProtocolError)]
        assert problems == [
            problems[0],
            "a peer announced before my id was given",
            "my id must be a peer id, not 0",
            "unknown message type 42",
            "a candidate has 3 parts (mid, index, sdp), not 2",
            "a candidate's index is an integer, not 'x'",
            "a relayed message from 0, which is no peer",
            "5 cannot be another peer's id",
            problems[8],
            "a binary frame",
        ]
        assert problems[0].startswith("not a signaling message")
        assert problems[8].startswith("not a signaling message")
        assert IdAssigned(5, True) in seen
        await with_timeout(client.close(), 5)
    finally:
        await port.stopListening()


def test_candidate_data_is_read_as_godot_reads_it() -> None:
    assert parse_candidate_data("\n0\n1\ncandidate:x") == ("0", 1, "candidate:x")
    assert parse_candidate_data("audio\n\n0\n\ncandidate:y\n") == ("audio", 0, "candidate:y")
    for bad in ("", "\n0\ncandidate", "\na\nb\nc\nd", "\n0\n1.5\nc"):
        with pytest.raises(ValueError):
            parse_candidate_data(bad)


# -- the command-line tool --------------------------------------------------------


def run_cli_module(module: str, *argv: str) -> Spawned:
    return spawn([sys.executable, "-m", module, *argv], env={"PYTHONUNBUFFERED": "1"})


def run_cli(*argv: str) -> Spawned:
    return run_cli_module("webrtc_signal.client.cli", *argv)


@pytest_twisted.ensureDeferred
async def test_cli_creates_seals_and_exits_0(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(seal_timeout=3))
    cli = run_cli(server.url, "--seal-after", "0")
    await cli.wait_for("lobby sealed")
    server.clock.advance(3)
    assert await cli.finished(20) == 0, cli.output
    lines = cli.output.splitlines()
    assert lines[0] == f"connected to {server.url}"
    assert lines[1] == "my id is 1 (host), mesh lobby"
    assert lines[2].startswith("joined lobby ")
    assert lines[3:] == ["lobby sealed", "disconnected: 1000 Seal complete"]


@pytest_twisted.ensureDeferred
async def test_cli_prints_peers_and_relays_as_they_come(server: RunningServer) -> None:
    host, host_events = await connected(server)
    joined = await with_timeout(host.join(mesh=False), 5)
    cli = run_cli(server.url, "--lobby", joined.lobby, "--no-commands")
    await cli.wait_for("joined lobby")
    while not isinstance(event := await host_events.next(), PeerConnected):
        pass
    guest_id = event.peer_id
    host.send_offer(guest_id, "v=0 an offer")
    await cli.wait_for("offer from 1 (12 characters)")
    host.send_candidate(guest_id, "0", 0, "candidate:1 1 udp 1 192.0.2.2 9 typ host")
    await cli.wait_for("candidate from 1: mid 0, index 0: candidate:1 1 udp 1 192.0.2.2 9 typ host")
    await with_timeout(host.close(), 5)
    assert await cli.finished(20) == 4, cli.output
    assert "client-server lobby" in cli.output
    assert "disconnected: 4000 Room host has disconnected" in cli.output


@pytest_twisted.ensureDeferred
async def test_cli_exit_statuses_for_refusal_and_unreachable(server: RunningServer) -> None:
    refused = run_cli(server.url, "--lobby", "NoSuchLobby00000", "--no-commands")
    assert await refused.finished(20) == 4, refused.output
    assert "disconnected: 4000 Lobby does not exists" in refused.output
    unreachable = run_cli(f"ws://127.0.0.1:{await closed_port()}", "--no-commands")
    assert await unreachable.finished(20) == 3, unreachable.output
    assert "could not connect" in unreachable.output
    usage = run_cli("http://not-websocket")
    assert await usage.finished(20) == 2
    assert "not a ws:// or wss:// URL" in usage.output
