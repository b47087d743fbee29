"""The admin API on a cluster (docs/admin-api.md, docs/cluster.md): any
node's API lists every lobby of every live node and seals, closes and kicks
in a lobby another node runs; a reservation is made on the node asked and
joins from anywhere; a node that does not answer in time is left out of
the list and is a 503 for a command on its lobby, as Redis being unreachable
is; a dead node is left out. Every answer is checked against the OpenAPI
document. Nodes in the test's process (their clocks driven by the test) and
twistd nodes, one real redis-server, real HTTP and WebSocket clients."""

from __future__ import annotations

import functools
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest_twisted
import treq
import txredisapi
from twisted.internet import defer, reactor, task

from webrtc_signal.cluster.control import ASK_TIMEOUT
from webrtc_signal.cluster.redis_bus import PREFIX
from webrtc_signal.server.admin import openapi_document

from ..server.test_admin import CLUSTER_ONLY, SchemaCheck
from ..support.cluster import ADMIN_TOKEN, InProcessNode, Node, start_in_process
from ..support.redis import RedisServer, redis_fixture
from ..support.wsclient import RecordingClient, connect, with_timeout

__all__ = ["redis_fixture"]

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, SEAL = 0, 1, 2, 3, 7
WAIT = 15.0
SCHEMAS = SchemaCheck(openapi_document())


async def call(base: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """``method path`` on the admin API at ``base``, its answer checked
    against the OpenAPI document."""
    response = await with_timeout(
        treq.request(
            method,
            base + path,
            data=orjson.dumps(body) if body is not None else None,
            headers={b"authorization": [b"Bearer " + ADMIN_TOKEN]},
            persistent=False,
        ),
        WAIT,
    )
    answer = orjson.loads(await with_timeout(treq.content(response), WAIT))
    SCHEMAS.check(method, path, response.code, answer)
    return response.code, answer


async def expired(redis: RedisServer, node_id: str) -> bool:
    """Whether Redis no longer holds node ``node_id``'s liveness key."""
    connecting = txredisapi.Connection("127.0.0.1", redis.port, reconnect=False)
    connection: Any = await with_timeout(connecting, WAIT)
    try:
        return await with_timeout(connection.exists(f"{PREFIX}alive:{node_id}"), WAIT) == 0
    finally:
        await with_timeout(connection.disconnect(), WAIT)


async def until(condition: Any, what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"timed out waiting until {what}")


async def answered_late(node: InProcessNode, method: str, path: str) -> tuple[int, Any]:
    """A call whose answer waits for another node: the node's clock is
    moved past the ask timeout once the ask is out."""
    asked = defer.ensureDeferred(call(node.admin_url, method, path))
    control = node.service.admin_control

    async def waiting() -> bool:
        return bool(getattr(control, "waiting", None))

    await until(waiting, "the node asks another")
    node.clock.advance(ASK_TIMEOUT)
    result: tuple[int, Any] = await asked
    return result


@pytest_twisted.async_yield_fixture
async def nodes(redis: RedisServer) -> AsyncIterator[list[InProcessNode]]:
    started: list[InProcessNode] = []
    try:
        for name in ("a", "b", "c"):
            started.append(await start_in_process(name, redis.url))
        yield started
    finally:
        for node in started:
            await node.stop()


async def create(node: InProcessNode | Node, path: str = "/") -> tuple[RecordingClient, str]:
    client = await (node.connect(path) if isinstance(node, InProcessNode) else connect(node.url))
    client.send(JOIN, 0, "")
    await client.expect(ID, 1)
    return client, (await client.next(WAIT))["data"]


async def join(node: InProcessNode, lobby: str) -> tuple[RecordingClient, int]:
    client = await node.connect()
    client.send(JOIN, 0, lobby)
    my_id = (await client.next(WAIT))["id"]
    while (await client.next(WAIT))["type"] != JOIN:
        pass
    return client, my_id


@pytest_twisted.ensureDeferred
async def test_one_nodes_admin_api_lists_seals_kicks_and_closes_another_nodes_lobby(
    nodes: list[InProcessNode],
) -> None:
    a, b, c = nodes
    api = b.admin_url
    host, lobby = await create(a)
    remote, remote_id = await join(c, lobby)
    await host.expect(PEER_CONNECT, remote_id)
    local, local_id = await join(a, lobby)
    await host.expect(PEER_CONNECT, local_id)
    _, elsewhere = await create(c)

    # Reserved on the node asked; joinable from any other.
    status, reserved = await call(api, "POST", "/v1/lobbies", {"size": 2})
    assert status == 201 and reserved["members"] == 0
    assert reserved["name"] in b.service.engine.core.lobbies
    claimer, _ = await join(c, reserved["name"])

    status, listed = await call(api, "GET", "/v1/lobbies")
    assert status == 200
    by_name = {entry["name"]: entry for entry in listed["lobbies"]}
    assert set(by_name) == {lobby, elsewhere, reserved["name"]}
    assert by_name[reserved["name"]]["members"] == 1
    status, one = await call(api, "GET", f"/v1/lobbies/{lobby}")
    assert status == 200 and one == by_name[lobby]
    assert [peer["id"] for peer in one["peers"]][1:] == [remote_id, local_id]
    assert {peer["framing"] for peer in one["peers"]} == {"json"}
    assert (await call(api, "GET", "/v1/lobbies/NoSuchLobbyAnywhere"))[0] == 404

    # Kicks: a member connected to a third node, then one on the owner.
    status, kicked = await call(
        api, "DELETE", f"/v1/lobbies/{lobby}/peers/{remote_id}", {"reason": "Cheating"}
    )
    assert status == 200 and kicked == {"lobby": lobby, "id": remote_id, "reason": "Cheating"}
    assert await remote.wait_closed() == (4000, "Cheating")
    await host.expect(PEER_DISCONNECT, remote_id)
    assert (await call(api, "DELETE", f"/v1/lobbies/{lobby}/peers/{local_id}"))[0] == 200
    assert await local.wait_closed() == (4000, "Kicked by the server")
    await host.expect(PEER_DISCONNECT, local_id)
    assert (await call(api, "DELETE", f"/v1/lobbies/{lobby}/peers/{remote_id}"))[0] == 404

    # Seal, then close, on the owner.
    status, sealed = await call(api, "POST", f"/v1/lobbies/{lobby}/seal")
    assert status == 200 and sealed["sealed"] is True
    await host.expect(SEAL)
    assert a.service.engine.core.lobbies[lobby].sealed
    status, closed = await call(api, "DELETE", f"/v1/lobbies/{lobby}", {"reason": "Match over"})
    assert status == 200 and closed == {"name": lobby, "reason": "Match over"}
    assert await host.wait_closed() == (4000, "Match over")
    assert (await call(api, "GET", f"/v1/lobbies/{lobby}"))[0] == 404
    assert (await call(api, "DELETE", f"/v1/lobbies/{lobby}"))[0] == 404
    assert (await call(api, "POST", f"/v1/lobbies/{lobby}/seal"))[0] == 404
    claimer.sendClose(1000)


@pytest_twisted.ensureDeferred
async def test_a_silent_node_is_left_out_of_the_list_and_a_503_for_its_lobby(
    redis: RedisServer,
) -> None:
    """A node that stops answering (SIGSTOP: alive in Redis, deaf on the
    bus), then Redis itself gone."""
    silent = Node("silent", redis.url, ["--cluster-period", "5", "--cluster-expiry", "120"])
    await silent.start()
    asking = await start_in_process("asking", redis.url)
    try:
        host, lobby = await create(silent)
        _, mine = await create(asking)
        assert silent.process is not None
        silent.process.transport.signalProcess("STOP")
        status, listed = await answered_late(asking, "GET", "/v1/lobbies")
        assert status == 200 and [entry["name"] for entry in listed["lobbies"]] == [mine]
        for method, path in (
            ("GET", f"/v1/lobbies/{lobby}"),
            ("POST", f"/v1/lobbies/{lobby}/seal"),
            ("DELETE", f"/v1/lobbies/{lobby}"),
            ("DELETE", f"/v1/lobbies/{lobby}/peers/1234"),
        ):
            status, answer = await answered_late(asking, method, path)
            assert status == 503, (method, path, answer)
            assert answer["error"].endswith("did not answer in time")
        # Its own lobbies are still this node's to control.
        assert (await call(asking.admin_url, "GET", f"/v1/lobbies/{mine}"))[0] == 200
        await redis.stop()

        async def down() -> bool:
            assert asking.service.node is not None
            return not asking.service.node.bus.up

        await until(down, "the node sees redis gone")
        status, answer = await call(asking.admin_url, "GET", "/v1/lobbies")
        assert status == 503 and answer == {"error": "redis unreachable"}
        assert (await call(asking.admin_url, "GET", f"/v1/lobbies/{lobby}"))[0] == 503
        assert (await call(asking.admin_url, "GET", f"/v1/lobbies/{mine}"))[0] == 200
        assert SCHEMAS.seen >= CLUSTER_ONLY
    finally:
        if silent.process is not None and not silent.process.ended.called:
            silent.process.transport.signalProcess(signal.SIGCONT)
        await asking.stop()
        await silent.stop()


PORT_LINE = r"serving the admin API on 127\.0\.0\.1 port (\d+)"


@pytest_twisted.ensureDeferred
async def test_through_twistd_a_dead_node_is_left_out(redis: RedisServer, tmp_path: Path) -> None:
    token = tmp_path / "admin-token"
    token.write_bytes(ADMIN_TOKEN + b"\n")
    dying = Node("dying", redis.url, ["--max-list-rate", "0"])
    asked = Node(
        "asked",
        redis.url,
        ["--admin", "tcp:0:interface=127.0.0.1", "--admin-token-file", str(token)],
    )
    await dying.start()
    await asked.start()
    try:
        assert asked.process is not None
        found = re.search(PORT_LINE, asked.process.output)
        port = found.group(1) if found else (await asked.process.wait_for_match(PORT_LINE))[1]
        api = f"http://127.0.0.1:{port}"
        client = await connect(dying.url + "/?listed=1&title=Doomed")
        client.send(JOIN, 0, "")
        await client.expect(ID, 1)
        lobby = (await client.next(WAIT))["data"]
        _, kept = await create(asked)
        status, listed = await call(api, "GET", "/v1/lobbies")
        assert {entry["name"] for entry in listed["lobbies"]} == {lobby, kept}
        dying.kill()
        # Asked while its liveness key stands, the node would be waited for
        # ASK_TIMEOUT and left out as one that does not answer (the test
        # above); a dead node is one whose key has expired.
        await until(functools.partial(expired, redis, "dying"), "the dead node's key expires")

        async def gone() -> bool:
            status, listed = await call(api, "GET", "/v1/lobbies")
            return status == 200 and [entry["name"] for entry in listed["lobbies"]] == [kept]

        await until(gone, "the dead node's lobby is left out")
        assert (await call(api, "GET", f"/v1/lobbies/{lobby}"))[0] == 404
        assert (await call(api, "DELETE", f"/v1/lobbies/{lobby}"))[0] == 404
    finally:
        await asked.stop()
        await dying.stop()
