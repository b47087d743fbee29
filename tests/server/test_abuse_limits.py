"""Per-address and per-connection limits over real sockets: 127.0.0.1 is the
greedy address and 127.0.0.2 plays everyone else."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from webrtc_signal import SignalingConfig
from webrtc_signal.protocol.limits import LOBBY_BURST, MAX_FRAGMENTS, PING_BURST

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import RawWebSocket, connect_from, raw_cleanup, raw_connect
from ..support.wsclient import RecordingClient
from ..support.wsframes import frame

__all__ = ["raw_cleanup"]  # a fixture: aborts raw clients after each test

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)
OTHER = "127.0.0.2"
LOBBIES_FROM_ADDRESS = (4000, "Too many lobbies from your address")


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def create_from(server: RunningServer, source: str = "127.0.0.1") -> RecordingClient:
    client = await connect_from(server.url, source)
    server.clients.append(client)
    client.send(JOIN, 0, "")
    return client


async def created(client: RecordingClient) -> str:
    await client.expect(ID, 1)
    return str((await client.expect(JOIN, 0))["data"])


# -- connections per address -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_connections_per_address_past_the_limit_get_429(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_peers_per_address=3))
    port = port_of(server)
    first = [await raw_connect(port) for _ in range(3)]
    assert [c.status for c in first] == [101, 101, 101]
    refused = await raw_connect(port)
    assert refused.status == 429
    assert "Too many connections" in refused.response_head
    await refused.wait_lost()
    # Another address is unaffected.
    assert (await raw_connect(port, source=OTHER)).status == 101
    # A slot comes back when a connection goes.
    first[0].transport.loseConnection()
    await first[0].wait_lost()
    for _ in range(100):
        if server.service.admission.peers_per_address["127.0.0.1"] == 2:
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    assert (await raw_connect(port)).status == 101


@pytest_twisted.ensureDeferred
async def test_the_connection_limit_per_address_can_be_turned_off(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_peers_per_address=0))
    clients = [await raw_connect(port_of(server)) for _ in range(5)]
    assert [c.status for c in clients] == [101] * 5


# -- lobbies per address ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_open_lobbies_per_address_are_limited(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobbies_per_address=2, max_lobby_rate=0))
    hosts = [await create_from(server) for _ in range(2)]
    for host in hosts:
        await created(host)
    greedy = await create_from(server)
    assert await greedy.wait_closed() == LOBBIES_FROM_ADDRESS
    # Another address may still create, and joining is never limited.
    other = await create_from(server, OTHER)
    lobby = await created(other)
    await server.join(lobby)
    # When one of its lobbies closes, the address may create one again.
    hosts[0].sendClose()
    await hosts[0].wait_closed()
    again = await create_from(server)
    await created(again)


@pytest_twisted.ensureDeferred
async def test_lobby_creation_rate_per_address_is_a_token_bucket(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(max_lobby_rate=2, max_lobbies_per_address=0))
    for _ in range(LOBBY_BURST):
        await created(await create_from(server))
    fast = await create_from(server)
    assert await fast.wait_closed() == LOBBIES_FROM_ADDRESS
    assert await created(await create_from(server, OTHER))
    # Half a second at 2 per second earns one more, and only one.
    server.clock.advance(0.5)
    await created(await create_from(server))
    late = await create_from(server)
    assert await late.wait_closed() == LOBBIES_FROM_ADDRESS


@pytest_twisted.ensureDeferred
async def test_lobby_limits_off(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobby_rate=0, max_lobbies_per_address=0))
    for _ in range(LOBBY_BURST + 5):
        await created(await create_from(server))


# -- messages per connection ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_message_rate_past_the_burst_closes_with_4000(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_message_rate=5, max_message_burst=10))
    host, lobby = await server.create()  # its JOIN is one message
    talker, talker_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, talker_id)
    for n in range(9):  # ten with the JOIN: the whole burst
        talker.send(CANDIDATE, 1, str(n))
    for n in range(9):
        await host.expect(CANDIDATE, talker_id, str(n))
    server.clock.advance(1)  # five more tokens
    for n in range(5):
        talker.send(CANDIDATE, 1, f"later {n}")
    for n in range(5):
        await host.expect(CANDIDATE, talker_id, f"later {n}")
    talker.send(CANDIDATE, 1, "one too many")
    assert await talker.wait_closed() == (4000, "Too many messages")
    await host.expect(PEER_DISCONNECT, talker_id)
    # The host, on its own bucket, still talks.
    guest, guest_id = await server.join(lobby)
    host.send(OFFER, guest_id, "fine")
    await guest.expect(OFFER, 1, "fine")


@pytest_twisted.ensureDeferred
async def test_message_rate_off(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_message_rate=0))
    host, lobby = await server.create()
    talker, talker_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, talker_id)
    for n in range(500):
        talker.send(CANDIDATE, 1, str(n))
    for n in range(500):
        await host.expect(CANDIDATE, talker_id, str(n))


# -- lobby age ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_unsealed_lobby_expires_after_max_lobby_age(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_lobby_age=30, ping_interval=0))
    host, lobby = await server.create()
    guest, _ = await server.join(lobby)
    sealed_host, sealed_lobby = await server.create()
    sealed_host.send(SEAL)
    await sealed_host.expect(SEAL)
    await host.expect(PEER_CONNECT)
    server.clock.advance(29.9)
    await host.round_trip()
    assert host.pending() == []
    server.clock.advance(0.1)
    assert await host.wait_closed() == (4000, "Lobby expired")
    assert await guest.wait_closed() == (4000, "Lobby expired")
    # A sealed lobby ends by its seal timeout (10 s), not by age.
    assert await sealed_host.wait_closed() == (1000, "Seal complete")
    assert server.factory.signaling.lobbies == {}
    assert server.core_timers() == 0


@pytest_twisted.ensureDeferred
async def test_lobbies_do_not_expire_by_default(server: RunningServer) -> None:
    host, lobby = await server.create()
    guest, guest_id = await server.join(lobby)
    for _ in range(10):
        server.clock.advance(9)  # answered pings keep both alive
        await host.round_trip()
        await guest.round_trip()
    host.send(OFFER, guest_id, "still open")
    await guest.expect(OFFER, 1, "still open")


# -- control and fragment floods --------------------------------------------------------------


async def joined_raw(server: RunningServer, lobby: str) -> RawWebSocket:
    client = await raw_connect(port_of(server))
    client.send_json(JOIN, 0, lobby)
    while (await client.next_json())["type"] != JOIN:
        pass
    return client


@pytest_twisted.ensureDeferred
async def test_pongs_go_out_in_one_write_per_batch(server: RunningServer) -> None:
    host, lobby = await server.create()
    client = await joined_raw(server, lobby)
    (connection,) = [
        c
        for c in server.engine.connections
        if c.signaling_peer.lobby is None or c.signaling_peer.lobby.host.handle is not c
    ]
    writes: list[int] = []
    transport = connection.transport
    write_some = transport.writeSomeData

    def counting(data: Any) -> Any:
        writes.append(len(data))
        return write_some(data)

    transport.writeSomeData = counting
    client.transport.write(b"".join(frame(b"p%d" % n, opcode=9) for n in range(PING_BURST)))
    pongs = [await client.next_frame() for _ in range(PING_BURST)]
    assert pongs == [(10, b"p%d" % n) for n in range(PING_BURST)]
    assert len(writes) == 1


@pytest_twisted.ensureDeferred
async def test_a_ping_flood_closes_the_sender_with_1008(server: RunningServer) -> None:
    canary_host, lobby = await server.create()
    canary, canary_id = await server.join(lobby)
    flooder = await joined_raw(server, lobby)
    flooder.transport.write(frame(b"x", opcode=9) * 10_000)
    assert await flooder.wait_close() == (1008, "Too many pings")
    canary.send(CANDIDATE, 1, "alive")
    await canary_host.expect(PEER_CONNECT, canary_id)
    await canary_host.expect(PEER_CONNECT)
    await canary_host.expect(PEER_DISCONNECT)
    await canary_host.expect(CANDIDATE, canary_id, "alive")


@pytest.mark.parametrize("fragments", [MAX_FRAGMENTS, MAX_FRAGMENTS + 1, 60_000])
@pytest_twisted.ensureDeferred
async def test_fragments_per_message_are_limited(server: RunningServer, fragments: int) -> None:
    host, lobby = await server.create()
    client = await joined_raw(server, lobby)
    await host.expect(PEER_CONNECT)
    text = json.dumps({"type": CANDIDATE, "id": 1, "data": "f" * fragments})
    head, rest = text[: -fragments + 1], text[-fragments + 1 :]
    pieces = [head.encode()] + [c.encode() for c in rest]
    assert len(pieces) == fragments
    data = frame(pieces[0], fin=False)
    data += b"".join(frame(p, opcode=0, fin=False) for p in pieces[1:-1])
    data += frame(pieces[-1], opcode=0)
    client.transport.write(data)
    if fragments <= MAX_FRAGMENTS:
        message = await host.expect(CANDIDATE)
        assert message["data"] == "f" * fragments
    else:
        assert await client.wait_close() == (1008, "Too many fragments")
        await host.expect(PEER_DISCONNECT)
