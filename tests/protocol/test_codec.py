"""The JSON framing: what parses, what is a format error, and what goes out.

Cases are written as the bytes on the wire; the WebSocket layer hands the
codec their text (it has checked the UTF-8, see tests/test_frames.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from webrtc_signal.protocol.codec import JSON_CODEC, FormatError
from webrtc_signal.protocol.messages import Identity, Join, Message
from webrtc_signal.protocol.topology import CLIENT_SERVER, MESH, Topology


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"type": 4, "id": 1, "data": "sdp"}', Message(4, 1, "sdp")),
        (b'{"type":0,"id":0}', Join("", MESH)),
        (b'{"id": 3, "type": 6, "data": ""}', Message(6, 3, "")),
        (b'{"type": 4.9, "id": 1.5, "data": "x"}', Message(4, 1, "x")),
        (b'{"type": 4e0, "id": 2147483647, "data": "x"}', Message(4, 2147483647, "x")),
        (b'{"type": 99, "id": 0, "data": "", "extra": [1, {}]}', Message(99, 0, "")),
        (b' \n{"type": 1, "id": 0}\t', Identity(0, CLIENT_SERVER)),
        (
            '{"type": 6, "id": 2, "data": "\\n0\\n1\\nü ✓ 😀"}'.encode(),
            Message(6, 2, "\n0\n1\nü ✓ 😀"),
        ),
        (b'{"type": 4, "id": 1, "data": "\\ud800"}', Message(4, 1, "\ud800")),
        (b'{"type": 4, "type": 5, "id": 1}', Message(5, 1, "")),
        # Integers past 64 bits stay exact (orjson alone would round them).
        (b'{"type": 18446744073709551617, "id": 0}', Message(18446744073709551617, 0, "")),
        (
            b'{"type": 4, "id": 123456789012345678901234567}',
            Message(4, 123456789012345678901234567, ""),
        ),
    ],
)
def test_decode_accepts(payload: bytes, expected: Message | Join | Identity) -> None:
    assert JSON_CODEC.decode(payload.decode()) == expected


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
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_decode_rejects_as_format_error(payload: bytes) -> None:
    with pytest.raises(FormatError):
        JSON_CODEC.decode(payload.decode())


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
    assert JSON_CODEC.decode(encoded.decode()).data == "a\ud800b"


def test_round_trip() -> None:
    for message in [
        Join("Lobby123", MESH),
        Join("", CLIENT_SERVER),
        Identity(1, MESH),
        Identity(2**31 - 1, CLIENT_SERVER),
        Message(6, 2**31 - 1, "\n0\n0\ncand"),
        Message(7, 0),
    ]:
        assert JSON_CODEC.decode(JSON_CODEC.encode(message).decode()) == message


# -- the topology conventions -----------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "topology"),
    [
        (b'{"type": 0, "id": 0, "data": ""}', MESH),
        (b'{"type": 0, "id": 0.5, "data": ""}', MESH),
        (b'{"type": 0, "id": 1, "data": ""}', CLIENT_SERVER),
        (b'{"type": 0, "id": 1.5, "data": ""}', CLIENT_SERVER),
        (b'{"type": 0, "id": 2, "data": ""}', CLIENT_SERVER),
        (b'{"type": 0, "id": 7, "data": ""}', CLIENT_SERVER),
        (b'{"type": 0, "id": 2147483648, "data": ""}', CLIENT_SERVER),
        (b'{"type": 0, "id": 1, "data": "SomeLobby"}', CLIENT_SERVER),
    ],
)
def test_a_join_id_of_0_asks_for_a_mesh_and_any_other_for_client_server(
    payload: bytes, topology: object
) -> None:
    message = JSON_CODEC.decode(payload.decode())
    assert isinstance(message, Join)
    assert message.topology is topology
    assert message.lobby == json.loads(payload)["data"]


@pytest.mark.parametrize(
    ("data", "topology"), [("true", MESH), ("", CLIENT_SERVER), ("True", CLIENT_SERVER)]
)
def test_an_id_says_mesh_with_data_true(data: str, topology: Topology) -> None:
    message = JSON_CODEC.decode(json.dumps({"type": 1, "id": 5, "data": data}))
    assert message == Identity(5, topology)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (Identity(1, MESH), b'{"type":1,"id":1,"data":"true"}'),
        (Identity(123456, CLIENT_SERVER), b'{"type":1,"id":123456,"data":""}'),
        (Join("", MESH), b'{"type":0,"id":0,"data":""}'),
        (Join("", CLIENT_SERVER), b'{"type":0,"id":1,"data":""}'),
        (Join("AbCdEf0123456789", MESH), b'{"type":0,"id":0,"data":"AbCdEf0123456789"}'),
        # The server's confirmation of a join is a plain message, always id 0.
        (Message(0, 0, "AbCdEf0123456789"), b'{"type":0,"id":0,"data":"AbCdEf0123456789"}'),
    ],
)
def test_encode_writes_the_topology_conventions(
    message: Message | Join | Identity, wire: bytes
) -> None:
    assert JSON_CODEC.encode(message) == wire


# -- orjson reads exactly as the standard library does --------------------------
# The codec reads with orjson when it can and falls back to the standard
# library; the standard library's reading is the definition. These tests hold
# the fast path to it.


def reference_decode(text: str) -> Message | Join | Identity:
    """The codec's rules over the standard library's JSON alone."""
    try:
        obj = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError) as error:
        raise FormatError("not JSON") from error
    if type(obj) is not dict:
        raise FormatError("not an object")
    data = obj.get("data", "")
    if type(data) is not str:
        raise FormatError("data")
    numbers = []
    for key in ("type", "id"):
        value = obj.get(key)
        if type(value) is int:
            number = value
        elif type(value) is float and math.isfinite(value):
            number = math.floor(value)
        else:
            raise FormatError(key)
        if number < 0:
            raise FormatError(key)
        numbers.append(number)
    kind, peer_id = numbers
    if kind == 0:
        return Join(data, MESH if peer_id == 0 else CLIENT_SERVER)
    if kind == 1:
        return Identity(peer_id, MESH if data == "true" else CLIENT_SERVER)
    return Message(kind, peer_id, data)


def _refuse(name: str) -> float:
    raise FormatError(name)


def outcome(decode, text: str):  # type: ignore[no-untyped-def]
    try:
        return decode(text)
    except FormatError:
        return "FormatError"


JSON_TOKENS = [
    "{", "}", "[", "]", ",", ":", '"type"', '"id"', '"data"', '"x"', "0", "1", "-1", "7",
    "4.5", "-0.0", "1e3", "1E-2", "2147483647", "18446744073709551617", "1e400", "true",
    "false", "null", "NaN", "Infinity", '"\\ud800"', '"\\u00fc"', '"ü"', '"\\n"', " ", "\n",
]  # fmt: skip


@pytest.mark.unmeasured
@given(st.lists(st.sampled_from(JSON_TOKENS), max_size=14))
@settings(max_examples=1500)
def test_fast_decode_agrees_with_the_standard_library_on_token_soup(tokens: list[str]) -> None:
    text = "".join(tokens)
    assert outcome(JSON_CODEC.decode, text) == outcome(reference_decode, text)


@pytest.mark.unmeasured
@given(
    st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=5)),
    st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=5)),
    st.one_of(st.text(), st.integers(), st.none(), st.just(MISSING := object())),
)
@settings(max_examples=1500)
@example(2**64 + 1, 0, "")
@example(4, -(2**70) - 1, "x")
@example(1.5, 2**53 + 1, "")
def test_fast_decode_agrees_with_the_standard_library_on_messages(
    kind: object, peer: object, data: object
) -> None:
    fields = {"type": kind, "id": peer}
    if data is not MISSING:
        fields["data"] = data
    for text in (json.dumps(fields), json.dumps(fields, ensure_ascii=False)):
        assert outcome(JSON_CODEC.decode, text) == outcome(reference_decode, text)


@pytest.mark.unmeasured
def test_fast_encode_is_the_standard_librarys_encoding_for_every_character() -> None:
    reference = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(characters), 4096):
        data = "".join(characters[start : start + 4096])
        fields = {"type": 6, "id": 2**31 - 1, "data": data}
        assert JSON_CODEC.encode(Message(6, 2**31 - 1, data)) == reference(fields).encode()
