"""The Godot 3 line framing, and how a connection's first message picks a codec."""

from __future__ import annotations

import pytest

from webrtc_signal.protocol.codec import (
    JSON_CODEC,
    LINE_CODEC,
    UNKNOWN_LETTER_TYPE,
    FormatError,
    codec_for,
)
from webrtc_signal.protocol.messages import Identity, Join, Message
from webrtc_signal.protocol.topology import CLIENT_SERVER, MESH

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # The line framing has no topology flag: its lobbies are meshes.
        (b"J: \n", Join("", MESH)),
        (b"J: AbCdEf0123456789\n", Join("AbCdEf0123456789", MESH)),
        (b"J:  padded \t\n", Join("padded", MESH)),
        (b"J: lobby\nignored payload", Join("lobby", MESH)),
        (b"S: \n", Message(SEAL, 0, "")),
        (b"S: whatever\n", Message(SEAL, 0, "")),
        (
            b"O: 1\nv=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n",
            Message(OFFER, 1, "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"),
        ),
        (b"A: 12345\nanswer", Message(ANSWER, 12345, "answer")),
        (
            b"C: 7\n\n0\n0\ncandidate:1 1 udp 1 1.2.3.4 5 typ host",
            Message(CANDIDATE, 7, "\n0\n0\ncandidate:1 1 udp 1 1.2.3.4 5 typ host"),
        ),
        (b"O: 2147483647\n", Message(OFFER, 2147483647, "")),
        (b"O:  42 \nx", Message(OFFER, 42, "x")),
        (b"C: 0\n", Message(CANDIDATE, 0, "")),
        ("O: 3\nünï ✓ 😀\n\nmore\n".encode(), Message(OFFER, 3, "ünï ✓ 😀\n\nmore\n")),
        # Server-to-client letters from a client decode to their types; the
        # core then answers them as it answers those JSON types.
        (b"I: 5\n", Message(ID, 0, "")),
        (b"N: 5\n", Message(PEER_CONNECT, 0, "")),
        (b"D: 5\n", Message(PEER_DISCONNECT, 0, "")),
    ],
)
def test_decode_every_command(line: bytes, expected: Message | Join) -> None:
    assert LINE_CODEC.decode(line.decode()) == expected


@pytest.mark.parametrize("letter", ["X", "j", "o", "Z", "{", "1", "é"])
def test_an_unknown_letter_decodes_to_a_type_no_framing_defines(letter: str) -> None:
    message = LINE_CODEC.decode(f"{letter}: 5\npayload")
    assert message.type == UNKNOWN_LETTER_TYPE
    assert message.type not in range(8)
    assert message.type < 0  # no JSON message can carry it


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"J: lobby",  # no newline
        b"O: 1",
        b"\n",  # command shorter than 3 characters
        b"J\n",
        b"J:\n",
        b"S:\n",
        b"J- x\n",  # not "X: value"
        b"Jx \n",
        b"O:1\nx",
        b"O: abc\nx",  # non-integer destination
        b"O: \nx",
        b"A: 1.5\nx",
        b"C: -3\nx",
        b"C: +3\nx",
        b"O: 0x10\nx",
        "O: ٣\nx".encode(),  # a digit, but not an ASCII one
        b'{"type": 0, "id": 0, "data": ""}',
    ],
)
def test_malformed_lines_are_format_errors(line: bytes) -> None:
    with pytest.raises(FormatError):
        LINE_CODEC.decode(line.decode())


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (Message(JOIN, 0, "AbCdEf0123456789"), b"J: AbCdEf0123456789\n"),
        (Join("AbCdEf0123456789", CLIENT_SERVER), b"J: AbCdEf0123456789\n"),
        # An ID says nothing of the topology in this framing.
        (Identity(1, MESH), b"I: 1\n"),
        (Identity(987654, CLIENT_SERVER), b"I: 987654\n"),
        (Message(PEER_CONNECT, 1), b"N: 1\n"),
        (Message(PEER_DISCONNECT, 42), b"D: 42\n"),
        (Message(OFFER, 1, "v=0\r\n"), b"O: 1\nv=0\r\n"),
        (Message(ANSWER, 77, ""), b"A: 77\n"),
        (Message(CANDIDATE, 5, "\nmid\n0\nsdp"), b"C: 5\n\nmid\n0\nsdp"),
        (Message(SEAL, 0), b"S: \n"),
        (Message(OFFER, 9, "ü ✓ 😀\nline"), "O: 9\nü ✓ 😀\nline".encode()),
    ],
)
def test_encode_every_command(message: Message | Join | Identity, line: bytes) -> None:
    assert LINE_CODEC.encode(message) == line


def test_relay_payload_round_trips_byte_for_byte() -> None:
    payload = "\n0\n1\ncandidate ü\r\n\n\ttrailing\n"
    received = LINE_CODEC.decode(f"C: 5\n{payload}")
    assert received.data == payload
    assert LINE_CODEC.encode(Message(CANDIDATE, 1, received.data)) == f"C: 1\n{payload}".encode()


def test_a_lone_surrogate_from_a_json_peer_arrives_as_a_question_mark() -> None:
    assert LINE_CODEC.encode(Message(OFFER, 2, "a\ud800b")) == b"O: 2\na?b"


@pytest.mark.parametrize(
    ("first", "codec"),
    [
        ('{"type": 0, "id": 0, "data": ""}', JSON_CODEC),
        ("{", JSON_CODEC),
        ("J: \n", LINE_CODEC),
        # JSON whitespace before the brace still means JSON, as the reference reads it.
        (" {", JSON_CODEC),
        ("\r\n\t {", JSON_CODEC),
        ("\v{", LINE_CODEC),
        ("\u00a0{", LINE_CODEC),
        ("", LINE_CODEC),
        ("not json", LINE_CODEC),
    ],
)
def test_the_first_message_picks_the_codec(first: str, codec: object) -> None:
    assert codec_for(first) is codec
