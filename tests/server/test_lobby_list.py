"""GET /lobbies over real sockets: listed hosts, newest first, pages that
follow their cursor, the title and mode filters, lobbies leaving the list
the moment they seal, fill or close, the per-address rate limit (on the
injected clock), token auth, and bad parameters."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import pytest_twisted

from webrtc_signal import SignalingConfig, TokenAuth

from ..conftest import RunningServer, ServerMaker
from ..support.http import http_get
from ..support.wsclient import RecordingClient
from .test_hooks import port_of
from .test_quickmatch import until

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT = 0, 1, 2, 3
SEAL = 7
SECRET = b"a-test-secret-of-thirty-two-bytes!!"


async def lobbies(server: RunningServer, query: str = "") -> tuple[int, dict[str, str], Any]:
    status, headers, body = await http_get(port_of(server), f"/lobbies{query}")
    return status, headers, json.loads(body)


async def listing(server: RunningServer, query: str = "") -> Any:
    status, _, body = await lobbies(server, query)
    assert status == 200, body
    return body


async def host(
    server: RunningServer, title: str | None = None, mesh: bool = True, extra: str = ""
) -> tuple[RecordingClient, str]:
    query = "?listed=1" + (f"&title={quote(title)}" if title is not None else "") + extra
    client = await server.connect_to(f"/{query}")
    client.send(JOIN, 0 if mesh else 1, "")
    await client.expect(ID, 1)
    return client, (await client.expect(JOIN))["data"]


async def join(server: RunningServer, lobby: str) -> RecordingClient:
    client = await server.connect()
    client.send(JOIN, 0, lobby)
    await client.expect(ID)
    while (await client.next())["type"] != JOIN:
        pass
    return client


def names(body: Any) -> list[str]:
    return [entry["name"] for entry in body["lobbies"]]


@pytest_twisted.ensureDeferred
async def test_listed_lobbies_newest_first_with_every_field(server: RunningServer) -> None:
    _, plain = await server.create()
    _, old = await host(server, "Old game")
    server.clock.advance(12)
    _, new = await host(server, 'Fresh <b>"game"</b> ✓', mesh=False, extra="&size=4")
    await join(server, new)
    status, headers, body = await lobbies(server)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert body == {
        "lobbies": [
            {
                "name": new,
                "title": 'Fresh <b>"game"</b> ✓',
                "members": 2,
                "size": 4,
                "mesh": False,
                "age": 0,
            },
            {"name": old, "title": "Old game", "members": 1, "size": None, "mesh": True, "age": 12},
        ],
        "next": None,
    }
    assert plain not in names(body)


@pytest_twisted.ensureDeferred
async def test_pages_follow_the_cursor_and_newer_lobbies_do_not_shift_them(
    server: RunningServer,
) -> None:
    created = [(await host(server, f"Game {i}"))[1] for i in range(5)]
    first = await listing(server, "?limit=2")
    assert names(first) == created[::-1][:2] and first["next"]
    await host(server, "Newer")
    second = await listing(server, f"?limit=2&cursor={first['next']}")
    assert names(second) == created[::-1][2:4]
    last = await listing(server, f"?limit=2&cursor={second['next']}")
    assert names(last) == created[:1] and last["next"] is None
    assert len((await listing(server))["lobbies"]) == 6


@pytest_twisted.ensureDeferred
async def test_the_title_and_mode_filters(server: RunningServer) -> None:
    _, friday = await host(server, "Friday NIGHT fights")
    await host(server, "Morning coffee")
    _, owls = await host(server, "night owls", mesh=False)
    await host(server)
    assert names(await listing(server, "?q=Night")) == [owls, friday]
    assert names(await listing(server, "?q=night&mode=mesh")) == [friday]
    assert names(await listing(server, "?mode=client-server")) == [owls]
    assert names(await listing(server, "?q=" + quote("ÿ"))) == []


@pytest_twisted.ensureDeferred
async def test_sealed_full_and_closed_lobbies_leave_the_list_at_once(
    server: RunningServer,
) -> None:
    sealing_host, sealing = await host(server, "sealing")
    closing_host, closing = await host(server, "closing")
    _, filling = await host(server, "filling", extra="&size=2")
    assert set(names(await listing(server))) == {sealing, closing, filling}
    sealing_host.send(SEAL)
    await sealing_host.expect(SEAL)
    assert set(names(await listing(server))) == {closing, filling}
    guest = await join(server, filling)
    assert set(names(await listing(server))) == {closing}
    # A place freed in a full lobby puts it back.
    guest.sendClose(1000)
    core = server.engine.core
    await until(lambda: len(core.lobbies[filling].members) == 1)
    assert set(names(await listing(server))) == {closing, filling}
    closing_host.sendClose(1000)
    await until(lambda: closing not in core.lobbies)
    assert names(await listing(server)) == [filling]


@pytest_twisted.ensureDeferred
async def test_pool_lobbies_are_listed_only_with_listed_1(server: RunningServer) -> None:
    quiet = await server.connect_to("/match/p?size=3")
    quiet.send(JOIN, 0, "")
    await quiet.expect(ID, 1)
    shown = await server.connect_to("/match/q?size=2&listed=1&title=Quick")
    shown.send(JOIN, 0, "")
    await shown.expect(ID, 1)
    lobby = (await shown.expect(JOIN))["data"]
    body = await listing(server)
    assert body["lobbies"] == [
        {"name": lobby, "title": "Quick", "members": 1, "size": 2, "mesh": True, "age": 0}
    ]
    other = await server.connect_to("/match/q?size=2")
    other.send(JOIN, 0, "")
    await other.expect(ID)
    await shown.expect(PEER_CONNECT)
    await shown.expect(SEAL)
    assert names(await listing(server)) == []


@pytest_twisted.ensureDeferred
async def test_each_address_is_rate_limited(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_list_rate=5.0))
    for _ in range(20):
        assert (await lobbies(server))[0] == 200
    status, headers, body = await lobbies(server)
    assert status == 429 and body == {"error": "Too many requests"}
    assert headers["retry-after"] == "1"
    # The bucket refills at 5 a second, on the server's clock.
    server.clock.advance(0.2)
    assert (await lobbies(server))[0] == 200
    assert (await lobbies(server))[0] == 429
    server.clock.advance(4)
    for _ in range(20):
        assert (await lobbies(server))[0] == 200


@pytest_twisted.ensureDeferred
async def test_no_rate_limit_when_it_is_off(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_list_rate=0))
    for _ in range(30):
        assert (await lobbies(server))[0] == 200


@pytest_twisted.ensureDeferred
async def test_with_token_auth_the_list_needs_a_token(make_server: ServerMaker) -> None:
    tokens = TokenAuth(SECRET)
    server = await make_server(hooks=tokens)
    status, _, body = await lobbies(server)
    assert (status, body) == (401, {"error": "Missing token"})
    status, _, body = await lobbies(server, "?token=not-a-token")
    assert status == 401
    await host(server, "With token", extra=f"&token={tokens.mint('alice')}")
    body = await listing(server, f"?token={tokens.mint('bob')}")
    assert [entry["title"] for entry in body["lobbies"]] == ["With token"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?cursor=abc", "cursor"),
        ("?mode=star", "mode"),
        ("?q=" + "x" * 65, "q"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_parameters_get_400_naming_them(
    server: RunningServer, query: str, named: str
) -> None:
    status, _, body = await lobbies(server, query)
    assert status == 400 and body["error"].startswith(f"{named}: ")


@pytest_twisted.ensureDeferred
async def test_the_list_is_served_without_the_demo_and_to_embedders(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(serve_demo=False))
    assert await listing(server) == {"lobbies": [], "next": None}
    assert server.service.resources()[b"lobbies"] is server.service.lobbies_resource
    status, _, _ = await http_get(port_of(server), "/lobbies/more")
    assert status == 426
