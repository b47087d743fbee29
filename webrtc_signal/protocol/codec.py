"""Wire framings: the text of one WebSocket message <-> `Message`.

Two framings exist: JSON (Godot 4) and the older line framing (Godot 3). A
connection's first message picks its codec (`codec_for`) and the core never
learns which one a peer speaks. Codecs get text: the WebSocket layer has
already checked the frame is valid UTF-8. Every malformed input raises
`FormatError`, which the adapter turns into "Invalid message format".

The framings' conventions for a lobby's topology live here and nowhere else:
above the codecs, a JOIN is a `Join` and an ID an `Identity`, each naming a
`Topology`.
"""

from __future__ import annotations

import json
import math
from typing import Protocol, cast

import orjson

from .messages import AnyMessage, Identity, Join, Message, MessageType
from .topology import CLIENT_SERVER, MESH, Topology


class FormatError(ValueError):
    """The payload is not a message of this framing."""


class Codec(Protocol):
    def decode(self, text: str) -> AnyMessage: ...

    def encode(self, message: AnyMessage) -> bytes: ...


def _reject_constant(name: str) -> float:
    raise FormatError(f"{name} is not a number here")


# The standard library's JSON is the reference reading; orjson (about ten times
# faster) does the work whenever it reads a message the same way, which
# tests/test_codec.py checks exhaustively for output and by fuzzing for input.
_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_json_ascii = json.JSONEncoder(separators=(",", ":")).encode
# orjson reads integers beyond 64 bits as floats; past this, a float may be one.
_EXACT_FLOAT_LIMIT = 2.0**53


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


def _read_json(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson refuses a few inputs the standard library accepts (lone
        # surrogate escapes, NaN, numbers past a double); let it decide.
        pass
    return _read_json_slowly(text)


def _read_json_slowly(text: str) -> object:
    try:
        return _decode_json(text)
    except (ValueError, RecursionError) as error:
        raise FormatError("not JSON") from error


# The JSON framing's topology conventions. JOIN: id 0 asks for a mesh, any
# other id for client-server. ID: data "true" in a mesh, "" in client-server.
# Plain ints: cheaper to compare than the enum, and written as they are.
_JOIN = int(MessageType.JOIN)
_ID = int(MessageType.ID)
_JOIN_MESH_ID = 0
_JOIN_IDS: dict[Topology, int] = {MESH: _JOIN_MESH_ID, CLIENT_SERVER: 1}
_ID_MESH_DATA = "true"
_ID_DATA: dict[Topology, str] = {MESH: _ID_MESH_DATA, CLIENT_SERVER: ""}


class JsonCodec:
    """The Godot 4 framing: ``{"type": T, "id": I, "data": S}``."""

    def decode(self, text: str) -> AnyMessage:
        obj = _read_json(text)
        if type(obj) is not dict:
            raise FormatError("not a JSON object")
        kind = obj.get("type")
        peer_id = obj.get("id")
        if (type(kind) is float and abs(kind) >= _EXACT_FLOAT_LIMIT) or (
            type(peer_id) is float and abs(peer_id) >= _EXACT_FLOAT_LIMIT
        ):
            # The same text, so again an object: only its numbers differ.
            obj = cast("dict[str, object]", _read_json_slowly(text))
            kind = obj.get("type")
            peer_id = obj.get("id")
        data = obj.get("data", "")
        if type(data) is not str:
            raise FormatError("data must be a string")
        # The common case (non-negative ints) skips the general check.
        if type(kind) is not int or kind < 0:
            kind = _whole_number(kind, "type")
        if type(peer_id) is not int or peer_id < 0:
            peer_id = _whole_number(peer_id, "id")
        if kind > _ID:  # one comparison for every message but JOIN and ID
            return Message(kind, peer_id, data)
        if kind == _JOIN:
            return Join(data, MESH if peer_id == _JOIN_MESH_ID else CLIENT_SERVER)
        return Identity(peer_id, MESH if data == _ID_MESH_DATA else CLIENT_SERVER)

    def encode(self, message: AnyMessage) -> bytes:
        if type(message) is Message:
            fields = {"type": message.type, "id": message.id, "data": message.data}
        elif isinstance(message, Identity):
            fields = {"type": _ID, "id": message.id, "data": _ID_DATA[message.topology]}
        elif isinstance(message, Join):
            fields = {"type": _JOIN, "id": _JOIN_IDS[message.topology], "data": message.lobby}
        else:
            raise TypeError(f"not a message: {message!r}")
        try:
            return orjson.dumps(fields)
        except orjson.JSONEncodeError:
            pass
        try:
            return _encode_json(fields).encode("utf-8")
        except UnicodeEncodeError:
            # A client may send a lone surrogate as a \ud800 escape; raw UTF-8
            # cannot carry it, so relay it escaped, exactly as it came in.
            return _encode_json_ascii(fields).encode("ascii")


JSON_CODEC = JsonCodec()


# The line framing's command letters, both ways. I, N and D only ever go from
# server to client; a client sending one gets what a JSON client sending that
# type gets ("Invalid command" in a lobby).
_LETTER_TYPES = {
    "J": MessageType.JOIN,
    "I": MessageType.ID,
    "N": MessageType.PEER_CONNECT,
    "D": MessageType.PEER_DISCONNECT,
    "O": MessageType.OFFER,
    "A": MessageType.ANSWER,
    "C": MessageType.CANDIDATE,
    "S": MessageType.SEAL,
}
_TYPE_LETTERS = {kind: letter for letter, kind in _LETTER_TYPES.items()}
_RELAY_LETTERS = frozenset("OAC")
# A letter no framing defines, decoded to a type no framing defines, so the
# core answers it as it answers any unknown type. JSON types are never negative.
UNKNOWN_LETTER_TYPE = -1
# Digits of the largest peer id (2^31 - 1), and of any id a line may carry.
_MAX_ID_DIGITS = 10
# What JSON (RFC 8259) allows before a value.
_JSON_WHITESPACE = " \t\n\r"


class LineCodec:
    """The Godot 3 framing: a command line ``X: <value>\n``, then a payload
    (everything after the first newline, untouched). It has no topology
    flag: a JOIN always asks for a mesh, and an ID says nothing of the
    lobby's topology."""

    def decode(self, text: str) -> Message | Join:
        command, newline, data = text.partition("\n")
        if not newline:
            raise FormatError("no newline after the command")
        if len(command) < 3 or command[1:3] != ": ":
            raise FormatError("the command line is not 'X: value'")
        letter, value = command[0], command[3:]
        kind = _LETTER_TYPES.get(letter)
        if kind is None:
            return Message(UNKNOWN_LETTER_TYPE, 0, data)
        if kind == MessageType.JOIN:
            # Godot 3 clients send "J: \n" to create; the reference trims.
            return Join(value.strip(), MESH)
        if letter in _RELAY_LETTERS:
            destination = value.strip()
            # Peer ids fit in 10 digits; a longer run would only make int()
            # slow (or raise past Python's 4300-digit limit).
            if (
                not destination.isascii()
                or not destination.isdigit()
                or len(destination) > _MAX_ID_DIGITS
            ):
                raise FormatError("the destination is not a peer id")
            return Message(kind, int(destination), data)
        return Message(kind, 0, data)

    def encode(self, message: AnyMessage) -> bytes:
        if type(message) is not Message:  # one test for the common case
            if isinstance(message, Join):
                return f"J: {message.lobby}\n".encode()
            if isinstance(message, Identity):
                return f"I: {message.id}\n".encode()
            raise TypeError(f"not a message: {message!r}")
        letter = _TYPE_LETTERS[MessageType(message.type)]
        if message.type == MessageType.JOIN:
            return f"J: {message.data}\n".encode()
        if message.type == MessageType.SEAL:
            return b"S: \n"
        if letter in _RELAY_LETTERS:
            # A lone surrogate (a JSON peer can send one as an escape) has no
            # UTF-8 form: it arrives as "?" rather than as an invalid frame.
            return f"{letter}: {message.id}\n{message.data}".encode("utf-8", "replace")
        # ID, PEER_CONNECT, PEER_DISCONNECT: the id is all there is to say.
        return f"{letter}: {message.id}\n".encode()


LINE_CODEC = LineCodec()


def codec_for(first_text: str) -> Codec:
    """The framing a connection speaks, from its first message: JSON objects
    start with ``{`` after any JSON whitespace (as the reference reads them);
    anything else is the line framing."""
    if first_text[:1] == "{" or first_text.lstrip(_JSON_WHITESPACE)[:1] == "{":
        return JSON_CODEC
    return LINE_CODEC
