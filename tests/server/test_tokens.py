"""Token auth over real sockets: TokenAuth as hooks, the --token-secret-file
option, the webrtc-signal-token command, and clients passing a token on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jwt
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.logger import capturedLogs
from twisted.python import usage

from webrtc_signal import Refused, SignalingConfig, TokenAuth
from webrtc_signal.app import Options
from webrtc_signal.client import SignalingClient
from webrtc_signal.client.cli import parser as client_parser
from webrtc_signal.client.signaling import SignalingClosed, with_token
from webrtc_signal.events import PeerConnected
from webrtc_signal.server import token_cli
from webrtc_signal.server.tokens import (
    TokenIdentity,
    UsedTokenMap,
    UsedTokensUnavailable,
    make_token,
)

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get
from ..support.processes import Ran, run_main
from ..support.wsclient import with_timeout
from .test_hooks import port_of, raw_status_line, recorder, upgrade

JOIN, ID, PEER_CONNECT = 0, 1, 2
SECRET = b"a-test-secret-of-thirty-two-bytes!!"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest_twisted.async_yield_fixture
async def server(make_server: ServerMaker, secret_file: Path) -> AsyncIterator[RunningServer]:
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


# -- the time claims, on an injected clock ------------------------------------------------

# The tokens' clock: a real-looking time, so that the claims are real epochs.
NOW = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def token_clock() -> task.Clock:
    clock = task.Clock()
    clock.advance(NOW)
    return clock


@pytest_twisted.async_yield_fixture
async def clocked(
    make_server: ServerMaker, token_clock: task.Clock
) -> AsyncIterator[RunningServer]:
    """A server whose TokenAuth reads the time from ``token_clock``."""
    yield await make_server(hooks=TokenAuth(SECRET, clock=token_clock))


def signed(**claims: object) -> str:
    """A token with exactly these claims (NaN and Infinity written as JSON
    extensions, as a careless backend's encoder does)."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 32503680000}, "Token lifetime too long"),  # the year 3000
        ({"exp": 1e300}, "Token lifetime too long"),
        ({"exp": 10**400}, "Token lifetime too long"),
        ({"exp": NOW + DAY + 31}, "Token lifetime too long"),
        ({"exp": "32503680000"}, "Invalid token"),
        # A string that would be a fine time as a number is no better.
        ({"exp": str(int(NOW + 60))}, "Invalid token"),
        ({"exp": True}, "Invalid token"),
        ({"exp": float("nan")}, "Invalid token"),
        ({"exp": float("inf")}, "Invalid token"),
        ({"exp": [NOW + 60]}, "Invalid token"),
        ({"exp": NOW}, "Token expired"),
        ({"exp": NOW + 60, "nbf": NOW + 31}, "Token not yet valid"),
        ({"exp": NOW + 60, "nbf": "soon"}, "Invalid token"),
        ({"exp": NOW + 60, "iat": NOW + 31}, "Token issued in the future"),
        ({"exp": NOW + 60, "iat": str(int(NOW))}, "Invalid token"),
        ({"exp": NOW + 60, "jti": 7}, "Invalid token"),
        ({"exp": NOW + 60, "jti": ""}, "Invalid token"),
        ({"exp": NOW + 60, "jti": "x" * 129}, "Invalid token"),
    ],
    ids=[
        "exp-year-3000",
        "exp-1e300",
        "exp-10e400",
        "exp-beyond-max-ttl-and-skew",
        "exp-string",
        "exp-string-soon",
        "exp-true",
        "exp-nan",
        "exp-infinity",
        "exp-list",
        "exp-now",
        "nbf-31s-ahead",
        "nbf-string",
        "iat-31s-ahead",
        "iat-string",
        "jti-number",
        "jti-empty",
        "jti-too-long",
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_time_claims_get_401_with_their_reason(
    clocked: RunningServer, claims: dict[str, object], reason: str
) -> None:
    record = recorder(clocked)
    line = await raw_status_line(clocked, f"/?token={signed(**claims)}")
    assert line == f"HTTP/1.1 401 {reason}"
    assert clocked.factory.signaling.peers == {}
    assert [(event.code, event.reason) for event in record.events] == [(401, reason)]


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": NOW + DAY + 30},
        {"exp": NOW + 1},
        {"exp": NOW + 60.5, "nbf": NOW + 30, "iat": NOW + 30},
        {"exp": NOW + 60, "nbf": NOW - DAY, "iat": NOW - DAY},
        {"exp": NOW + 60, "jti": "x" * 128},
    ],
    ids=["exp-at-max-ttl-and-skew", "exp-in-1s", "nbf-iat-30s-ahead", "nbf-iat-past", "jti-128"],
)
@pytest_twisted.ensureDeferred
async def test_time_claims_within_the_limits_connect(
    clocked: RunningServer, claims: dict[str, object]
) -> None:
    await creates(clocked, signed(**claims))


@pytest_twisted.ensureDeferred
async def test_the_claims_are_checked_on_the_injected_clock(
    clocked: RunningServer, token_clock: task.Clock
) -> None:
    early = signed(exp=NOW + 120, nbf=NOW + 60)
    assert await raw_status_line(clocked, f"/?token={early}") == "HTTP/1.1 401 Token not yet valid"
    token_clock.advance(30)
    await creates(clocked, early)
    token_clock.advance(90)
    assert await raw_status_line(clocked, f"/?token={early}") == "HTTP/1.1 401 Token expired"


@pytest_twisted.ensureDeferred
async def test_max_ttl_is_a_constructor_parameter(
    make_server: ServerMaker, token_clock: task.Clock
) -> None:
    auth = TokenAuth(SECRET, max_ttl=600, clock=token_clock)
    server = await make_server(hooks=auth)
    await creates(server, signed(exp=NOW + 630))
    line = await raw_status_line(server, f"/?token={signed(exp=NOW + 631)}")
    assert line == "HTTP/1.1 401 Token lifetime too long"
    # The check is on the time left, not on the lifetime it was minted with.
    token_clock.advance(DAY)
    await creates(server, signed(exp=NOW + DAY + 600, iat=NOW))


@pytest.mark.parametrize(
    "options",
    [
        {"max_ttl": 0},
        {"max_ttl": -1},
        {"max_ttl": float("inf")},
        {"max_ttl": float("nan")},
        {"clock_skew": -1},
        {"leeway": float("nan")},
    ],
)
def test_token_auth_refuses_nonsense_limits(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TokenAuth(SECRET, **options)


# -- single-use tokens -------------------------------------------------------------------------


def ticket(ttl: float = 60, **claims: object) -> str:
    """A single-use token minted at NOW."""
    return make_token(SECRET, now=NOW, ttl=ttl, single_use=True, **claims)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_a_single_use_token_connects_once(clocked: RunningServer) -> None:
    once = ticket(subject="ann")
    assert jwt.decode(once, options={"verify_signature": False})["jti"]
    host = await clocked.connect_to(f"/?token={once}")
    host.send(JOIN, 0, "")
    await host.expect(ID, 1)
    # Again while the first is open, and again after it left: both refused.
    line = await raw_status_line(clocked, f"/?token={once}")
    assert line == "HTTP/1.1 401 Token already used"
    host.dropConnection(abort=True)
    await host.wait_closed()
    line = await raw_status_line(clocked, f"/?token={once}")
    assert line == "HTTP/1.1 401 Token already used"
    # Another ticket of the same player is another ticket; a token without
    # jti is reusable as before.
    await creates(clocked, ticket(subject="ann"))
    reusable = make_token(SECRET, "ann", now=NOW)
    await creates(clocked, reusable)
    await creates(clocked, reusable)


@pytest_twisted.ensureDeferred
async def test_ice_servers_verifies_a_single_use_token_without_using_it(
    clocked: RunningServer,
) -> None:
    """The demo page fetches /ice-servers with the token it then connects
    with: that fetch must not burn the ticket."""
    once = ticket(subject="ann")
    port = port_of(clocked)
    for _ in range(2):
        status, _, body = await http_get(port, f"/ice-servers?token={once}")
        assert status == 200, body
    await creates(clocked, once)
    # Used, it still fetches ICE servers until it expires (within --token-max-ttl).
    status, _, _ = await http_get(port, f"/ice-servers?token={once}")
    assert status == 200
    status, _, body = await http_get(port, f"/ice-servers?token={signed(exp=32503680000)}")
    assert (status, json.loads(body)) == (401, {"error": "Token lifetime too long"})


@pytest_twisted.ensureDeferred
async def test_used_tokens_are_forgotten_when_they_expire(
    make_server: ServerMaker, token_clock: task.Clock
) -> None:
    used = UsedTokenMap(clock=token_clock)
    server = await make_server(hooks=TokenAuth(SECRET, used_tokens=used, clock=token_clock))
    short, long = ticket(ttl=10), ticket(ttl=100)
    await creates(server, short)
    await creates(server, long)
    assert len(used) == 2
    token_clock.advance(10)
    # Expired, it is refused as expired; nothing needs to remember it.
    assert await raw_status_line(server, f"/?token={short}") == "HTTP/1.1 401 Token expired"
    assert await raw_status_line(server, f"/?token={long}") == "HTTP/1.1 401 Token already used"
    assert len(used) == 1
    token_clock.advance(90)
    assert used.claim("another", NOW + 200)
    assert len(used) == 1


@pytest_twisted.ensureDeferred
async def test_the_leeway_keeps_a_used_token_remembered_as_long_as_it_passes(
    make_server: ServerMaker, token_clock: task.Clock
) -> None:
    used = UsedTokenMap(clock=token_clock)
    auth = TokenAuth(SECRET, leeway=5, used_tokens=used, clock=token_clock)
    server = await make_server(hooks=auth)
    once = ticket(ttl=10)
    await creates(server, once)
    token_clock.advance(14)
    assert await raw_status_line(server, f"/?token={once}") == "HTTP/1.1 401 Token already used"
    token_clock.advance(1)
    assert await raw_status_line(server, f"/?token={once}") == "HTTP/1.1 401 Token expired"


@pytest_twisted.ensureDeferred
async def test_a_full_used_token_map_refuses_new_single_use_tokens_with_503(
    make_server: ServerMaker, token_clock: task.Clock
) -> None:
    used = UsedTokenMap(max_entries=2, clock=token_clock)
    server = await make_server(hooks=TokenAuth(SECRET, used_tokens=used, clock=token_clock))
    first, second = ticket(ttl=30), ticket(ttl=60)
    await creates(server, first)
    await creates(server, second)
    with capturedLogs() as events:
        for _ in range(3):
            line = await raw_status_line(server, f"/?token={ticket()}")
            assert line == "HTTP/1.1 503 Try again later"
        # What it remembers stays remembered: no used token is forgotten early.
        assert (
            await raw_status_line(server, f"/?token={first}") == "HTTP/1.1 401 Token already used"
        )
        # Tokens without jti need no room.
        await creates(server, make_token(SECRET, now=NOW))
        token_clock.advance(10)
        assert (
            await raw_status_line(server, f"/?token={ticket()}") == "HTTP/1.1 503 Try again later"
        )
    full = [event for event in events if "used tokens remembered" in event["log_format"]]
    # Four refusals within ten seconds, one line; the next line counts the rest.
    assert [(event["limit"], event["refused"]) for event in full] == [(2, 1), (2, 3)]
    token_clock.advance(20)
    await creates(server, ticket(ttl=60))
    assert len(used) == 2


def test_the_used_token_map_forgets_a_burst_in_bounded_steps() -> None:
    clock = task.Clock()
    used = UsedTokenMap(max_entries=1500, clock=clock)
    assert all(used.claim(f"burst-{i}", 10) for i in range(1500))
    assert not used.claim("burst-7", 10)
    clock.advance(10)
    assert used.claim("fresh", 20)
    # One claim forgets 1024 of the expired burst, not all of it at once.
    assert len(used) == 1500 - 1024 + 1
    # Expired, a token id is free again, forgotten yet or not.
    assert all(used.claim(f"burst-{i}", 20) for i in range(1499))
    assert len(used) == 1500
    with pytest.raises(UsedTokensUnavailable):
        used.claim("burst-1499", 20)
    clock.advance(10)
    assert used.claim("burst-1499", 30)
    assert len(used) == 1500 - 1024 + 1
    with pytest.raises(ValueError):
        UsedTokenMap(max_entries=0)


class Later:
    """A `UsedTokens` that answers when the test says so."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float, defer.Deferred[bool]]] = []

    def claim(self, token_id: str, expires_at: float) -> defer.Deferred[bool]:
        answer: defer.Deferred[bool] = defer.Deferred()
        self.asked.append((token_id, expires_at, answer))
        return answer


@pytest.mark.parametrize(
    ("answer", "status_line"),
    [
        (True, "HTTP/1.1 101 Switching Protocols"),
        (False, "HTTP/1.1 401 Token already used"),
        (UsedTokensUnavailable("down"), "HTTP/1.1 503 Try again later"),
        (ConnectionError("a bug"), "HTTP/1.1 500 Internal server error"),
    ],
    ids=["fresh", "used", "unavailable", "broken"],
)
@pytest_twisted.ensureDeferred
async def test_a_store_that_answers_later_holds_the_upgrade(
    make_server: ServerMaker, token_clock: task.Clock, answer: bool | Exception, status_line: str
) -> None:
    store = Later()
    server = await make_server(hooks=TokenAuth(SECRET, used_tokens=store, clock=token_clock))
    once = ticket(ttl=60)
    request = await upgrade(server, f"/?token={once}")
    for _ in range(200):  # 10 s at most
        if store.asked:
            break
        await task.deferLater(reactor, 0.05)
    [(token_id, expires_at, pending)] = store.asked
    assert token_id == jwt.decode(once, options={"verify_signature": False})["jti"]
    assert expires_at == NOW + 60
    assert not request.status_line.called
    if isinstance(answer, bool):
        pending.callback(answer)
    else:
        pending.errback(answer)
    assert await with_timeout(request.status_line, 5) == status_line


def test_verify_checks_a_single_use_token_and_admit_uses_it(token_clock: task.Clock) -> None:
    auth = TokenAuth(SECRET, clock=token_clock)
    once = auth.mint("dan", single_use=True)
    identity = auth.verify(once)
    assert identity.token_id is not None and len(identity.token_id) >= 22
    assert auth.verify(once) == "dan"
    assert auth.admit(identity) is identity
    with pytest.raises(Refused, match="Token already used") as refused:
        auth.admit(auth.verify(once))
    assert refused.value.status == 401
    assert auth.verify(auth.mint("dan")).token_id is None


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


@pytest.fixture
def token_command(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """The command's main() in this process: what it prints and its exit
    status. The first test below runs the command itself; the rest check its
    options here, without a Python start-up each."""
    return lambda *argv: run_main(token_cli.main, argv, capsys)


def test_the_token_command_prints_a_token_the_server_accepts(secret_file: Path) -> None:
    done = run_token_cli(
        "--secret-file", str(secret_file), "--subject", "op", "--lobby", "", "--ttl", "120"
    )
    assert done.returncode == 0, done.stderr
    identity = TokenAuth(SECRET).verify(done.stdout.strip())
    assert (identity.subject, identity.lobby) == ("op", "")
    assert 110 < identity.claims["exp"] - time.time() <= 121


def test_the_token_command_mints_single_use_tokens(
    secret_file: Path, token_command: Callable[..., Ran]
) -> None:
    argv = ["--secret-file", str(secret_file), "--subject", "op", "--single-use"]
    first, second = token_command(*argv), token_command(*argv)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    auth = TokenAuth(SECRET)
    ids = [auth.verify(done.stdout.strip()).token_id for done in (first, second)]
    # token_urlsafe(16): 128 random bits, 22 characters.
    assert all(token_id is not None and len(token_id) == 22 for token_id in ids)
    assert ids[0] != ids[1]
    plain = token_command("--secret-file", str(secret_file))
    assert auth.verify(plain.stdout.strip()).token_id is None


def test_the_token_command_mints_pool_tokens(
    secret_file: Path, token_command: Callable[..., Ran]
) -> None:
    done = token_command("--secret-file", str(secret_file), "--pool", "eu/ranked")
    assert done.returncode == 0, done.stderr
    assert TokenAuth(SECRET).verify(done.stdout.strip()).claims["pool"] == "eu/ranked"


def test_the_token_command_notes_a_ttl_over_the_default_max_ttl(
    secret_file: Path, token_command: Callable[..., Ran]
) -> None:
    done = token_command("--secret-file", str(secret_file), "--ttl", "90000")
    assert done.returncode == 0
    assert "--token-max-ttl" in done.stderr
    with pytest.raises(Refused, match="Token lifetime too long"):
        TokenAuth(SECRET).verify(done.stdout.strip())
    assert TokenAuth(SECRET, max_ttl=90000).verify(done.stdout.strip()) == ""
    assert token_command("--secret-file", str(secret_file), "--ttl", "86400").stderr == ""


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
    tmp_path: Path,
    secret_file: Path,
    token_command: Callable[..., Ran],
    argv: list[str],
    message: str,
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    argv = [{"EMPTY": str(empty), "SECRET": str(secret_file)}.get(arg, arg) for arg in argv]
    done = token_command(*argv)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
