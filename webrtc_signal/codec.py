"""Wire framings: bytes of one WebSocket text message <-> `Message`.

A codec is chosen per connection; the core never learns which one a peer
speaks. Every malformed input raises `FormatError`, which the adapter turns
into the protocol's "Invalid message format" close.
"""

from __future__ import annotations

import json
import math
from typing import Protocol

from .messages import Message


class FormatError(ValueError):
    """The payload is not a message of this framing."""


class Codec(Protocol):
    def decode(self, payload: bytes) -> Message: ...

    def encode(self, message: Message) -> bytes: ...


def _reject_constant(name: str) -> float:
    raise FormatError(f"{name} is not a number here")


_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_json_ascii = json.JSONEncoder(separators=(",", ":")).encode


def _whole_number(value: object, key: str) -> int:
    """A JSON number as the reference reads it: floored, and never negative.
    ``bool`` is excluded on purpose: in Python ``True`` is an ``int``."""
    if type(value) is int:
        number = value
    elif type(value) is float and math.isfinite(value):
        number = math.floor(value)
    else:
        raise FormatError(f"{key} must be a number")
    if number < 0:
        raise FormatError(f"{key} must not be negative")
    return number


class JsonCodec:
    """The Godot 4 framing: ``{"type": T, "id": I, "data": S}``."""

    def decode(self, payload: bytes) -> Message:
        try:
            obj = _decode_json(payload.decode("utf-8"))
        except (ValueError, RecursionError) as error:
            raise FormatError("not JSON") from error
        if type(obj) is not dict:
            raise FormatError("not a JSON object")
        data = obj.get("data", "")
        if type(data) is not str:
            raise FormatError("data must be a string")
        return Message(
            _whole_number(obj.get("type"), "type"), _whole_number(obj.get("id"), "id"), data
        )

    def encode(self, message: Message) -> bytes:
        fields = {"type": message.type, "id": message.id, "data": message.data}
        try:
            return _encode_json(fields).encode("utf-8")
        except UnicodeEncodeError:
            # A client may send a lone surrogate as a \ud800 escape; raw UTF-8
            # cannot carry it, so relay it escaped, exactly as it came in.
            return _encode_json_ascii(fields).encode("ascii")


JSON_CODEC = JsonCodec()
