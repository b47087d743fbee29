"""The admin API over real HTTP against a real server with real WebSocket
players: every operation and answer, the bearer token, body limits, and
the OpenAPI document, checked as OpenAPI 3.1 and against every live answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_twisted
import treq
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from twisted.internet import defer, endpoints
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.web.resource import Resource as WebResource
from twisted.web.server import Site

from webrtc_signal import SignalingConfig, TokenAuth
from webrtc_signal.server.admin import (
    MAX_BODY_BYTES,
    MAX_DISCARDED_BYTES,
    AdminResource,
    AdminSite,
    Unavailable,
    openapi_document,
)

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import with_timeout

ADMIN_TOKEN = b"admin-token-for-tests-0123456789"
TOKEN_SECRET = b"token-secret-for-tests-0123456789abcdef"
JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, SEAL = 0, 1, 2, 3, 7
WAIT = 10.0
CLUSTER_ONLY = {
    ("/v1/lobbies", "get", "503"),
    ("/v1/lobbies/{name}", "get", "503"),
    ("/v1/lobbies/{name}", "delete", "503"),
    ("/v1/lobbies/{name}/seal", "post", "503"),
    ("/v1/lobbies/{name}/peers/{id}", "delete", "503"),
}


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Admin:
    """An admin API on 127.0.0.1 (port 0) over a running server; every
    answer is checked against the OpenAPI document and its coverage kept."""

    server: RunningServer
    base: str
    schemas: SchemaCheck
    port: Any

    async def call(
        self,
        method: str,
        path: str,
        body: object = None,
        token: bytes | None = ADMIN_TOKEN,
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> Answer:
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers[b"authorization"] = [b"Bearer " + token]
        data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        response = await with_timeout(
            treq.request(
                method,
                self.base + path,
                data=data,
                headers=sent_headers,
                persistent=False,
                allow_redirects=False,
            ),
            WAIT,
        )
        content = await with_timeout(treq.content(response), WAIT)
        answer_headers = {
            name.decode().lower(): values[-1].decode()
            for name, values in response.headers.getAllRawHeaders()
        }
        assert answer_headers["content-type"] == "application/json"
        parsed = orjson.loads(content)
        self.schemas.check(method, path, response.code, parsed)
        return Answer(response.code, answer_headers, parsed)


class SchemaCheck:
    """Validates answers against the document's schema for their path,
    method and status, and remembers which of those were seen."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource("urn:admin", resource)
        self.seen: set[tuple[str, str, str]] = set()

    @staticmethod
    def template(path: str) -> str:
        parts = path.split("?")[0].rstrip("/").split("/")
        if len(parts) >= 4 and parts[1:3] == ["v1", "lobbies"]:
            parts[3] = "{name}"
        if len(parts) == 6 and parts[4] == "peers":
            parts[5] = "{id}"
        return "/".join(parts)

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        template = self.template(path)
        operation = self.document["paths"].get(template, {}).get(method.lower())
        if operation is None:
            assert status in (404, 405, 401), (method, path, status)
            Draft202012Validator(self.document["components"]["schemas"]["Error"]).validate(body)
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template} answered undocumented {status}"
        self.seen.add((template, method.lower(), str(status)))
        pointer = "/".join(
            part.replace("~", "~0").replace("/", "~1")
            for part in (
                "paths",
                template,
                method.lower(),
                "responses",
                str(status),
                "content",
                "application/json",
                "schema",
            )
        )
        schema = {"$ref": f"urn:admin#/{pointer}"}
        Draft202012Validator(schema, registry=self.registry).validate(body)

    def documented(self) -> set[tuple[str, str, str]]:
        return {
            (path, method, status)
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
            if method != "parameters"
            for status in operation["responses"]
        }


@pytest_twisted.async_yield_fixture
async def make_admin(make_server: ServerMaker) -> AsyncIterator[Callable[..., Any]]:
    ports: list[Any] = []

    async def make(
        config: SignalingConfig | None = None, token_auth: TokenAuth | None = None
    ) -> Admin:
        config = config or SignalingConfig()
        server = await make_server(config, hooks=token_auth)
        resource = AdminResource(
            server.service,
            ADMIN_TOKEN,
            token_auth=token_auth,
            clock=server.clock,
            max_lobby_size=config.max_lobby_size,
        )
        endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
        port = await with_timeout(endpoint.listen(AdminSite(resource)), WAIT)
        ports.append(port)
        base = f"http://127.0.0.1:{port.getHost().port}"
        return Admin(server, base, SchemaCheck(openapi_document()), port)

    yield make
    for port in ports:
        await with_timeout(defer.maybeDeferred(port.stopListening), WAIT)


async def join(server: RunningServer, path: str, lobby: str) -> tuple[Any, int]:
    client = await server.connect_to(path)
    client.send(JOIN, 0, lobby)
    my_id = (await client.expect(ID))["id"]
    while (message := await client.next())["type"] != JOIN:
        assert message["type"] == PEER_CONNECT, message
    return client, my_id


# -- the whole API, against its document ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_documented_answer_is_given_and_matches_the_openapi_document(
    make_admin: Any,
) -> None:
    tokens = TokenAuth(TOKEN_SECRET)
    admin: Admin = await make_admin(SignalingConfig(max_lobby_size=8, max_lobbies=2), tokens)
    server = admin.server

    document = (await admin.call("GET", "/v1/openapi.json")).body
    validate_openapi(document)
    assert document == openapi_document()

    assert (await admin.call("GET", "/v1/lobbies")).body == {"lobbies": []}

    # A matchmaker reserves a lobby for two players and hands out their tokens.
    reserved = await admin.call(
        "POST",
        "/v1/lobbies",
        {"mode": "mesh", "ttl": 60, "size": 4, "players": ["alice", "bob"]},
    )
    assert reserved.status == 201
    name = reserved.body["name"]
    assert reserved.headers["location"] == f"/v1/lobbies/{name}"
    assert reserved.body["members"] == 0 and reserved.body["size"] == 4
    assert set(reserved.body["tokens"]) == {"alice", "bob"}
    alice_claims = tokens.verify(reserved.body["tokens"]["alice"])
    assert alice_claims == "alice" and alice_claims.lobby == name
    assert alice_claims.claims["exp"] - alice_claims.claims["iat"] == 60

    host, host_id = await join(server, f"/?token={reserved.body['tokens']['alice']}", name)
    guest, guest_id = await join(server, f"/?token={reserved.body['tokens']['bob']}", name)
    assert host_id == 1 and guest_id != 1
    await host.expect(PEER_CONNECT, guest_id)

    listed = (await admin.call("GET", "/v1/lobbies")).body["lobbies"]
    (lobby,) = listed
    assert lobby == (await admin.call("GET", f"/v1/lobbies/{name}")).body
    assert {key: lobby[key] for key in ("name", "mode", "sealed", "members", "size")} == {
        "name": name,
        "mode": "mesh",
        "sealed": False,
        "members": 2,
        "size": 4,
    }
    assert lobby["created"] == "1970-01-01T00:00:00.000Z"  # the server's test clock
    assert [(p["identity"], p["framing"], p["address"]) for p in lobby["peers"]] == [
        ("alice", "json", "127.0.0.1"),
        ("bob", "json", "127.0.0.1"),
    ]
    assert lobby["peers"][1]["id"] == guest_id
    assert (await admin.call("GET", "/v1/lobbies/NoSuchLobby")).status == 404

    # Bad bodies and the lobby limit.
    for bad in (
        b"not json",
        b"[1]",
        {"mode": "star"},
        {"ttl": 0},
        {"ttl": True},
        {"ttl": 3601},
        {"size": 9},
        {"size": 2, "players": ["a", "b", "c"]},
        {"players": ["a", "a"]},
        {"players": [""]},
        {"players": "alice"},
        {"private": True},
    ):
        answer = await admin.call("POST", "/v1/lobbies", bad)
        assert answer.status == 400, bad
    assert (await admin.call("POST", "/v1/lobbies", b" " * (MAX_BODY_BYTES + 1))).status == 413
    second = await admin.call("POST", "/v1/lobbies", {"mode": "client-server"})
    assert second.status == 201 and second.body["mode"] == "client-server"
    assert second.body["tokens"] == {} and second.body["size"] == 8
    full = await admin.call("POST", "/v1/lobbies")
    assert full.status == 503 and full.body == {"error": "Too many lobbies open, disconnecting"}

    # Kick the guest: it is closed with the reason, the host sees it leave.
    kick_path = f"/v1/lobbies/{name}/peers/{guest_id}"
    assert (await admin.call("DELETE", kick_path, {"reason": 7})).status == 400
    assert (await admin.call("DELETE", kick_path, {"reason": "x" * 124})).status == 400
    assert (await admin.call("DELETE", kick_path, b"{" + b" " * MAX_BODY_BYTES)).status == 413
    kicked = await admin.call("DELETE", kick_path, {"reason": "Cheating"})
    assert kicked.body == {"lobby": name, "id": guest_id, "reason": "Cheating"}
    assert await guest.wait_closed() == (4000, "Cheating")
    await host.expect(PEER_DISCONNECT, guest_id)
    assert (await admin.call("DELETE", kick_path)).status == 404
    assert (await admin.call("DELETE", f"/v1/lobbies/{name}/peers/banana")).status == 404
    assert (await admin.call("DELETE", f"/v1/lobbies/NoSuchLobby/peers/{guest_id}")).status == 404

    # Seal it: the host hears SEAL as if it had sealed.
    seal_path = f"/v1/lobbies/{name}/seal"
    assert (await admin.call("POST", seal_path, {"now": True})).status == 400
    assert (await admin.call("POST", seal_path, b" " * (MAX_BODY_BYTES + 1))).status == 413
    assert (await admin.call("POST", "/v1/lobbies/NoSuchLobby/seal")).status == 404
    sealed = await admin.call("POST", seal_path, {})
    assert sealed.status == 200 and sealed.body["sealed"] is True
    await host.expect(SEAL, 0)

    # Close it with a reason.
    lobby_path = f"/v1/lobbies/{name}"
    assert (await admin.call("DELETE", lobby_path, {"reason": ""})).status == 400
    assert (await admin.call("DELETE", lobby_path, b" " * (MAX_BODY_BYTES + 1))).status == 413
    closed = await admin.call("DELETE", lobby_path, {"reason": "Server maintenance"})
    assert closed.body == {"name": name, "reason": "Server maintenance"}
    assert await host.wait_closed() == (4000, "Server maintenance")
    assert (await admin.call("DELETE", lobby_path)).status == 404
    assert (await admin.call("GET", lobby_path)).status == 404

    # Without the token, every operation is 401.
    for path, item in document["paths"].items():
        concrete = path.replace("{name}", name).replace("{id}", str(guest_id))
        for method in item:
            if method != "parameters":
                assert (await admin.call(method.upper(), concrete, token=None)).status == 401

    # The 503s of a cluster node (its Redis, or a lobby's owner, not
    # answering) are given in tests/cluster/test_cluster_admin.py.
    assert admin.schemas.seen == admin.schemas.documented() - CLUSTER_ONLY


# -- the token ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_only_the_exact_bearer_token_is_let_in(make_admin: Any) -> None:
    admin: Admin = await make_admin()
    refused = await admin.call("GET", "/v1/lobbies", token=b"admin-token-for-tests-012345678")
    assert refused.status == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.body == {"error": "missing or wrong bearer token"}
    assert (await admin.call("GET", "/v1/lobbies", token=ADMIN_TOKEN + b"9")).status == 401
    assert (await admin.call("GET", "/no/such/path", token=None)).status == 401
    basic = {b"authorization": [b"Basic " + ADMIN_TOKEN]}
    assert (await admin.call("GET", "/v1/lobbies", token=None, headers=basic)).status == 401
    twice = {b"authorization": [b"Bearer " + ADMIN_TOKEN, b"Bearer " + ADMIN_TOKEN]}
    assert (await admin.call("GET", "/v1/lobbies", token=None, headers=twice)).status == 401
    lower = {b"authorization": [b"bearer  " + ADMIN_TOKEN]}
    assert (await admin.call("GET", "/v1/lobbies", token=None, headers=lower)).status == 200
    with pytest.raises(ValueError, match="empty"):
        AdminResource(admin.server.service, b" \n")


@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(make_admin: Any) -> None:
    admin: Admin = await make_admin()
    for path in ("/", "/v1", "/v2/lobbies", "/v1/lobbies/x/y", "/v1/lobbies/x/peers"):
        assert (await admin.call("GET", path)).status == 404, path
    wrong = await admin.call("PUT", "/v1/lobbies")
    assert wrong.status == 405 and wrong.headers["allow"] == "GET, POST"
    wrong = await admin.call("POST", "/v1/lobbies/abc")
    assert wrong.status == 405 and wrong.headers["allow"] == "DELETE, GET"
    wrong = await admin.call("GET", "/v1/lobbies/abc/seal")
    assert wrong.status == 405 and wrong.headers["allow"] == "POST"
    assert (await admin.call("GET", "/v1/lobbies/")).status == 200


# -- bodies ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413(
    make_admin: Any,
) -> None:
    admin: Admin = await make_admin()
    body = orjson.dumps({"mode": "mesh"})
    padded = body + b" " * (MAX_BODY_BYTES - len(body))
    assert (await admin.call("POST", "/v1/lobbies", padded)).status == 201
    assert (await admin.call("POST", "/v1/lobbies", padded + b" ")).status == 413


class RawRequest(Protocol):
    """Writes ``data`` and collects the answer until the server closes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.received = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        self.done.callback(self.received)


async def raw_request(admin: Admin, data: bytes) -> bytes:
    endpoint = endpoints.TCP4ClientEndpoint(
        _reactor(), "127.0.0.1", admin.port.getHost().port, timeout=WAIT
    )
    protocol = RawRequest(data)
    await with_timeout(endpoints.connectProtocol(endpoint, protocol), WAIT)
    received: bytes = await with_timeout(protocol.done, WAIT)
    return received


@pytest_twisted.ensureDeferred
async def test_chunked_and_huge_bodies_are_413_without_being_kept(make_admin: Any) -> None:
    admin: Admin = await make_admin()
    head = (
        "POST /v1/lobbies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN.decode()}\r\nConnection: close\r\n"
    )
    chunk = b"{" + b" " * 40000
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    answer = await raw_request(admin, chunked)
    assert answer.startswith(b"HTTP/1.1 413 ")
    # Past what is worth reading: answered at once, the connection closed.
    size = MAX_DISCARDED_BYTES + 1
    huge = (head + f"Content-Length: {size}\r\n\r\n").encode() + b" " * size
    answer = await raw_request(admin, huge)
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert answer.endswith(orjson.dumps({"error": f"body over {MAX_BODY_BYTES} bytes"}))
    assert admin.server.service.lobbies() == []


# -- lobbies -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_without_token_auth_a_reservation_has_no_tokens_and_its_size_holds(
    make_admin: Any,
) -> None:
    admin: Admin = await make_admin()
    server = admin.server
    reserved = await admin.call("POST", "/v1/lobbies", {"size": 2, "players": ["a", "b"]})
    assert reserved.status == 201 and "tokens" not in reserved.body
    name = reserved.body["name"]
    assert reserved.body["size"] == 2
    host, _ = await join(server, "/", name)
    guest, _ = await join(server, "/", name)
    third = await server.connect()
    third.send(JOIN, 0, name)
    assert await third.wait_closed() == (4000, "Lobby is full")
    unlimited = await admin.call("POST", "/v1/lobbies")
    assert unlimited.body["size"] is None


@pytest_twisted.ensureDeferred
async def test_a_godot_3_peer_is_listed_with_the_line_framing(make_admin: Any) -> None:
    admin: Admin = await make_admin()
    server = admin.server
    client = await server.connect(raw=True)
    client.send_raw("J: \n")
    assert (await client.next()).startswith(b"I: 1\n")
    lobby = (await client.next()).decode().split("\n")[0][3:]
    (peer,) = (await admin.call("GET", f"/v1/lobbies/{lobby}")).body["peers"]
    assert peer["framing"] == "lines" and peer["identity"] is None


@pytest_twisted.ensureDeferred
async def test_sealing_an_unclaimed_reservation_lets_nobody_in_until_it_ends(
    make_admin: Any,
) -> None:
    admin: Admin = await make_admin()
    server = admin.server
    name = (await admin.call("POST", "/v1/lobbies", {"ttl": 60})).body["name"]
    sealed = await admin.call("POST", f"/v1/lobbies/{name}/seal")
    assert sealed.status == 200 and sealed.body["sealed"] is True
    client = await server.connect()
    client.send(JOIN, 0, name)
    assert await client.wait_closed() == (4000, "Lobby is sealed")
    server.clock.advance(server.service.config.seal_timeout)
    assert (await admin.call("GET", f"/v1/lobbies/{name}")).status == 404
    assert server.core_timers() == 0


@pytest_twisted.ensureDeferred
async def test_mounted_on_a_site_of_ones_own_it_answers_under_its_path(
    make_server: ServerMaker,
) -> None:
    server = await make_server()
    root = WebResource()
    root.putChild(b"admin", AdminResource(server.service, ADMIN_TOKEN, clock=server.clock))
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    port = await with_timeout(endpoint.listen(Site(root)), WAIT)
    try:
        admin = Admin(
            server,
            f"http://127.0.0.1:{port.getHost().port}/admin",
            SchemaCheck(openapi_document()),
            port,
        )
        reserved = await admin.call("POST", "/v1/lobbies")
        assert reserved.headers["location"] == f"/admin/v1/lobbies/{reserved.body['name']}"
        # A plain Site keeps the body, but the limit still holds.
        assert (await admin.call("POST", "/v1/lobbies", b" " * (MAX_BODY_BYTES + 1))).status == 413
    finally:
        await with_timeout(defer.maybeDeferred(port.stopListening), WAIT)


class LaterControl:
    """The server's own control methods, each answering a second later on
    the server's clock (as a cluster node's do after asking another node),
    or failing with `Unavailable` once ``down`` is set."""

    def __init__(self, service: Any, clock: Any) -> None:
        self.service = service
        self.clock = clock
        self.waiting = 0
        self.down = False

    def _later(self, answer: object) -> defer.Deferred[Any]:
        later: defer.Deferred[Any] = defer.Deferred()
        self.waiting += 1

        def answered() -> None:
            self.waiting -= 1
            if self.down:
                later.errback(Unavailable("node b did not answer in time"))
            else:
                later.callback(answer)

        self.clock.callLater(1, answered)
        return later

    def lobbies(self) -> defer.Deferred[Any]:
        return self._later(self.service.lobbies())

    def lobby(self, name: str) -> defer.Deferred[Any]:
        return self._later(self.service.lobby(name))

    def reserve_lobby(self, mesh: bool = True, ttl: float = 60.0, size: int | None = None) -> str:
        name: str = self.service.reserve_lobby(mesh, ttl, size)
        return name

    def seal_lobby(self, name: str) -> defer.Deferred[Any]:
        return self._later(self.service.seal_lobby(name))

    def close_lobby(self, name: str, reason: str = "") -> defer.Deferred[Any]:
        return self._later(self.service.close_lobby(name, reason))

    def kick(self, peer_id: int, reason: str = "") -> defer.Deferred[Any]:
        return self._later(self.service.kick(peer_id, reason))


@pytest_twisted.ensureDeferred
async def test_a_control_that_answers_later_is_waited_for_and_may_be_unavailable(
    make_server: ServerMaker,
) -> None:
    server = await make_server()
    control = LaterControl(server.service, server.clock)
    resource = AdminResource(control, ADMIN_TOKEN, clock=server.clock)
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    port = await with_timeout(endpoint.listen(AdminSite(resource)), WAIT)
    admin = Admin(
        server, f"http://127.0.0.1:{port.getHost().port}", SchemaCheck(openapi_document()), port
    )

    async def answered_later(method: str, path: str) -> Answer:
        call = defer.ensureDeferred(admin.call(method, path))
        for _ in range(400):  # until the request waits for its answer, 20 s at most
            if control.waiting:
                break
            await deferLater(_reactor(), 0.05)
        assert not call.called
        server.clock.advance(1)
        answer: Answer = await call
        return answer

    try:
        host, lobby = await server.create()
        listed = await answered_later("GET", "/v1/lobbies")
        assert [entry["name"] for entry in listed.body["lobbies"]] == [lobby]
        # Reserving answers with the lobby (asked later) too.
        reserving = defer.ensureDeferred(admin.call("POST", "/v1/lobbies"))
        for _ in range(400):
            if control.waiting:
                break
            await deferLater(_reactor(), 0.05)
        server.clock.advance(1)
        assert (await reserving).status == 201
        # A client that leaves before the answer: nothing is written for it.
        gone = defer.ensureDeferred(
            treq.request("GET", admin.base + f"/v1/lobbies/{lobby}", headers=_bearer())
        )
        for _ in range(400):
            if control.waiting:
                break
            await deferLater(_reactor(), 0.05)
        gone.cancel()
        gone.addErrback(lambda _: None)
        server.clock.advance(1)
        control.down = True
        for method, path in (
            ("GET", "/v1/lobbies"),
            ("GET", f"/v1/lobbies/{lobby}"),
            ("POST", f"/v1/lobbies/{lobby}/seal"),
        ):
            refused = await answered_later(method, path)
            assert refused.status == 503
            assert refused.body == {"error": "node b did not answer in time"}
        control.down = False
        closed = await answered_later("DELETE", f"/v1/lobbies/{lobby}")
        assert closed.body == {"name": lobby, "reason": "Lobby closed by the server"}
        assert await host.wait_closed() == (4000, "Lobby closed by the server")
    finally:
        await with_timeout(defer.maybeDeferred(port.stopListening), WAIT)


def _bearer() -> dict[bytes, list[bytes]]:
    return {b"authorization": [b"Bearer " + ADMIN_TOKEN]}


def test_the_document_is_openapi_3_1_and_lists_every_operation() -> None:
    document = openapi_document()
    validate_openapi(document)
    operations = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("/v1/lobbies", "get"),
        ("/v1/lobbies", "post"),
        ("/v1/lobbies/{name}", "get"),
        ("/v1/lobbies/{name}", "delete"),
        ("/v1/lobbies/{name}/seal", "post"),
        ("/v1/lobbies/{name}/peers/{id}", "delete"),
        ("/v1/openapi.json", "get"),
    }
