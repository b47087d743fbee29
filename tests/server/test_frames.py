"""The hot path's frame reader and writer, against Autobahn's own masker and
the RFC: what it reads, where it stops (leaving the frame to Autobahn), and
where it waits for more bytes."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from autobahn.websocket.xormasker import create_xor_masker
from hypothesis import given
from hypothesis import strategies as st

from webrtc_signal.server import frames
from webrtc_signal.server.frames import (
    read_close_frame,
    read_text_frames,
    text_frame,
    unmask,
    unmask_in_python,
)

from ..support.wsframes import frame

MAX = 64 * 1024


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 125, 126, 127, 1000, 65535, 65536, 100_000])
@pytest.mark.parametrize("masker", [unmask, unmask_in_python], ids=["unmask", "in_python"])
def test_unmask_matches_autobahns_masker(size: int, masker: Any) -> None:
    payload = os.urandom(size)
    mask = os.urandom(4)
    expected = create_xor_masker(mask, size).process(payload) if size else b""
    assert masker(payload, mask) == expected
    assert masker(expected, mask) == payload


def test_unmasking_is_done_in_c_where_wsaccel_installs() -> None:
    """wsaccel is a dependency with wheels for this platform: the C path runs."""
    assert frames.XorMaskerSimple is not None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 200, 65535])
def test_reads_a_text_frame_of_every_length_encoding(size: int) -> None:
    text = ("ü" * size)[: size // 2] + "x" * (size - 2 * (size // 2))
    payload = text.encode()
    data = frame(payload)
    assert read_text_frames(data, MAX) == ([payload.decode()], len(data), True)


def test_reads_many_frames_in_one_chunk_in_order() -> None:
    texts = [f'{{"type":6,"id":1,"data":"{n}"}}' for n in range(50)] + ["", "✓ 😀"]
    data = b"".join(frame(t.encode(), mask=os.urandom(4)) for t in texts)
    assert read_text_frames(data, MAX) == (texts, len(data), True)


@given(
    st.lists(st.text(max_size=300), min_size=1, max_size=8),
    st.lists(st.integers(min_value=1, max_value=400), max_size=30),
)
def test_any_split_of_the_bytes_reads_the_same_texts(texts: list[str], cuts: list[int]) -> None:
    """Fed in arbitrary pieces, as TCP delivers them, keeping the unread rest
    the way the protocol does, the reader yields the same texts."""
    data = b"".join(frame(t.encode("utf-8", "surrogatepass")) for t in texts if _utf8(t))
    expected = [t for t in texts if _utf8(t)]
    got: list[str] = []
    buffer = b""
    position = 0
    for cut in [*cuts, len(data)]:
        piece, position = data[position : position + cut], position + cut
        buffer += piece
        read, used, waiting = read_text_frames(buffer, MAX)
        assert waiting
        got += read
        buffer = buffer[used:]
        if position >= len(data):
            break
    assert got == expected
    assert buffer == b""


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


GOOD = frame(b'{"type":6,"id":1,"data":""}')


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(frame(b"", opcode=9), id="ping"),
        pytest.param(frame(b"hi", opcode=9), id="ping with payload"),
        pytest.param(frame(b"", opcode=10), id="pong"),
        pytest.param(frame(struct.pack("!H", 1000), opcode=8), id="close"),
        pytest.param(frame(b"bin", opcode=2), id="binary"),
        pytest.param(frame(b"part", fin=False), id="first fragment"),
        pytest.param(frame(b"rest", opcode=0), id="continuation"),
        pytest.param(frame(b"x", rsv=4), id="rsv1 (compressed)"),
        pytest.param(frame(b"x", rsv=1), id="rsv3"),
        pytest.param(frame(b"x", mask=None), id="unmasked"),
        pytest.param(frame(b"x" * 10, length_bytes=2), id="non-minimal 16-bit length"),
        pytest.param(frame(b"x" * 200, length_bytes=8), id="64-bit length"),
        pytest.param(frame(b"x" * (MAX + 1)), id="over the size limit"),
        pytest.param(frame(b"\xff"), id="invalid utf-8"),
        pytest.param(frame(b"\xc0\xaf"), id="overlong utf-8"),
        pytest.param(frame(b"\xed\xa0\x80"), id="utf-8 surrogate"),
        pytest.param(frame(b"ab\xe2\x82"), id="truncated utf-8"),
    ],
)
def test_stops_at_frames_it_leaves_to_autobahn(other: bytes) -> None:
    data = GOOD + other + GOOD
    texts, used, waiting = read_text_frames(data, MAX)
    assert texts == ['{"type":6,"id":1,"data":""}']
    assert used == len(GOOD)
    assert not waiting


def test_the_size_limit_is_inclusive() -> None:
    data = frame(b"x" * 1000)
    assert read_text_frames(data, 1000)[0] == ["x" * 1000]
    assert read_text_frames(data, 999) == ([], 0, False)


@pytest.mark.parametrize("keep", [1, 2, 3, 5, 7, 8, 100, 205])
def test_waits_for_the_rest_of_a_frame(keep: int) -> None:
    partial = frame(b"y" * 200)[:keep]
    texts, used, waiting = read_text_frames(GOOD + partial, MAX)
    assert (texts, used, waiting) == (['{"type":6,"id":1,"data":""}'], len(GOOD), True)


@pytest.mark.parametrize(
    ("size", "head"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_written_frames_are_final_unmasked_text(size: int, head: bytes) -> None:
    payload = os.urandom(size)
    assert text_frame(payload) == head + payload


# -- a client's close frame ---------------------------------------------------------


@given(code=st.integers(0, 65535), reason=st.binary(max_size=123))
def test_a_close_frame_gives_what_autobahns_parser_would(code: int, reason: bytes) -> None:
    """Autobahn's processControlFrame: the first two bytes big-endian as the
    code, the rest (if any) as the raw reason; its onCloseFrame checks both."""
    payload = struct.pack("!H", code) + reason
    assert read_close_frame(frame(payload, opcode=8)) == (code, reason or None)


def test_an_empty_close_frame_has_neither_code_nor_reason() -> None:
    assert read_close_frame(frame(b"", opcode=8)) == (None, None)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(b"\x03", opcode=8), id="a payload of one byte (Autobahn's 1002)"),
        pytest.param(frame(b"\x03\xe8", opcode=8, mask=None), id="unmasked"),
        pytest.param(frame(b"\x03\xe8", opcode=8, rsv=4), id="reserved bit"),
        pytest.param(frame(b"\x03\xe8", opcode=8, fin=False), id="not final"),
        pytest.param(frame(b"\x03\xe8" + b"x" * 124, opcode=8), id="over 125 bytes"),
        pytest.param(frame(b"\x03\xe8", opcode=8, length_bytes=2), id="16-bit length"),
        pytest.param(frame(b"\x03\xe8", opcode=8)[:-1], id="not all here"),
        pytest.param(frame(b"\x03\xe8", opcode=8) + GOOD, id="more after it"),
        pytest.param(frame(b"\x03\xe8", opcode=9), id="a ping"),
        pytest.param(GOOD, id="a text frame"),
    ],
)
def test_anything_else_is_left_to_autobahn(data: bytes) -> None:
    assert read_close_frame(data) is None
