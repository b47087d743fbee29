"""The backends' options through ``twistd webrtc-signal``, run as a user runs
it, in a subprocess: the admin API on a port of its own behind a bearer
token, webhooks delivered signed to a real twisted.web receiver (the last
ones after the clients are gone), and the auth callback deciding who
connects, alone or together with token auth. Each is turned on from the
command line, the environment or a configuration file."""

from __future__ import annotations

import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest_twisted
import treq

from webrtc_signal.server.tokens import TokenAuth
from webrtc_signal.server.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

from ..support.processes import Spawned, spawn
from ..support.wsclient import connect, with_timeout
from .backends_support import Received, RunningReceiver, start_receiver, upgrade_status

TWISTD = str(Path(sys.executable).parent / "twistd")
JOIN, ID = 0, 1
WAIT = 15.0
ADMIN_TOKEN = "an-admin-token-long-and-random-0123456789"
TOKEN_SECRET = "a-token-secret-for-the-twistd-tests-32b"
WEBHOOK_SECRET = "a-webhook-secret-for-the-twistd-tests"
PORT_LINE = re.compile(
    r"(?:webrtc-signal \S+ listening|serving (?P<what>.+?)) on 127\.0\.0\.1 port (?P<port>\d+)"
)


def start(*argv: str, env: dict[str, str] | None = None) -> Spawned:
    return spawn(
        [TWISTD, "-n", "--pidfile=", "webrtc-signal", "--port", "tcp:0:interface=127.0.0.1",
         *argv],
        env=env,
    )  # fmt: skip


async def ports(process: Spawned, count: int) -> dict[str, int]:
    """The ports the server said it listens on, by what they serve
    ("signal", "the admin API", ...), once ``count`` are known."""
    found: dict[str, int] = {}
    while len(found) < count:
        line = await process.wait_for_match(PORT_LINE.pattern)
        found[line["what"] or "signal"] = int(line["port"])
    return found


async def stop(process: Spawned, signalled: bool = False) -> None:
    """SIGTERM (unless ``signalled`` already), and the end it makes."""
    if not process.ended.called and not signalled:
        process.transport.signalProcess("TERM")
    assert await process.finished(WAIT) == f"signal {signal.SIGTERM}", process.output
    assert "Traceback" not in process.output, process.output


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[RunningReceiver]:
    running = await start_receiver(path="/hook")
    yield running
    await running.stop()


async def call(
    port: int, method: str, path: str, body: object = None, token: str | None = ADMIN_TOKEN
) -> tuple[int, Any]:
    headers = {b"authorization": [f"Bearer {token}".encode()]} if token is not None else {}
    response = await with_timeout(
        treq.request(
            method,
            f"http://127.0.0.1:{port}{path}",
            data=orjson.dumps(body) if body is not None else None,
            headers=headers,
            persistent=False,
        ),
        WAIT,
    )
    content = await with_timeout(treq.content(response), WAIT)
    return response.code, orjson.loads(content)


# -- the admin API ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_admin_api_through_twistd_with_a_token_file(tmp_path: Path) -> None:
    token_file = write(tmp_path, "admin-token", ADMIN_TOKEN + "\n")
    secret = write(tmp_path, "token-secret", TOKEN_SECRET)
    # The admin endpoint from the configuration file, its token from the
    # environment, token auth on the command line.
    config = write(tmp_path, "signal.toml", 'admin = "tcp:0:interface=127.0.0.1"\n')
    process = start(
        "--config", config, "--token-secret-file", secret,
        env={"WEBRTC_SIGNAL_ADMIN_TOKEN_FILE": token_file},
    )  # fmt: skip
    try:
        found = await ports(process, 2)
        admin, signal_port = found["the admin API"], found["signal"]
        assert admin != signal_port
        for token in (None, "wrong", ADMIN_TOKEN[:-1]):
            status, answer = await call(admin, "GET", "/v1/lobbies", token=token)
            assert (status, answer) == (401, {"error": "missing or wrong bearer token"})
        status, reserved = await call(
            admin, "POST", "/v1/lobbies", {"size": 2, "players": ["alice", "bob"]}
        )
        assert status == 201, reserved
        lobby = reserved["name"]
        assert (reserved["members"], reserved["size"]) == (0, 2)
        # The players' join tokens are the server's own: alice's opens the lobby.
        assert TokenAuth(TOKEN_SECRET).verify(reserved["tokens"]["alice"]) == "alice"
        alice = await connect(f"ws://127.0.0.1:{signal_port}/?token={reserved['tokens']['alice']}")
        alice.send(JOIN, 0, lobby)
        await alice.expect(ID, 1, "true")
        await alice.expect(JOIN, 0, lobby)
        status, listed = await call(admin, "GET", f"/v1/lobbies/{lobby}")
        assert status == 200
        assert [(p["identity"], p["address"]) for p in listed["peers"]] == [("alice", "127.0.0.1")]
        status, closed = await call(
            admin, "DELETE", f"/v1/lobbies/{lobby}", {"reason": "Match over"}
        )
        assert (status, closed) == (200, {"name": lobby, "reason": "Match over"})
        assert await alice.wait_closed() == (4000, "Match over")
        status, _ = await call(admin, "GET", f"/v1/lobbies/{lobby}")
        assert status == 404
    finally:
        await stop(process)
    assert ADMIN_TOKEN not in process.output


@pytest_twisted.ensureDeferred
async def test_the_admin_api_stays_up_through_a_drain_and_can_end_it(tmp_path: Path) -> None:
    token_file = write(tmp_path, "admin-token", ADMIN_TOKEN)
    process = start(
        "--admin", "tcp:0:interface=127.0.0.1", "--admin-token-file", token_file,
        "--drain-timeout", "60",
    )  # fmt: skip
    signalled = False
    try:
        found = await ports(process, 2)
        admin, signal_port = found["the admin API"], found["signal"]
        host = await connect(f"ws://127.0.0.1:{signal_port}")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        process.transport.signalProcess("TERM")
        signalled = True
        await process.wait_for("draining")
        # The open lobby goes on, and the operator sees and ends it.
        status, listed = await call(admin, "GET", "/v1/lobbies")
        assert (status, [item["name"] for item in listed["lobbies"]]) == (200, [lobby])
        status, _ = await call(admin, "DELETE", f"/v1/lobbies/{lobby}")
        assert status == 200
        assert await host.wait_closed() == (4000, "Lobby closed by the server")
    finally:
        await stop(process, signalled)


@pytest_twisted.ensureDeferred
async def test_a_busy_admin_port_ends_twistd_with_one_line(tmp_path: Path) -> None:
    token_file = write(tmp_path, "admin-token", ADMIN_TOKEN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        admin = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        process = start("--admin", admin, "--admin-token-file", token_file)
        assert await process.finished(WAIT) == 1, process.output
    assert f"cannot listen on {admin} (--admin): [Errno 98] Address already in use" in (
        process.output
    )
    assert "Traceback" not in process.output


# -- webhooks ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_webhook_reaches_a_real_receiver_signed_and_the_last_after_shutdown(
    tmp_path: Path, receiver: RunningReceiver
) -> None:
    secret = write(tmp_path, "webhook-secret", WEBHOOK_SECRET + "\n")
    process = start(
        env={
            "WEBRTC_SIGNAL_WEBHOOK": receiver.url,
            "WEBRTC_SIGNAL_WEBHOOK_SECRET_FILE": secret,
            "WEBRTC_SIGNAL_WEBHOOK_QUEUE": "100",
        }
    )
    signalled = False
    try:
        port = (await ports(process, 1))["signal"]
        host = await connect(f"ws://127.0.0.1:{port}")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        created = await receiver.receiver.next(WAIT)
        check_signed(created)
        event = orjson.loads(created.body)
        assert (event["type"], event["lobby"], event["node"]) == ("lobby_created", lobby, "")
        # Stopped with a lobby open: its members are closed, and the lobby's
        # end is still delivered before the process exits.
        process.transport.signalProcess("TERM")
        signalled = True
        code, reason = await host.wait_closed()
        while (event := orjson.loads((last := await receiver.receiver.next(WAIT)).body))[
            "type"
        ] != "lobby_closed":
            pass
        check_signed(last)
        assert (event["lobby"], code, event["reason"]) == (lobby, 1001, reason)
    finally:
        await stop(process, signalled)
    events = [orjson.loads(got.body) for got in receiver.receiver.received]
    assert [event["type"] for event in events] == [
        "lobby_created",
        "peer_joined",
        "peer_left",
        "lobby_closed",
    ]
    assert all(event["lobby"] == lobby for event in events)


def check_signed(received: Received) -> None:
    assert received.method == "POST"
    headers = received.headers
    timestamp, signature = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    assert verify(WEBHOOK_SECRET.encode(), timestamp, received.body, signature)
    assert not verify(b"another secret", timestamp, received.body, signature)


# -- the auth callback ---------------------------------------------------------------------


def answer_by_session(got: Received) -> tuple[int, bytes] | None:
    """The backend: session "good" is alice (who may only create a lobby),
    "slow" gets no answer, anything else is refused."""
    session = orjson.loads(got.body)["query"].get("session", [""])[0]
    if session == "good":
        return 200, orjson.dumps({"identity": "alice", "lobby": ""})
    if session == "slow":
        return None
    return 403, orjson.dumps({"error": "Unknown session"})


@pytest_twisted.ensureDeferred
async def test_the_auth_callback_through_twistd_decides_who_connects(
    tmp_path: Path, receiver: RunningReceiver
) -> None:
    receiver.receiver.answerer = answer_by_session
    receiver.receiver.hold = True
    config = write(tmp_path, "signal.toml", f'auth-url = "{receiver.url}"\nauth-timeout = 0.5\n')
    process = start(env={"WEBRTC_SIGNAL_CONFIG": config})
    try:
        port = (await ports(process, 1))["signal"]
        url = f"ws://127.0.0.1:{port}"
        assert await upgrade_status(url, "/?session=bad") == "HTTP/1.1 403 Unknown session"
        asked = orjson.loads(receiver.receiver.received[-1].body)
        assert (asked["address"], asked["query"]) == ("127.0.0.1", {"session": ["bad"]})
        assert (
            await upgrade_status(url, "/?session=slow") == "HTTP/1.1 503 Auth service unavailable"
        )
        alice = await connect(f"{url}/?session=good")
        alice.send(JOIN, 0, "")
        await alice.expect(ID, 1, "true")
        lobby = (await alice.expect(JOIN, 0))["data"]
        # Her answer's lobby claim ("" = create only) holds her to creating.
        again = await connect(f"{url}/?session=good")
        again.send(JOIN, 0, lobby)
        assert await again.wait_closed() == (4000, "Not allowed in this lobby")
    finally:
        await stop(process)


@pytest_twisted.ensureDeferred
async def test_with_token_auth_too_both_must_pass(
    tmp_path: Path, receiver: RunningReceiver
) -> None:
    receiver.receiver.answerer = answer_by_session
    secret = write(tmp_path, "token-secret", TOKEN_SECRET)
    token = TokenAuth(TOKEN_SECRET).mint("bob")
    process = start(
        "--token-secret-file", secret, "--auth-url", receiver.url, "--auth-concurrency", "4"
    )
    try:
        port = (await ports(process, 1))["signal"]
        url = f"ws://127.0.0.1:{port}"
        # A missing token is refused before the backend is asked.
        assert await upgrade_status(url, "/?session=good") == "HTTP/1.1 401 Missing token"
        assert receiver.receiver.received == []
        assert await upgrade_status(url, f"/?session=bad&token={token}") == (
            "HTTP/1.1 403 Unknown session"
        )
        player = await connect(f"{url}/?session=good&token={token}")
        player.send(JOIN, 0, "")
        await player.expect(ID, 1, "true")
        await player.expect(JOIN, 0)
        assert len(receiver.receiver.received) == 2
    finally:
        await stop(process)
