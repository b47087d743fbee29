"""The JSON framing: what parses, what is a format error, and what goes out."""

from __future__ import annotations

import json

import pytest

from webrtc_signal.codec import JSON_CODEC, FormatError
from webrtc_signal.messages import Message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"type": 4, "id": 1, "data": "sdp"}', Message(4, 1, "sdp")),
        (b'{"type":0,"id":0}', Message(0, 0, "")),
        (b'{"id": 3, "type": 6, "data": ""}', Message(6, 3, "")),
        (b'{"type": 4.9, "id": 1.5, "data": "x"}', Message(4, 1, "x")),
        (b'{"type": 4e0, "id": 2147483647, "data": "x"}', Message(4, 2147483647, "x")),
        (b'{"type": 99, "id": 0, "data": "", "extra": [1, {}]}', Message(99, 0, "")),
        (b' \n{"type": 1, "id": 0}\t', Message(1, 0, "")),
        (
            '{"type": 6, "id": 2, "data": "\\n0\\n1\\nü ✓ 😀"}'.encode(),
            Message(6, 2, "\n0\n1\nü ✓ 😀"),
        ),
        (b'{"type": 4, "id": 1, "data": "\\ud800"}', Message(4, 1, "\ud800")),
        (b'{"type": 4, "type": 5, "id": 1}', Message(5, 1, "")),
    ],
)
def test_decode_accepts(payload: bytes, expected: Message) -> None:
    assert JSON_CODEC.decode(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"J: \n",
        b"{",
        b'{"type": 0, "id": 0',
        b'[0, 0, ""]',
        b'"a string"',
        b"42",
        b"null",
        b"{}",
        b'{"id": 0, "data": ""}',
        b'{"type": 0, "data": ""}',
        b'{"type": "0", "id": 0}',
        b'{"type": 0, "id": "1"}',
        b'{"type": true, "id": 0}',
        b'{"type": 0, "id": false}',
        b'{"type": null, "id": 0}',
        b'{"type": [0], "id": 0}',
        b'{"type": {}, "id": 0}',
        b'{"type": -1, "id": 0}',
        b'{"type": 4, "id": -5}',
        b'{"type": -0.5, "id": 0}',
        b'{"type": NaN, "id": 0}',
        b'{"type": Infinity, "id": 0}',
        b'{"type": 0, "id": -Infinity}',
        b'{"type": 1e400, "id": 0}',
        b'{"type": 0, "id": 0, "data": 5}',
        b'{"type": 0, "id": 0, "data": null}',
        b'{"type": 0, "id": 0, "data": ["x"]}',
        b'{"type": 0, "id": 0, "data": true}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_decode_rejects_as_format_error(payload: bytes) -> None:
    with pytest.raises(FormatError):
        JSON_CODEC.decode(payload)


def test_encode_always_carries_three_keys_in_order() -> None:
    assert JSON_CODEC.encode(Message(1, 1)) == b'{"type":1,"id":1,"data":""}'


def test_encode_keeps_unicode_and_newlines_byte_for_byte() -> None:
    data = 'line1\nline2\r\n\t"quoted" \\ ü ✓ 😀'
    encoded = JSON_CODEC.encode(Message(4, 77, data))
    assert json.loads(encoded) == {"type": 4, "id": 77, "data": data}
    assert "ü ✓ 😀".encode() in encoded


def test_encode_escapes_a_lone_surrogate_it_was_sent() -> None:
    encoded = JSON_CODEC.encode(Message(4, 1, "a\ud800b"))
    assert encoded == b'{"type":4,"id":1,"data":"a\\ud800b"}'
    assert JSON_CODEC.decode(encoded).data == "a\ud800b"


def test_round_trip() -> None:
    for message in [
        Message(0, 0, "Lobby123"),
        Message(6, 2**31 - 1, "\n0\n0\ncand"),
        Message(7, 0),
    ]:
        assert JSON_CODEC.decode(JSON_CODEC.encode(message)) == message
