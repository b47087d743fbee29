"""The frames between cluster nodes (webrtc_signal/cluster/frames.py): every
kind survives the trip through the bus's JSON, and `decode` refuses any
frame with a field it cannot act on, down to the lobbies inside a Reply."""

from __future__ import annotations

from typing import Any

import pytest

from webrtc_signal.cluster import bus, frames
from webrtc_signal.cluster.frames import (
    Ask,
    Attach,
    Deliver,
    Detach,
    Forward,
    FrameError,
    Gone,
    Identify,
    JoinAgain,
    Reply,
)
from webrtc_signal.protocol.hooks import LobbyInfo, PeerInfo

HOST = PeerInfo(77, 1, "Lobby", "alice", "203.0.113.7", "json", "ranked")
GUEST = PeerInfo(78, 78, "Lobby", {"sub": "bob"}, "198.51.100.2", "lines", None)
LOBBY = LobbyInfo("Lobby", True, False, False, HOST, (HOST, GUEST), 12.5, "ranked", "Fun", 4, True)
RESERVED = LobbyInfo("Reserved", False, True, True, None, (), 3.0)


def trip(frame: frames.Frame) -> frames.Frame:
    return frames.decode(bus.decode(bus.encode(frames.encode(frame))))


@pytest.mark.parametrize(
    "frame",
    [
        Attach(1, "Lobby", "mesh", "203.0.113.7", 77, "alice", "json", "eu/ranked"),
        Forward(1, 4, 2, "sdp"),
        JoinAgain(1, "", "client-server"),
        Gone(1, 1000, ""),
        Deliver(1, 2, 78, ""),
        Identify(1, 78, "mesh"),
        Detach(1, 4000, "Lobby is sealed"),
        Ask(9, "kick", "", 78, "Cheating"),
        Reply(9, True, ()),
        Reply(10, False, (RESERVED,)),
    ],
)
def test_every_frame_survives_the_bus(frame: frames.Frame) -> None:
    assert trip(frame) == frame


def test_a_reply_carries_lobbies_with_identities_as_the_admin_api_shows_them() -> None:
    (lobby,) = trip(Reply(3, True, (LOBBY,))).lobbies  # type: ignore[union-attr]
    # A text identity stays itself, another object becomes its text (what
    # the admin API shows of it); the rest of the snapshot is unchanged.
    assert lobby.members[0].identity == "alice"
    assert lobby.members[1].identity == "{'sub': 'bob'}"
    assert lobby == LOBBY.__class__(
        **{**_fields(LOBBY), "members": (HOST, _with(GUEST, identity="{'sub': 'bob'}"))}
    )


def _fields(info: Any) -> dict[str, Any]:
    return {name: getattr(info, name) for name in info.__dataclass_fields__}


def _with(info: Any, **changes: Any) -> Any:
    return info.__class__(**{**_fields(info), **changes})


def _lobby(**changes: Any) -> list[Any]:
    raw: list[Any] = frames.encode(Reply(1, True, (LOBBY,)))[3][0]
    fields = ["name", "mesh", "sealed", "reserved", "host", "members", "created", "pool"]
    fields += ["title", "size", "listed"]
    for name, value in changes.items():
        raw[fields.index(name)] = value
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        ["q", 1, "nuke", "Lobby", 0, ""],
        ["q", 1, "kick", "Lobby", "78", ""],
        ["q", 1, "kick", "Lobby", 78],
        ["a", 1, 1, []],
        ["a", 1, True, {}],
        ["a", 1, True, [["Lobby"]]],
        ["a", 1, True, [_lobby(mesh="yes")]],
        ["a", 1, True, [_lobby(created="noon")]],
        ["a", 1, True, [_lobby(size=4.5)]],
        ["a", 1, True, [_lobby(host=[77, 1, "Lobby", None, "x", "json"])]],
        ["a", 1, True, [_lobby(members=[[77, 1, "Lobby", None, 7, "json", None]])]],
        ["J", 1, "Lobby", "mesh", "203.0.113.7", 77, None, "morse", ""],
        ["J", 1, "Lobby", "mesh", "203.0.113.7", 77, None, "json"],
        ["J", 1, "Lobby", "mesh", "203.0.113.7", 77, None, "json", None],
        ["J", 1, "Lobby", "star", "203.0.113.7", 77, None, "json", ""],
        ["J", 1, "Lobby", "mesh", "203.0.113.7", 1, None, "json", ""],
        ["z", 1],
        [],
        "J",
    ],
)
def test_a_frame_that_cannot_be_acted_on_is_refused(raw: object) -> None:
    with pytest.raises(FrameError):
        frames.decode(raw)
