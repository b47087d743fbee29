"""The WebSocket frames of the hot path, read and written without Autobahn.

Almost everything a signaling client sends is one small text message per
frame: final, unfragmented, masked, no extension bits. Autobahn handles such a
frame with a general state machine, a masker object and futures per frame,
which costs several times the rest of a relay. `read_text_frames` takes the
common case straight off the wire and stops, leaving the bytes untouched, at
the first frame that is anything else: control frames (ping, pong, close),
fragments, binary, reserved bits, unmasked, over the size limit, non-minimal
lengths, or invalid UTF-8. Those go to Autobahn, which answers them exactly as
before (1002, 1007, 1009, pongs, the closing handshake). A plain close frame
alone at the end of the input (a client leaving) is read by
`read_close_frame`, and what it says handed to Autobahn's close handler.
"""

from __future__ import annotations

import importlib
from typing import Any

XorMaskerSimple: Any
try:
    XorMaskerSimple = importlib.import_module("wsaccel.xormask").XorMaskerSimple
except ImportError:  # a platform without its wheel and without a compiler
    XorMaskerSimple = None

# First byte of a final text frame without reserved bits; MASK bit of the second.
_FINAL_TEXT = 0x81
_MASKED = 0x80
# First byte of a close frame without reserved bits (control frames are final).
_CLOSE = 0x88


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (RFC 6455, 5.3):
    in C with wsaccel when it is installed (it is a dependency, with wheels
    for the usual platforms; 0.9 us for a 230-byte message), else as one
    big-integer operation (2 us)."""
    if XorMaskerSimple is not None:
        masked: bytes = XorMaskerSimple(mask).process(payload)
        return masked
    return unmask_in_python(payload, mask)


def unmask_in_python(payload: bytes, mask: bytes) -> bytes:
    """`unmask` without wsaccel: far cheaper than a masker object per frame."""
    size = len(payload)
    key = (mask * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


def read_text_frames(data: bytes, max_size: int) -> tuple[list[str], int, bool]:
    """Read the complete, plain text frames at the start of ``data``.

    Returns the decoded texts, how many bytes they took, and whether reading
    stopped only for want of more bytes (``True``: keep the rest and wait) or
    at a frame this function leaves to Autobahn (``False``).
    """
    texts: list[str] = []
    end = len(data)
    at = 0
    while end - at >= 2:
        if data[at] != _FINAL_TEXT or data[at + 1] < _MASKED:
            return texts, at, False
        size = data[at + 1] & 0x7F
        start = at + 6
        if size >= 126:
            # Messages of 126 bytes or more: their length follows.
            length = _extended_length(data, at, end)
            if type(length) is bool:
                return texts, at, length
            start, size = length
        stop = start + size
        if size > max_size or stop > end:
            return texts, at, size <= max_size
        payload = unmask(data[start:stop], data[start - 4 : start]) if size else b""
        try:
            texts.append(payload.decode("utf-8"))
        except UnicodeDecodeError:
            return texts, at, False
        at = stop
    return texts, at, True


def read_close_frame(data: bytes) -> tuple[int | None, bytes | None] | None:
    """The status code and raw reason of ``data`` when it is exactly one
    masked close frame without reserved bits and with an empty payload or
    one of 2 to 125 bytes: what Autobahn's parser would pass to
    ``onCloseFrame`` for it, which checks both. None for anything else
    (then Autobahn parses it: a payload of 1 byte is its 1002, for one)."""
    end = len(data)
    if end < 6 or data[0] != _CLOSE or data[1] < _MASKED:
        return None
    size = data[1] & 0x7F
    if size == 1 or size > 125 or end != 6 + size:
        return None
    if not size:
        return None, None
    payload = unmask(data[6:], data[2:6])
    return int.from_bytes(payload[:2], "big"), payload[2:] if size > 2 else None


def _extended_length(data: bytes, at: int, end: int) -> tuple[int, int] | bool:
    """Where the payload of the frame at ``at`` starts, and its size, for a
    16-bit length; True when the length is not all here yet, False for a
    frame left to Autobahn (a 64-bit length, over any sane limit, or a
    length that is not encoded in the fewest bytes)."""
    if data[at + 1] & 0x7F != 126:
        return False
    start = at + 8
    if end < start:
        return True
    size = (data[at + 2] << 8) | data[at + 3]
    if size < 126:
        return False
    return start, size


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (server to client)."""
    size = len(payload)
    if size < 126:
        return bytes((_FINAL_TEXT, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload
