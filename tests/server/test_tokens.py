"""Token auth over real sockets: TokenAuth as hooks, the --token-secret-file
option, the webrtc-signal-token command, and clients passing a token on."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import pytest_twisted
from twisted.python import usage

from webrtc_signal import SignalingConfig, TokenAuth
from webrtc_signal.app import Options
from webrtc_signal.client import SignalingClient
from webrtc_signal.client.cli import parser as client_parser
from webrtc_signal.client.signaling import SignalingClosed, with_token
from webrtc_signal.events import PeerConnected
from webrtc_signal.server.tokens import TokenIdentity, make_token

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import with_timeout
from .test_hooks import raw_status_line, recorder

JOIN, ID, PEER_CONNECT = 0, 1, 2
SECRET = b"a-test-secret-of-thirty-two-bytes!!"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest_twisted.async_yield_fixture
async def server(make_server: ServerMaker, secret_file: Path) -> RunningServer:
    yield await make_server(hooks=TokenAuth.from_file(secret_file))


def token(**claims: object) -> str:
    return make_token(SECRET, **claims)  # type: ignore[arg-type]


async def creates(server: RunningServer, with_: str) -> str:
    host = await server.connect_to(f"/?token={with_}")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)
    return str((await host.expect(JOIN))["data"])


# -- at the upgrade ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_valid_token_connects_and_its_subject_is_the_identity(
    server: RunningServer,
) -> None:
    record = recorder(server)
    lobby = await creates(server, token(subject="alice"))
    connected = record.events[0]
    assert isinstance(connected, PeerConnected)
    assert connected.peer.identity == "alice"
    assert isinstance(connected.peer.identity, TokenIdentity)
    info = server.service.lobby(lobby)
    assert info is not None and info.host is not None and info.host.identity == "alice"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?token=",
        "?token=not-a-jwt",
        "?other=1",
        # Expired a minute ago.
        "?token=" + make_token(SECRET, "late", ttl=10, now=time.time() - 70),
        # Signed with another secret.
        "?token=" + make_token(b"another-secret-of-thirty-two-bytes!", "mallory"),
        # No exp claim.
        "?token=" + jwt.encode({"sub": "forever"}, SECRET, algorithm="HS256"),
        # Another algorithm than HS256.
        "?token=" + jwt.encode({"exp": time.time() + 60}, SECRET * 2, algorithm="HS512"),
        # A lobby claim that is not a string.
        "?token=" + jwt.encode({"exp": time.time() + 60, "lobby": 5}, SECRET, algorithm="HS256"),
    ],
    ids=[
        "no-query",
        "empty",
        "malformed",
        "missing",
        "expired",
        "bad-signature",
        "no-exp",
        "hs512",
        "bad-lobby",
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_or_missing_tokens_get_401_at_the_upgrade(
    server: RunningServer, query: str
) -> None:
    line = await raw_status_line(server, f"/{query}")
    assert line.startswith("HTTP/1.1 401 "), line
    assert server.factory.signaling.peers == {}


# -- at the join ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_token_bound_to_a_lobby_joins_only_that_lobby(server: RunningServer) -> None:
    lobby = await creates(server, token())
    other = await creates(server, token())

    guest = await server.connect_to(f"/?token={token(subject='bob', lobby=lobby)}")
    guest.send(JOIN, 0, lobby)
    await guest.expect(ID)

    wrong = await server.connect_to(f"/?token={token(subject='eve', lobby=lobby)}")
    wrong.send(JOIN, 0, other)
    assert await wrong.wait_closed() == (4000, "Not allowed in this lobby")

    creator = await server.connect_to(f"/?token={token(lobby=lobby)}")
    creator.send(JOIN, 0, "")
    assert await creator.wait_closed() == (4000, "Not allowed in this lobby")


@pytest_twisted.ensureDeferred
async def test_a_create_only_token_creates_and_joins_nothing(server: RunningServer) -> None:
    await creates(server, token(lobby=""))
    lobby = await creates(server, token())
    joiner = await server.connect_to(f"/?token={token(lobby='')}")
    joiner.send(JOIN, 0, lobby)
    assert await joiner.wait_closed() == (4000, "Not allowed in this lobby")


@pytest_twisted.ensureDeferred
async def test_a_bound_token_may_claim_its_reserved_lobby(server: RunningServer) -> None:
    name = server.service.reserve_lobby()
    host = await server.connect_to(f"/?token={token(lobby=name)}")
    host.send(JOIN, 0, name)
    await host.expect(ID, 1, "true")


# -- the Python client ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_python_client_passes_its_token_on(server: RunningServer) -> None:
    client = SignalingClient(server.url, token=token(subject="py"))
    await with_timeout(client.connect(), 5)
    joined = await with_timeout(client.join(), 5)
    assert joined.peer_id == 1
    info = server.service.lobby(joined.lobby)
    assert info is not None and info.host is not None and info.host.identity == "py"
    await with_timeout(client.close(), 5)

    anonymous = SignalingClient(server.url)
    with pytest.raises((SignalingClosed, ConnectionError, Exception)):
        await with_timeout(anonymous.connect(), 5)


def test_with_token_adds_the_query_parameter() -> None:
    assert with_token("ws://h:1", None) == "ws://h:1"
    assert with_token("ws://h:1/", "a.b+c") == "ws://h:1/?token=a.b%2Bc"
    assert with_token("ws://h:1/x?y=1", "t") == "ws://h:1/x?y=1&token=t"
    arguments = client_parser().parse_args(["ws://h:1", "--token", "abc"])
    assert arguments.token == "abc"


# -- TokenAuth itself ----------------------------------------------------------------------


def test_token_auth_mints_what_it_verifies() -> None:
    auth = TokenAuth(SECRET)
    identity = auth.verify(auth.mint("carol", "Lobby1234567890ab", ttl=60))
    assert identity == "carol"
    assert (identity.subject, identity.lobby) == ("carol", "Lobby1234567890ab")
    assert identity.claims["exp"] - time.time() <= 61
    with pytest.raises(ValueError):
        TokenAuth(b"")


# -- the twistd options --------------------------------------------------------------------


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(["--port", "tcp:0:interface=127.0.0.1", *argv])
    return options


def test_token_secret_file_turns_token_auth_on(secret_file: Path) -> None:
    assert parse()["hooks"] is None
    hooks = parse("--token-secret-file", str(secret_file))["hooks"]
    assert isinstance(hooks, TokenAuth)
    assert hooks.verify(token(subject="x")) == "x"


@pytest.mark.parametrize("content", [None, b"", b" \n"])
def test_an_unreadable_or_empty_secret_file_is_a_usage_error(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(usage.UsageError, match=r"^--token-secret-file "):
        parse("--token-secret-file", str(path))


def test_max_lobby_size_option() -> None:
    assert parse()["config"].max_lobby_size == 0
    assert parse("--max-lobby-size", "8")["config"] == SignalingConfig(max_lobby_size=8)
    with pytest.raises(usage.UsageError, match=r"^--max-lobby-size "):
        parse("--max-lobby-size", "-1")
    with pytest.raises(usage.UsageError, match=r"^--max-lobby-size "):
        parse("--max-lobby-size", "lots")


# -- webrtc-signal-token ----------------------------------------------------------------------


def run_token_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webrtc_signal.server.token_cli", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_token_command_prints_a_token_the_server_accepts(secret_file: Path) -> None:
    done = run_token_cli(
        "--secret-file", str(secret_file), "--subject", "op", "--lobby", "", "--ttl", "120"
    )
    assert done.returncode == 0, done.stderr
    identity = TokenAuth(SECRET).verify(done.stdout.strip())
    assert (identity.subject, identity.lobby) == ("op", "")
    assert 110 < identity.claims["exp"] - time.time() <= 121


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--secret-file", "/no/such/file"], "--secret-file: cannot read"),
        (["--secret-file", "EMPTY"], "is empty"),
        (["--secret-file", "SECRET", "--ttl", "soon"], "--ttl"),
        (["--secret-file", "SECRET", "--ttl", "0"], "--ttl"),
        ([], "--secret-file"),
    ],
)
def test_the_token_command_reports_usage_errors(
    tmp_path: Path, secret_file: Path, argv: list[str], message: str
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    argv = [{"EMPTY": str(empty), "SECRET": str(secret_file)}.get(arg, arg) for arg in argv]
    done = run_token_cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
