"""GET /ice-servers on the signaling port, the embedder's API and resource:
fresh TURN credentials per request, computed on the injected clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest_twisted
from twisted.internet import endpoints
from twisted.web.resource import Resource
from twisted.web.server import Site

from webrtc_signal import SignalingConfig
from webrtc_signal.server.ice_servers import Unauthorized

from ..conftest import RunningServer, ServerMaker, _reactor
from ..support.http import http_get
from ..support.wsclient import with_timeout

NOW = 1_800_000_000
SECRET = "correct horse battery staple"
TURN = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp")
STUN = ("stun:stun.example.org:3478",)
CONFIG = SignalingConfig(stun_urls=STUN, turn_urls=TURN, turn_secret=SECRET, turn_ttl=600)


def hmac_sha1_base64(secret: str, text: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    ).decode()


async def fetch(
    server: RunningServer, path: str = "/ice-servers"
) -> tuple[int, dict[str, str], Any]:
    status, headers, body = await http_get(server.service.port.getHost().port, path)
    return status, headers, json.loads(body)


@pytest_twisted.ensureDeferred
async def test_nothing_configured(server: RunningServer) -> None:
    status, headers, body = await fetch(server)
    assert status == 200
    assert body == {"iceServers": [], "ttl": 0}
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["access-control-allow-origin"] == "*"


@pytest_twisted.ensureDeferred
async def test_credentials_expire_ttl_after_now_on_the_clock(make_server: ServerMaker) -> None:
    server = await make_server(CONFIG)
    server.clock.advance(NOW)
    status, headers, body = await fetch(server, "/ice-servers?unrelated=1")
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert body["ttl"] == 600
    stun, turn = body["iceServers"]
    assert stun == {"urls": list(STUN)}
    assert turn["urls"] == list(TURN)
    expiry, user = turn["username"].split(":", 1)
    assert int(expiry) == NOW + 600
    assert user  # a random tag without token auth
    assert turn["credential"] == hmac_sha1_base64(SECRET, turn["username"])


@pytest_twisted.ensureDeferred
async def test_every_request_gets_fresh_credentials(make_server: ServerMaker) -> None:
    server = await make_server(CONFIG)
    server.clock.advance(NOW)
    first = (await fetch(server))[2]["iceServers"][1]
    server.clock.advance(10)
    second = (await fetch(server))[2]["iceServers"][1]
    assert int(second["username"].split(":")[0]) == NOW + 10 + 600
    assert first["username"].split(":")[1] != second["username"].split(":")[1]
    assert first["credential"] != second["credential"]


@pytest_twisted.ensureDeferred
async def test_stun_only_has_no_credentials(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(stun_urls=STUN))
    assert (await fetch(server))[2] == {"iceServers": [{"urls": list(STUN)}], "ttl": 0}


@pytest_twisted.ensureDeferred
async def test_answered_without_the_demo_too(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(serve_demo=False, stun_urls=STUN))
    assert (await fetch(server))[2]["iceServers"] == [{"urls": list(STUN)}]
    status, _, _ = await http_get(server.service.port.getHost().port, "/")
    assert status == 426


@pytest_twisted.ensureDeferred
async def test_an_authenticate_check_gates_it_and_names_the_user(
    make_server: ServerMaker,
) -> None:
    """How token auth plugs in: the check sees the query and returns the
    identity, whose subject names the TURN user, or refuses with 401."""
    server = await make_server(CONFIG)
    server.clock.advance(NOW)
    seen: list[dict[str, Any]] = []

    def authenticate(query: Any) -> object:
        seen.append(dict(query))
        if query.get("token") != ["good"]:
            raise Unauthorized("a valid ?token= is required")
        return "alice"

    server.service.ice.authenticate = authenticate
    status, headers, body = await fetch(server, "/ice-servers")
    assert (status, body) == (401, {"error": "a valid ?token= is required"})
    assert headers["cache-control"] == "no-store"
    status, _, body = await fetch(server, "/ice-servers?token=bad")
    assert status == 401
    status, _, body = await fetch(server, "/ice-servers?token=good")
    assert status == 200
    assert body["iceServers"][1]["username"] == f"{NOW + 600}:alice"
    assert seen == [{}, {"token": ["bad"]}, {"token": ["good"]}]


@pytest_twisted.ensureDeferred
async def test_embedders_api_and_resource() -> None:
    from webrtc_signal import SignalingService

    service = SignalingService(CONFIG)

    class Subject:
        subject = "player-7"

    servers = service.ice_servers(Subject())
    assert servers[1]["username"].endswith(":player-7")
    assert servers[1]["credential"] == hmac_sha1_base64(SECRET, servers[1]["username"])
    assert service.ice_servers("bob")[1]["username"].endswith(":bob")
    assert ":" in service.ice_servers()[1]["username"]

    root = Resource()
    root.putChild(b"signal", service.resource())
    root.putChild(b"ice-servers", service.ice_servers_resource())
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    port = await with_timeout(endpoint.listen(Site(root)), 5)
    try:
        status, headers, body = await http_get(
            port.getHost().port, "/ice-servers", "Connection: close\r\n"
        )
        assert status == 200
        assert headers["cache-control"] == "no-store"
        assert headers["access-control-allow-origin"] == "*"
        answer = json.loads(body)
        assert answer["ttl"] == 600
        assert answer["iceServers"][0] == {"urls": list(STUN)}
        turn = answer["iceServers"][1]
        assert turn["credential"] == hmac_sha1_base64(SECRET, turn["username"])

        service.ice.authenticate = _refuse
        status, _, body = await http_get(
            port.getHost().port, "/ice-servers", "Connection: close\r\n"
        )
        assert status == 401
        assert json.loads(body) == {"error": "no"}
    finally:
        await port.stopListening()


def _refuse(query: object) -> object:
    raise Unauthorized("no")
