"""The Godot 3 line protocol over real WebSocket connections, alone and mixed
with Godot 4 JSON peers in one lobby."""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import RecordingClient

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)


async def line(client: RecordingClient) -> str:
    return (await client.next()).decode()


async def line_create(server: RunningServer) -> tuple[RecordingClient, str]:
    host = await server.connect(raw=True)
    host.send_raw("J: \n")
    assert await line(host) == "I: 1\n"
    joined = re.fullmatch(r"J: ([A-Za-z0-9]{16,})\n", await line(host))
    assert joined, "no J: line"
    return host, joined.group(1)


async def line_join(server: RunningServer, lobby: str, others: int) -> tuple[RecordingClient, int]:
    """Join ``lobby`` over the line protocol; ``others`` members are already in."""
    client = await server.connect(raw=True)
    client.send_raw(f"J: {lobby}\n")
    my_id = re.fullmatch(r"I: (\d+)\n", await line(client))
    assert my_id
    for _ in range(others):
        assert re.fullmatch(r"N: \d+\n", await line(client))
    assert await line(client) == f"J: {lobby}\n"
    return client, int(my_id.group(1))


async def closed(client: RecordingClient) -> tuple[int | None, str | None]:
    return await client.wait_closed()


# -- a lobby of line peers -----------------------------------------------------

PAYLOADS = [
    "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\n",
    "\n0\n0\ncandidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ srflx",
    "ünïcödé ✓ 漢字 😀\n\nblank lines\n",
    "",
]


@pytest_twisted.ensureDeferred
async def test_line_lobby_create_join_relay_seal_and_timed_close(
    make_server: ServerMaker,
) -> None:
    server = await make_server(SignalingConfig(seal_timeout=5))
    host, lobby = await line_create(server)
    a, a_id = await line_join(server, lobby, others=1)
    assert await line(host) == f"N: {a_id}\n"
    b = await server.connect(raw=True)
    b.send_raw(f"J: {lobby}\n")
    b_id = int((await line(b))[3:-1])
    assert {await line(b), await line(b)} == {"N: 1\n", f"N: {a_id}\n"}
    assert await line(b) == f"J: {lobby}\n"
    assert await line(host) == f"N: {b_id}\n"
    assert await line(a) == f"N: {b_id}\n"

    routes = [
        (a, 1, host, a_id),
        (host, a_id, a, 1),
        (a, b_id, b, a_id),
        (b, a_id, a, b_id),
        (b, 1, host, b_id),
        (host, b_id, b, 1),
    ]
    for letter in "OAC":
        for payload in PAYLOADS:
            for sender, destination, receiver, seen_as in routes:
                sender.send_raw(f"{letter}: {destination}\n{payload}")
                assert await receiver.next() == f"{letter}: {seen_as}\n{payload}".encode()

    host.send_raw("S: \n")
    for client in (host, a, b):
        assert await line(client) == "S: \n"
    late = await server.connect(raw=True)
    late.send_raw(f"J: {lobby}\n")
    assert await closed(late) == (4000, "Lobby is sealed")
    server.clock.advance(5)
    for client in (host, a, b):
        assert await closed(client) == (1000, "Seal complete")


@pytest_twisted.ensureDeferred
async def test_line_peer_leaving_and_host_leaving(server: RunningServer) -> None:
    host, lobby = await line_create(server)
    a, a_id = await line_join(server, lobby, others=1)
    b, b_id = await line_join(server, lobby, others=2)
    assert await line(host) == f"N: {a_id}\n"
    assert await line(host) == f"N: {b_id}\n"
    assert await line(a) == f"N: {b_id}\n"
    b.sendClose(1000)
    assert await line(host) == f"D: {b_id}\n"
    assert await line(a) == f"D: {b_id}\n"
    host.dropConnection(abort=True)
    assert await closed(a) == (4000, "Room host has disconnected")


# -- mixed lobbies -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_json_host_with_line_and_json_guests(server: RunningServer) -> None:
    host, lobby = await server.create(mesh=True)
    g3, g3_id = await line_join(server, lobby, others=1)
    g4 = await server.connect()
    g4.send(JOIN, 0, lobby)
    g4_id = (await g4.expect(ID, data="true"))["id"]
    assert {(await g4.expect(PEER_CONNECT))["id"] for _ in range(2)} == {1, g3_id}
    await g4.expect(JOIN, 0, lobby)
    await host.expect(PEER_CONNECT, g3_id)
    await host.expect(PEER_CONNECT, g4_id)
    assert await line(g3) == f"N: {g4_id}\n"

    # Godot 3 sends a candidate as "C: dest\n\nmid\nindex\nsdp"; Godot 4 as
    # data "\nmid\nindex\nsdp". The payload after the first newline is the data.
    candidate = "\n0\n0\ncandidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    g3.send_raw(f"C: 1\n{candidate}")
    await host.expect(CANDIDATE, g3_id, candidate)
    g3.send_raw(f"O: {g4_id}\nsdp from godot 3 ✓")
    await g4.expect(OFFER, g3_id, "sdp from godot 3 ✓")
    host.send(ANSWER, g3_id, "sdp from godot 4\r\n")
    assert await g3.next() == b"A: 1\nsdp from godot 4\r\n"
    g4.send(CANDIDATE, g3_id, candidate)
    assert await g3.next() == f"C: {g4_id}\n{candidate}".encode()

    host.send(SEAL)
    await host.expect(SEAL)
    await g4.expect(SEAL)
    assert await line(g3) == "S: \n"
    g4.sendClose(1000)
    assert await line(g3) == f"D: {g4_id}\n"
    await host.expect(PEER_DISCONNECT, g4_id)


@pytest_twisted.ensureDeferred
async def test_line_host_with_a_json_guest(server: RunningServer) -> None:
    host, lobby = await line_create(server)
    guest = await server.connect()
    guest.send(JOIN, 1, lobby)
    # Line lobbies are mesh, whatever the joiner asks for.
    guest_id = (await guest.expect(ID, data="true"))["id"]
    await guest.expect(PEER_CONNECT, 1)
    await guest.expect(JOIN, 0, lobby)
    assert await line(host) == f"N: {guest_id}\n"
    guest.send(OFFER, 1, "offer\nwith\nlines")
    assert await host.next() == f"O: {guest_id}\noffer\nwith\nlines".encode()
    host.send_raw(f"A: {guest_id}\nanswer ü")
    await guest.expect(ANSWER, 1, "answer ü")
    guest.send(SEAL)
    assert await guest.wait_closed() == (4000, "Only host can seal the lobby")
    assert await line(host) == f"D: {guest_id}\n"


@pytest_twisted.ensureDeferred
async def test_a_json_client_server_lobby_shows_a_line_guest_only_the_host(
    server: RunningServer,
) -> None:
    host, lobby = await server.create(mesh=False)
    g4, g4_id = await server.join(lobby)
    g3 = await server.connect(raw=True)
    g3.send_raw(f"J: {lobby}\n")
    g3_id = int((await line(g3))[3:-1])
    assert await line(g3) == "N: 1\n"
    assert await line(g3) == f"J: {lobby}\n"
    await host.expect(PEER_CONNECT, g4_id)
    await host.expect(PEER_CONNECT, g3_id)
    g3.send_raw(f"O: {g4_id}\nnot allowed")
    assert await closed(g3) == (4000, "Invalid destination")
    await host.expect(PEER_DISCONNECT, g3_id)


# -- the close table, line protocol --------------------------------------------


@pytest.mark.parametrize(
    ("before_joining", "reason"),
    [
        ("J: NoSuchLobby0000\n", "Lobby does not exists"),
        ("O: 1\nsdp", "Invalid message when not in a lobby"),
        ("S: \n", "Invalid message when not in a lobby"),
        ("X: 1\n", "Invalid message when not in a lobby"),
        ("J: ", "Invalid message format"),
        ("J\n", "Invalid message format"),
        ("Jx lobby\n", "Invalid message format"),
        ("O: abc\nsdp", "Invalid message format"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_close_table_before_joining(
    server: RunningServer, before_joining: str, reason: str
) -> None:
    client = await server.connect(raw=True)
    client.send_raw(before_joining)
    assert await closed(client) == (4000, reason)


@pytest.mark.parametrize(
    ("in_lobby", "reason"),
    [
        ("J: \n", "Already in a lobby"),
        ("J: {lobby}\n", "Already in a lobby"),
        ("S: \n", "Only host can seal the lobby"),
        ("O: 999\nsdp", "Invalid destination"),
        ("C: {self}\nsdp", "Invalid destination"),
        ("A: 0\nsdp", "Invalid destination"),
        ("X: 1\n", "Invalid command"),
        ("I: 1\n", "Invalid command"),
        ("N: 1\n", "Invalid command"),
        ("O: 1", "Invalid message format"),
        ("O: one\nsdp", "Invalid message format"),
        ('{{"type": 4, "id": 1, "data": ""}}', "Invalid message format"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_close_table_in_a_lobby(server: RunningServer, in_lobby: str, reason: str) -> None:
    host, lobby = await line_create(server)
    guest, guest_id = await line_join(server, lobby, others=1)
    assert await line(host) == f"N: {guest_id}\n"
    guest.send_raw(in_lobby.format(lobby=lobby, self=guest_id))
    assert await closed(guest) == (4000, reason)
    assert await line(host) == f"D: {guest_id}\n"


@pytest_twisted.ensureDeferred
async def test_a_json_connection_sending_a_line_is_a_format_error(server: RunningServer) -> None:
    host, lobby = await server.create()
    host.send_raw("S: \n")
    assert await closed(host) == (4000, "Invalid message format")


@pytest_twisted.ensureDeferred
async def test_binary_frame_from_a_line_peer(server: RunningServer) -> None:
    host, lobby = await line_create(server)
    host.send_raw(b"S: \n", binary=True)
    assert await closed(host) == (4000, "Invalid transfer mode, must be text")


@pytest_twisted.ensureDeferred
async def test_line_limits_and_join_timeout(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_peers=3, max_lobbies=1, join_timeout=2))
    host, lobby = await line_create(server)
    extra = await server.connect(raw=True)
    extra.send_raw("J: \n")
    assert await closed(extra) == (4000, "Too many lobbies open, disconnecting")
    guest, _ = await line_join(server, lobby, others=1)
    idle = await server.connect(raw=True)
    over = await server.connect(raw=True)
    assert await closed(over) == (4000, "Too many peers connected")
    server.clock.advance(2)
    assert await closed(idle) == (4000, "Have not joined lobby yet")
    assert not guest.closed.called
