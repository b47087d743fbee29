"""Client frames built by the book (RFC 6455, 5.2), for tests that need
frames no well-behaved client library would send."""

from __future__ import annotations

import struct

from autobahn.websocket.xormasker import create_xor_masker


def frame(
    payload: bytes,
    opcode: int = 1,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
    length_bytes: int | None = None,
) -> bytes:
    """A client frame, built by the book (RFC 6455, 5.2)."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 65536 else 8
    if length_bytes == 0:
        head += bytes([mask_bit | size])
    elif length_bytes == 2:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    return head + mask + create_xor_masker(mask, size).process(payload) if size else head + mask
