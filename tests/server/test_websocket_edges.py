"""WebSocket framing over real sockets, around the server's hot path: frames
coalesced or split by TCP, fragmentation, control frames between fragments,
UTF-8 validation, masking, reserved bits, sizes at every length encoding,
and closes. Frames are written raw, as no well-behaved client would."""

from __future__ import annotations

import base64
import json
import os
import struct

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Protocol

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.wsclient import RecordingClient, with_timeout
from ..support.wsframes import frame

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)


def message(type_: int, id_: int, data: str) -> bytes:
    return json.dumps({"type": type_, "id": id_, "data": data}).encode()


async def pair(server: RunningServer) -> tuple[RecordingClient, RecordingClient, int]:
    host, lobby = await server.create()
    guest, guest_id = await server.join(lobby)
    await host.expect(PEER_CONNECT, guest_id)
    return host, guest, guest_id


@pytest_twisted.ensureDeferred
async def test_many_frames_in_one_tcp_write(server: RunningServer) -> None:
    host, guest, guest_id = await pair(server)
    guest.transport.write(
        b"".join(frame(message(CANDIDATE, 1, str(n)), mask=os.urandom(4)) for n in range(100))
    )
    for n in range(100):
        await host.expect(CANDIDATE, guest_id, str(n))


@pytest_twisted.ensureDeferred
async def test_frames_dribbled_one_byte_at_a_time(server: RunningServer) -> None:
    host, guest, guest_id = await pair(server)
    data = frame(message(OFFER, 1, "ü" * 70)) + frame(message(ANSWER, 1, "x" * 300))
    for byte in data:
        guest.transport.write(bytes([byte]))
        await task.deferLater(reactor, 0, lambda: None)
    await host.expect(OFFER, guest_id, "ü" * 70)
    await host.expect(ANSWER, guest_id, "x" * 300)


@pytest_twisted.ensureDeferred
async def test_fragmented_messages_are_reassembled(server: RunningServer) -> None:
    host, guest, guest_id = await pair(server)
    guest.sendMessage(message(OFFER, 1, "fragmented ✓ " * 20), fragmentSize=7)
    await host.expect(OFFER, guest_id, "fragmented ✓ " * 20)
    # Plain frames after the fragments take the hot path again.
    guest.send(CANDIDATE, 1, "after")
    await host.expect(CANDIDATE, guest_id, "after")


@pytest_twisted.ensureDeferred
async def test_a_ping_between_fragments_is_answered_and_the_message_kept(
    server: RunningServer,
) -> None:
    host, guest, guest_id = await pair(server)
    whole = message(OFFER, 1, "split around a ping")
    pong: defer.Deferred[None] = defer.Deferred()
    guest.pongs[b"mid"] = pong
    guest.transport.write(
        frame(whole[:10], fin=False) + frame(b"mid", opcode=9) + frame(whole[10:], opcode=0)
    )
    await with_timeout(pong, 5)
    await host.expect(OFFER, guest_id, "split around a ping")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame(b'{"type":4,"id":1,"data":"\xff"}'), id="one frame"),
        pytest.param(
            frame(b'{"type":4,"id":1,"data":"\xe2\x82', fin=False) + frame(b'"}', opcode=0),
            id="truncated across fragments",
        ),
        pytest.param(frame(b'{"type":4,"id":1,"data":"\xed\xa0\x80"}'), id="surrogate"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_utf8_closes_with_1007_and_harms_no_one(
    server: RunningServer, bad: bytes
) -> None:
    host, guest, guest_id = await pair(server)
    other_host, other_lobby = await server.create()
    guest.transport.write(frame(message(CANDIDATE, 1, "before")) + bad)
    await host.expect(CANDIDATE, guest_id, "before")
    code, _ = await guest.wait_closed()
    assert code == 1007
    await host.expect(PEER_DISCONNECT, guest_id)
    other_host.send(SEAL)
    await other_host.expect(SEAL)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(frame(message(OFFER, 1, "x"), mask=None), id="unmasked"),
        pytest.param(frame(message(OFFER, 1, "x"), rsv=4), id="rsv1 without an extension"),
        pytest.param(frame(message(OFFER, 1, "x"), opcode=3), id="reserved opcode"),
        pytest.param(frame(b"x", opcode=0), id="continuation without a start"),
        pytest.param(frame(b"x" * 130, opcode=9), id="control frame over 125 bytes"),
        pytest.param(frame(b"x" * 10, length_bytes=2), id="non-minimal length"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_protocol_violations_close_with_1002(server: RunningServer, bad: bytes) -> None:
    host, guest, guest_id = await pair(server)
    guest.transport.write(bad)
    code, _ = await guest.wait_closed()
    assert code == 1002
    await host.expect(PEER_DISCONNECT, guest_id)


@pytest_twisted.ensureDeferred
async def test_text_then_binary_in_one_write(server: RunningServer) -> None:
    host, guest, guest_id = await pair(server)
    guest.transport.write(frame(message(OFFER, 1, "first")) + frame(b"\x00\x01", opcode=2))
    await host.expect(OFFER, guest_id, "first")
    assert await guest.wait_closed() == (4000, "Invalid transfer mode, must be text")


@pytest_twisted.ensureDeferred
async def test_text_then_close_in_one_write(server: RunningServer) -> None:
    host, guest, guest_id = await pair(server)
    guest.transport.write(
        frame(message(OFFER, 1, "last words")) + frame(struct.pack("!H", 1000) + b"bye", opcode=8)
    )
    await host.expect(OFFER, guest_id, "last words")
    await host.expect(PEER_DISCONNECT, guest_id)
    code, _ = await guest.wait_closed()
    assert code == 1000


@pytest.mark.parametrize("frame_size", [125, 126, 127, 1000, 65535])
@pytest_twisted.ensureDeferred
async def test_sizes_at_every_length_encoding_relay_byte_for_byte(
    server: RunningServer, frame_size: int
) -> None:
    """Messages whose frames sit at the edges of the 7-bit and 16-bit length
    encodings, both ways."""
    host, guest, guest_id = await pair(server)
    for sender, destination, receiver, seen_as in (
        (guest, 1, host, guest_id),
        (host, guest_id, guest, 1),
    ):
        overhead = len(message(CANDIDATE, destination, ""))
        data = "".join(chr(0x21 + (n * 7919) % 0x5A) for n in range(frame_size - overhead))
        data = data.replace("\\", "/").replace('"', "'")
        sent = message(CANDIDATE, destination, data)
        assert len(sent) == frame_size
        sender.sendMessage(sent)
        await receiver.expect(CANDIDATE, seen_as, data)


@pytest_twisted.ensureDeferred
async def test_a_message_of_exactly_the_size_limit_is_accepted(make_server: ServerMaker) -> None:
    server = await make_server(SignalingConfig(max_message_size=65536))
    host, guest, guest_id = await pair(server)
    overhead = len(message(CANDIDATE, 1, ""))
    exact = message(CANDIDATE, 1, "e" * (65536 - overhead))
    assert len(exact) == 65536  # sent with a 64-bit length: Autobahn's path
    guest.sendMessage(exact)
    await host.expect(CANDIDATE, guest_id, "e" * (65536 - overhead))
    guest.sendMessage(exact + b" ")
    code, _ = await guest.wait_closed()
    assert code == 1009


@pytest_twisted.ensureDeferred
async def test_a_message_in_the_same_packet_as_the_handshake(server: RunningServer) -> None:
    """A client may send its first frame right behind its upgrade request."""
    port = server.service.port.getHost().port
    received: defer.Deferred[bytes] = defer.Deferred()

    class Eager(Protocol):
        buffer = b""

        def connectionMade(self) -> None:
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
            self.transport.write(request.encode() + frame(message(JOIN, 0, "")))

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data
            if self.buffer.count(b'"type":') >= 2 and not received.called:
                received.callback(self.buffer)
                self.transport.abortConnection()

    reactor.connectTCP("127.0.0.1", port, ClientFactory.forProtocol(Eager))
    response = await with_timeout(received, 5)
    head, _, frames = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    first = b'{"type":1,"id":1,"data":"true"}'
    assert frames.startswith(bytes([0x81, len(first)]) + first)
    assert b'{"type":0,"id":0,"data":"' in frames
