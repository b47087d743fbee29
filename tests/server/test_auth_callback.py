"""The auth callback against a real twisted.web backend on loopback: what it
is asked, admitted with an identity and a lobby claim, refused with the
backend's 4xx, failed closed (503) on timeouts, 5xx, bad answers and a
backend that is down, the in-flight limit, a client that leaves while its
call is under way, and the callback combined with token auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from webrtc_signal import PeerInfo, Refused, TokenAuth
from webrtc_signal.events import PeerJoined
from webrtc_signal.server.auth_callback import (
    AuthCallback,
    BadAnswer,
    CallbackIdentity,
    read_answer,
)
from webrtc_signal.server.combined_hooks import JointIdentity, RequireAll

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import with_timeout
from .backends_support import (
    Received,
    RunningReceiver,
    start_receiver,
    start_upgrade,
    upgrade_status,
    wait_for,
)

JOIN, ID = 0, 1
TOKEN_SECRET = b"token-secret-for-tests-0123456789abcdef"
SWITCHING = "HTTP/1.1 101 Switching Protocols"
UNAVAILABLE = "HTTP/1.1 503 Auth service unavailable"


@pytest_twisted.async_yield_fixture
async def backend() -> AsyncIterator[RunningReceiver]:
    running = await start_receiver(path="/auth")
    yield running
    await running.stop()


@pytest_twisted.async_yield_fixture
async def callbacks() -> AsyncIterator[Callable[..., AuthCallback]]:
    made: list[AuthCallback] = []

    def make(url: str, **kwargs: Any) -> AuthCallback:
        callback = AuthCallback(url, **kwargs)
        made.append(callback)
        return callback

    yield make
    for callback in made:
        await with_timeout(callback.close(), 10)


@pytest.fixture
def warnings() -> Any:
    """The text of every warning logged during the test."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_level") is not None and event["log_level"].name == "warn":
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def answer_with(running: RunningReceiver, status: int, body: object) -> None:
    running.receiver.status = status
    running.receiver.body = body if isinstance(body, bytes) else orjson.dumps(body)


async def create_lobby(server: RunningServer, path: str) -> tuple[Any, str]:
    client = await server.connect_to(path)
    client.send(JOIN, 0, "")
    await client.expect(ID, 1)
    return client, (await client.expect(JOIN))["data"]


# -- admitted -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_backend_is_asked_with_the_allowed_headers_and_its_identity_admits(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    answer_with(backend, 200, {"identity": "alice", "lobby": None, "pool": "ranked"})
    server = await make_server(hooks=callbacks(backend.url))
    joined: list[PeerInfo] = []
    server.service.add_observer(lambda e: isinstance(e, PeerJoined) and joined.append(e.peer))
    headers = (
        "Cookie: sid=session-42\r\nAuthorization: Bearer backend-token\r\n"
        "Origin: https://game.example.com\r\nUser-Agent: godot/4.3\r\n"
        "X-Internal-Secret: not-for-the-backend\r\n"
    )
    assert await upgrade_status(server.url, "/?session=abc&x=1&x=2", headers) == SWITCHING
    (asked,) = backend.receiver.received
    assert asked.method == "POST" and asked.path == "/auth"
    assert asked.headers["content-type"] == "application/json"
    body = orjson.loads(asked.body)
    assert body == {
        "address": "127.0.0.1",
        "path": "/",
        "query": {"session": ["abc"], "x": ["1", "2"]},
        "origin": "https://game.example.com",
        "headers": {
            "authorization": "Bearer backend-token",
            "cookie": "sid=session-42",
            "origin": "https://game.example.com",
            "host": "127.0.0.1",
            "user-agent": "godot/4.3",
        },
    }

    # The answered pool holds the peer to quick-match in that pool.
    host, lobby = await create_lobby(server, "/match/ranked?size=2&session=abc")
    (peer,) = joined
    assert isinstance(peer.identity, CallbackIdentity)
    assert peer.identity == "alice" and peer.identity.pool == "ranked" and peer.pool == "ranked"
    assert peer.identity.lobby is None
    info = server.service.lobby(lobby)
    assert info is not None and info.host is not None and info.host.identity == "alice"


@pytest_twisted.ensureDeferred
async def test_the_answered_lobby_holds_the_peer_to_it_like_a_token_claim(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    server = await make_server(hooks=callbacks(backend.url))
    answer_with(backend, 200, {"identity": "host", "lobby": ""})
    host, lobby = await create_lobby(server, "/")
    answer_with(backend, 200, {"identity": "guest", "lobby": "SomeOtherLobby"})
    stranger = await server.connect_to("/")
    stranger.send(JOIN, 0, lobby)
    assert await stranger.wait_closed() == (4000, "Not allowed in this lobby")
    answer_with(backend, 200, {"identity": "guest", "lobby": lobby})
    guest = await server.connect_to("/")
    guest.send(JOIN, 0, lobby)
    assert (await guest.expect(ID))["id"] != 1
    answer_with(backend, 200, {"identity": "creator-only", "lobby": ""})
    creator = await server.connect_to("/")
    creator.send(JOIN, 0, lobby)
    assert await creator.wait_closed() == (4000, "Not allowed in this lobby")


# -- refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "status_line"),
    [
        (403, {"error": "Banned until\r\ntomorrow"}, "HTTP/1.1 403 Banned until tomorrow"),
        (401, b"", "HTTP/1.1 401 Unauthorized"),
        (429, b"slow down", "HTTP/1.1 429 Too Many Requests"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_4xx_answer_refuses_the_upgrade_with_that_status(
    make_server: ServerMaker,
    backend: RunningReceiver,
    callbacks: Any,
    status: int,
    body: object,
    status_line: str,
) -> None:
    answer_with(backend, status, body)
    server = await make_server(hooks=callbacks(backend.url))
    assert await upgrade_status(server.url) == status_line
    assert server.factory.signaling.peers == {}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"identity": "alice"}),
        (503, b""),
        (302, b""),
        (204, b""),
        (200, b"not json"),
        (200, [1, 2]),
        (200, {"identity": ""}),
        (200, {"identity": 7}),
        (200, {"identity": "a", "lobby": 3}),
        (200, {"identity": "a", "pool": ["x"]}),
        (200, b'{"identity": "' + b"a" * 70000 + b'"}'),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_5xx_or_bad_answer_fails_closed_with_503(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any, status: int, body: object
) -> None:
    answer_with(backend, status, body)
    callback = callbacks(backend.url)
    server = await make_server(hooks=callback)
    assert await upgrade_status(server.url) == UNAVAILABLE
    assert callback.calls == 0


@pytest_twisted.ensureDeferred
async def test_a_backend_that_is_down_fails_closed(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    backend.factory.down = True
    server = await make_server(hooks=callbacks(backend.url))
    assert await upgrade_status(server.url) == UNAVAILABLE
    assert backend.factory.dropped == 1
    backend.factory.down = False
    answer_with(backend, 200, {"identity": "back"})
    assert await upgrade_status(server.url) == SWITCHING


@pytest_twisted.ensureDeferred
async def test_a_timeout_fails_closed_and_is_logged_once_per_ten_seconds(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any, warnings: list[str]
) -> None:
    backend.receiver.hold = True
    clock = task.Clock()
    callback = callbacks(backend.url, timeout=2.0, clock=clock)
    server = await make_server(hooks=callback)

    async def timed_out_upgrade() -> str:
        upgrade = await start_upgrade(server.url)
        await backend.receiver.next()
        assert not upgrade.status_line.called
        clock.advance(2.0)
        status: str = await with_timeout(upgrade.status_line, 10)
        return status

    assert await timed_out_upgrade() == UNAVAILABLE
    assert await timed_out_upgrade() == UNAVAILABLE
    assert await timed_out_upgrade() == UNAVAILABLE
    lines = [line for line in warnings if "auth callback" in line]
    assert len(lines) == 1 and "no answer in time" in lines[0]
    clock.advance(10.0)
    assert await timed_out_upgrade() == UNAVAILABLE
    lines = [line for line in warnings if "auth callback" in line]
    assert len(lines) == 2 and "2 more failures like it" in lines[1]
    # The token-bearing request is never written to the log.
    assert all("127.0.0.1" in line and "?" not in line for line in lines)
    assert callback.calls == 0


@pytest_twisted.ensureDeferred
async def test_calls_over_the_concurrency_limit_are_refused_at_once(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    backend.receiver.hold = True
    callback = callbacks(backend.url, concurrency=2)
    server = await make_server(hooks=callback)
    first = await start_upgrade(server.url)
    second = await start_upgrade(server.url)
    held = [await backend.receiver.next(), await backend.receiver.next()]
    assert callback.calls == 2
    assert await upgrade_status(server.url) == UNAVAILABLE
    assert len(backend.receiver.received) == 2
    for got in held:
        backend.receiver.answer(got, 200, b'{"identity": "patient"}')
    assert await with_timeout(first.status_line, 10) == SWITCHING
    assert await with_timeout(second.status_line, 10) == SWITCHING
    assert callback.calls == 0


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_during_the_call_cancels_it(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    backend.receiver.hold = True
    callback = callbacks(backend.url)
    server = await make_server(hooks=callback)
    upgrade = await start_upgrade(server.url)
    got: Received = await backend.receiver.next()
    gone = got.request.notifyFinish()
    assert upgrade.transport is not None
    upgrade.transport.abortConnection()  # type: ignore[attr-defined]
    # The call's connection to the backend is closed: nothing waits on it.
    with pytest.raises(Exception):  # noqa: B017 (the backend sees a lost connection)
        await with_timeout(gone, 10)
    await wait_for(lambda: callback.calls == 0, "the call to end")
    assert server.factory.signaling.peers == {}


# -- with token auth ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_with_token_auth_both_must_pass_and_the_callbacks_identity_wins(
    make_server: ServerMaker, backend: RunningReceiver, callbacks: Any
) -> None:
    tokens = TokenAuth(TOKEN_SECRET)
    hooks = RequireAll(tokens, callbacks(backend.url))
    server = await make_server(hooks=hooks)
    joined: list[PeerInfo] = []
    server.service.add_observer(lambda e: isinstance(e, PeerJoined) and joined.append(e.peer))

    # No token: refused before the backend is asked.
    assert (await upgrade_status(server.url)).startswith("HTTP/1.1 401 ")
    assert backend.receiver.received == []
    # A token, but the backend says no.
    answer_with(backend, 403, {"error": "Account suspended"})
    status = await upgrade_status(server.url, f"/?token={tokens.mint('alice')}")
    assert status == "HTTP/1.1 403 Account suspended"
    # Both say yes: the callback's identity is the peer's, both are kept.
    answer_with(backend, 200, {"identity": "alice#1234", "pool": "casual"})
    host, lobby = await create_lobby(server, f"/match/casual?size=4&token={tokens.mint('alice')}")
    (peer,) = joined
    identity = peer.identity
    assert isinstance(identity, JointIdentity)
    assert identity == "alice#1234" and identity.pool == "casual"
    token_identity, callback_identity = identity.identities
    assert token_identity == "alice" and callback_identity == "alice#1234"
    # Each one's lobby claim holds: the token allows this lobby, the
    # backend's answer only creating one.
    answer_with(backend, 200, {"identity": "bob", "lobby": ""})
    guest = await server.connect_to(f"/?token={tokens.mint('bob', lobby=lobby)}")
    guest.send(JOIN, 0, lobby)
    assert await guest.wait_closed() == (4000, "Not allowed in this lobby")
    answer_with(backend, 200, {"identity": "bob", "lobby": lobby})
    guest = await server.connect_to(f"/?token={tokens.mint('bob', lobby='elsewhere')}")
    guest.send(JOIN, 0, lobby)
    assert await guest.wait_closed() == (4000, "Not allowed in this lobby")
    guest = await server.connect_to(f"/?token={tokens.mint('bob', lobby=lobby)}")
    guest.send(JOIN, 0, lobby)
    assert (await guest.expect(ID))["id"] != 1
    # /ice-servers still asks for the token.
    assert hooks.authenticate_ice({"token": [tokens.mint("carol")]}) == "carol"


# -- pieces ---------------------------------------------------------------------------


def test_read_answer_takes_identity_lobby_and_pool_and_keeps_the_rest() -> None:
    identity = read_answer(b'{"identity": "dana", "lobby": "L", "pool": null, "level": 7}')
    assert identity == "dana" and identity.lobby == "L" and identity.pool is None
    assert identity.answer["level"] == 7
    with pytest.raises(BadAnswer, match="identity"):
        read_answer(b'{"lobby": "L"}')


def test_a_peer_without_a_callback_identity_may_not_join() -> None:
    callback = AuthCallback("http://127.0.0.1:9/auth", clock=task.Clock())
    stranger = PeerInfo(5, None, None, "not ours", "127.0.0.1")
    with pytest.raises(Refused, match="Not allowed in this lobby"):
        callback.authorize_join(stranger, "", True)
    with pytest.raises(ValueError, match="not an http"):
        AuthCallback("ftp://127.0.0.1/auth")
    with pytest.raises(ValueError, match="at least one"):
        RequireAll()
