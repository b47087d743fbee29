"""The matchmaker example end to end: N players queue over HTTP with their
tokens, get one reserved lobby and a token for it, and meet there with real
signaling clients; and run as a user runs it, two `webrtc-signal-peer`
processes find their ICE servers beside its signaling URL and chat, while its
access log shows no token."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from webrtc_signal.client import SignalingClient
from webrtc_signal.client.signaling import PeerConnected
from webrtc_signal.server.tokens import make_token

from ..support.http import http_get
from ..support.loopback_ice import IceLog
from ..support.processes import spawn
from ..support.wsclient import with_timeout
from .test_embedding import RecordingEndpoint

EXAMPLE = Path(__file__).parents[2] / "examples" / "matchmaker.py"
SECRET = b"matchmaker-test-secret-32-bytes-long"
PLAYERS = 3
# twisted.web keeps an HTTP/1.1 connection open; the bare GET reads to its end.
CLOSE = "Connection: close\r\n"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("matchmaker", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def queue(port: int, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = Headers({"Authorization": [f"Bearer {token}"]} if token else {})
    response = await with_timeout(
        Agent(reactor).request(b"POST", f"http://127.0.0.1:{port}/queue".encode(), headers), 10
    )
    return response.code, json.loads(await readBody(response))


@pytest.mark.filterwarnings("ignore:Using readBody with a transport")
@pytest_twisted.ensureDeferred
async def test_queued_players_meet_in_one_reserved_lobby() -> None:
    example = load_example()
    endpoint = RecordingEndpoint()
    game = example.make_game_server(endpoint, SECRET, players=PLAYERS)
    game.startService()
    clients: list[SignalingClient] = []
    try:
        port = await with_timeout(endpoint.port, 5)
        assert (await queue(port, None))[0] == 401
        assert (await queue(port, "forged"))[0] == 401

        names = [f"player{i}" for i in range(PLAYERS)]
        waiting = [
            defer.ensureDeferred(queue(port, make_token(SECRET, subject=name))) for name in names
        ]
        answers = await with_timeout(defer.gatherResults(waiting), 10)
        assert {code for code, _ in answers} == {200}
        (lobby,) = {body["lobby"] for _, body in answers}
        # Where clients look for ICE servers: beside the signaling URL, with its token.
        token = answers[0][1]["token"]
        status, headers, body = await http_get(port, f"/ice-servers?token={token}", CLOSE)
        assert (status, json.loads(body)) == (200, {"iceServers": [], "ttl": 0})
        assert headers["content-type"].startswith("application/json")
        assert (await http_get(port, "/ice-servers", CLOSE))[0] == 401
        signaling = game.getServiceNamed("webrtc-signal")
        info = signaling.lobby(lobby)
        assert info is not None and info.reserved

        # The queue's tokens are bound to that lobby: creating is refused.
        intruder = SignalingClient(f"ws://127.0.0.1:{port}/signal", token=answers[0][1]["token"])
        await with_timeout(intruder.connect(), 5)
        with pytest.raises(Exception, match="Not allowed in this lobby"):
            await with_timeout(intruder.join(""), 5)

        everyone_seen: list[defer.Deferred[set[int]]] = []
        for index, (_, body) in enumerate(answers):
            client = SignalingClient(f"ws://127.0.0.1:{port}{body['signal']}", token=body["token"])
            clients.append(client)
            everyone_seen.append(seen_all(client, PLAYERS - 1))
            await with_timeout(client.connect(), 5)
            joined = await with_timeout(client.join(body["lobby"]), 5)
            assert joined.peer_id == 1 if index == 0 else joined.peer_id > 1
        # A mesh: everyone is told about everyone else.
        ids = {client.peer_id for client in clients}
        for client, seen in zip(clients, everyone_seen, strict=True):
            assert await with_timeout(seen, 5) == ids - {client.peer_id}

        info = signaling.lobby(lobby)
        assert info is not None and not info.reserved
        assert sorted(member.identity for member in info.members) == names
        assert info.host is not None and info.host.identity == "player0"
        # Full at PLAYERS (max_lobby_size): nobody else squeezes in.
        late = SignalingClient(
            f"ws://127.0.0.1:{port}/signal", token=make_token(SECRET, subject="late")
        )
        await with_timeout(late.connect(), 5)
        with pytest.raises(Exception, match="Lobby is full"):
            await with_timeout(late.join(lobby), 5)
    finally:
        for client in clients:
            client.close()
        await with_timeout(game.stopService(), 10)


def seen_all(client: SignalingClient, count: int) -> defer.Deferred[set[int]]:
    """Fires with the peers ``client`` was told about, once there are ``count``."""
    done: defer.Deferred[set[int]] = defer.Deferred()
    seen: set[int] = set()

    def listen(event: object) -> None:
        if isinstance(event, PeerConnected):
            seen.add(event.peer_id)
            if len(seen) == count and not done.called:
                done.callback(seen)

    client.add_listener(listen)
    return done


@pytest.mark.filterwarnings("ignore:Using readBody with a transport")
@pytest_twisted.ensureDeferred
async def test_peer_commands_meet_through_the_running_example(
    tmp_path: Path, ice_log: IceLog
) -> None:
    pytest.importorskip("aiortc", reason="webrtc-signal-peer needs aiortc")
    from ..client.test_client import run_cli_module

    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    server = spawn(
        [sys.executable, str(EXAMPLE), str(secret_file), "tcp:0:interface=127.0.0.1", "2"],
        env={"PYTHONUNBUFFERED": "1"},
    )
    peers = []
    try:
        port = int((await server.wait_for_match(r"Site starting on (\d+)")).group(1))
        waiting = [
            defer.ensureDeferred(queue(port, make_token(SECRET, subject=name)))
            for name in ("alice", "bob")
        ]
        answers = await with_timeout(defer.gatherResults(waiting), 30)
        for index, (code, body) in enumerate(answers):
            assert code == 200, body
            url = f"ws://127.0.0.1:{port}{body['signal']}"
            argv = ["--token", body["token"], "--lobby", body["lobby"], "--no-input"]
            hello = ["--send", f"hello from player {index}"]
            peers.append(run_cli_module("webrtc_signal.rtc.cli", url, *argv, *hello))
            # The first to join hosts the reserved lobby.
            await peers[-1].wait_for("joined mesh lobby", timeout=60)
        await peers[1].wait_for("1: hello from player 0", timeout=60)
        await peers[0].wait_for(": hello from player 1", timeout=60)
    finally:
        for process in [*peers, server]:
            if not process.ended.called:
                process.transport.signalProcess("TERM")
    for process in peers:
        assert await process.finished(30) == 0, process.output
        # The server handed out its (empty) list: no 404, no complaint.
        assert "ICE servers: none" in process.output, process.output
        assert "could not fetch" not in process.output
    await server.finished(30)
    log = server.output
    assert 'GET /ice-servers?token=<redacted> HTTP/1.1" 200' in log, log
    for _, body in answers:
        assert body["token"] not in log
    assert "alice joined as host" in log and "bob joined as peer" in log
    ice_log.assert_loopback(at_least=2)
