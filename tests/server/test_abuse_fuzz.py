"""Fuzzing a live server: random and mutated frames (opcodes,
flags, lengths, fragmentation, masking, UTF-8 split across fragments) and
random or mutated JSON and line messages, each from a fresh connection.
Throughout, nothing the server logs is an unhandled error, every close code
is one the protocol documents, and a canary lobby on the same server keeps
relaying. Bounded: a few seconds of examples."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.logger import LogLevel, globalLogPublisher

from ..conftest import RunningServer
from ..support.rawws import raw_cleanup, raw_connect
from ..support.wsframes import frame

__all__ = ["raw_cleanup"]  # a fixture: aborts raw clients after each test

# Close codes the server may send: RFC 6455's for framing errors, ours for the rest.
DOCUMENTED_CLOSE_CODES = {None, 1000, 1001, 1002, 1007, 1008, 1009, 1011, 4000}
VALID_JSON = [
    {"type": 0, "id": 0, "data": ""},
    {"type": 4, "id": 1, "data": "v=0"},
    {"type": 7, "id": 0, "data": ""},
    {"type": 6, "id": 2**31, "data": "candidate"},
]
VALID_LINES = ["J: \n", "O: 1\nsdp", "C: 2\ncand", "S: \n", "A: 0\n"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["type", "id", "data", "x"]), children, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> bytes:
    data = bytearray(draw(st.sampled_from(texts)).encode())
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "digits"]))
        at = draw(st.integers(0, len(data)))
        if action == "flip" and data:
            data[at % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data[at:at] = b"9" * draw(st.integers(1, 6000))
    return bytes(data)


messages = (
    st.builds(lambda v: json.dumps(v).encode(), json_values)
    | mutated([json.dumps(m) for m in VALID_JSON])
    | mutated(VALID_LINES)
    | st.builds(
        lambda letter, digits, payload: f"{letter}: {digits}\n{payload}".encode(),
        st.sampled_from("OACJSX"),
        st.integers(0, 6000).map(lambda n: "9" * n),
        st.text(max_size=5),
    )
    | st.text(max_size=50).map(str.encode)
    | st.binary(max_size=50)
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A message as one or more frames, some of them malformed."""
    payload = draw(messages)
    pieces = draw(st.integers(1, 4))
    cut = sorted(
        draw(st.lists(st.integers(0, len(payload)), min_size=pieces - 1, max_size=pieces - 1))
    )
    parts = [payload[a:b] for a, b in zip([0, *cut], [*cut, len(payload)], strict=True)]
    data = b""
    for index, part in enumerate(parts):
        opcode = draw(st.sampled_from([1, 1, 1, 2])) if index == 0 else 0
        if draw(st.integers(0, 9)) == 0:
            opcode = draw(st.integers(0, 15))  # reserved, control or stray continuation
        masked = draw(st.integers(0, 19)) != 0
        data += frame(
            part,
            opcode=opcode,
            fin=index == len(parts) - 1,
            rsv=draw(st.sampled_from([0, 0, 0, 0, 1, 4])),
            mask=os.urandom(4) if masked else None,
        )
    if draw(st.booleans()):
        # A control frame in between, sometimes oversized.
        data += frame(draw(st.binary(max_size=130)), opcode=draw(st.sampled_from([8, 9, 10])))
    if draw(st.integers(0, 9)) == 0:
        # A header claiming more than is sent, or a 64-bit length.
        data += bytes([0x81, 0xFF]) + struct.pack("!Q", draw(st.integers(0, 2**63 - 1)))
    return data


@pytest.fixture
def errors() -> Iterator[list[dict[str, Any]]]:
    """Everything logged as an error or critical, or with a failure attached."""
    seen: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("log_level") in (
            LogLevel.error,
            LogLevel.critical,
        ):
            seen.append(event)

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


@pytest_twisted.ensureDeferred
async def test_fuzzed_frames_and_messages_harm_no_one(
    server: RunningServer, errors: list[dict[str, Any]]
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    canary_host, lobby = await server.create()
    canary, canary_id = await server.join(lobby)
    await canary_host.expect(2, canary_id)
    examples: list[tuple[bool, bytes]] = []

    # Hypothesis drives a synchronous function; the examples run afterwards
    # against the live server (the reactor cannot turn inside @given).
    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.booleans(), frames())
    def collect(join_first: bool, data: bytes) -> None:
        examples.append((join_first, data))

    collect()
    # Known nasty cases first, whatever hypothesis draws.
    examples[:0] = [
        (False, frame(b"O: " + b"9" * 5000 + b"\nsdp")),
        (True, frame(b"C: " + b"1" * 11 + b"\ncandidate")),
        (True, frame(b"x", opcode=9) * 1000),
        (True, frame(b"{", fin=False) + frame(b" ", opcode=0, fin=False) * 100),
        (True, frame('{"data":"\u00fc"}'.encode()[:12], fin=False)),
    ]
    relayed = 0
    for join_first, data in examples:
        client = await raw_connect(port)
        assert client.status == 101
        if join_first:
            client.send_json(0, 0, lobby)
        client.transport.write(data)
        canary.send(6, 1, f"canary {relayed}")
        # Whatever the client did, its lobby mates only see it come and go.
        while (message := await canary_host.next())["type"] != 6:
            assert message["type"] in (2, 3), message
        assert message == {"type": 6, "id": canary_id, "data": f"canary {relayed}"}
        relayed += 1
        client.transport.loseConnection()
        await client.wait_lost()
        assert client.close_code in DOCUMENTED_CLOSE_CODES, (client.close_code, data[:80])
        # Time passes, so the canary's message bucket refills.
        server.clock.advance(1)
        await defer.succeed(None)
    assert errors == []
    assert relayed == len(examples)
    # The server is back to the canary pair alone.
    await canary_host.round_trip()
    assert len(server.engine.connections) == 2
