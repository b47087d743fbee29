"""Unit tests of the pure core: every lobby rule and every close-table row.

The harness plays the adapter: it carries out the core's actions, records what
each connection was sent and how it was closed, and keeps the armed timers so
a test can fire them, as a reactor would.
"""

from __future__ import annotations

import random
import re
import sys
from collections import defaultdict
from typing import get_args

import pytest

from webrtc_signal import CloseReason, Signaling, SignalingConfig
from webrtc_signal.events import LobbyClosed, LobbyCreated, PeerDisconnected
from webrtc_signal.protocol.core import (
    CancelTimer,
    Close,
    JoinDeadline,
    Peer,
    SealDeadline,
    Send,
    StartTimer,
    Timer,
)
from webrtc_signal.protocol.events import Event
from webrtc_signal.protocol.messages import Identity, Join, Message
from webrtc_signal.protocol.topology import CLIENT_SERVER, MESH, Topology

JOIN, ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL = range(8)


class Harness:
    def __init__(self, config: SignalingConfig | None = None, rng: random.Random | None = None):
        self.core = Signaling(config, rng=rng or random.Random(1234))
        # What each connection was sent, as (type, id, data); an ID's data is
        # the lobby's topology.
        self.inbox: dict[str, list[tuple[int, int, object]]] = defaultdict(list)
        self.closed: dict[str, CloseReason] = {}
        self.timers: dict[Timer, float] = {}
        self.events: list[Event] = []

    def apply(self, actions: list) -> list:
        for action in actions:
            match action:
                case Send(peer, message):
                    assert peer.handle not in self.closed, f"sent to closed {peer.handle}"
                    data = message.topology if isinstance(message, Identity) else message.data
                    self.inbox[peer.handle].append((message.type, message.id, data))
                case Close(peer, reason):
                    assert peer.handle not in self.closed, f"closed twice: {peer.handle}"
                    self.closed[peer.handle] = reason
                case StartTimer(timer, delay):
                    assert timer not in self.timers
                    self.timers[timer] = delay
                case CancelTimer(timer):
                    # Only a live timer is cancelled: never one that fired.
                    assert timer in self.timers, f"cancelled {timer}, which is not armed"
                    del self.timers[timer]
                case _ if isinstance(action, get_args(Event)):
                    self.events.append(action)
                case _:
                    raise AssertionError(f"unknown action {action!r}")
        return actions

    # -- events ----------------------------------------------------------------

    def connect(self, handle: str) -> Peer:
        peer, actions = self.core.connect(handle)
        self.apply(actions)
        return peer

    def send(self, peer: Peer, type_: int, id_: int = 0, data: str = "") -> list:
        return self.apply(self.core.receive(peer, Message(type_, id_, data)))

    def send_join(self, peer: Peer, lobby: str, topology: Topology = MESH) -> list:
        return self.apply(self.core.receive(peer, Join(lobby, topology)))

    def leave(self, peer: Peer) -> list:
        return self.apply(self.core.disconnect(peer))

    def fire(self, timer: Timer) -> list:
        """Fire ``timer`` as the reactor would: only if it is still armed."""
        assert timer in self.timers, f"{timer} is not armed"
        del self.timers[timer]
        return self.apply(self.core.timer_fired(timer))

    def take(self, handle: str) -> list[tuple[int, int, object]]:
        messages, self.inbox[handle] = self.inbox[handle], []
        return messages

    # -- common moves ----------------------------------------------------------

    def create(self, handle: str = "host", mesh: bool = True) -> tuple[Peer, str]:
        host = self.connect(handle)
        self.send_join(host, "", MESH if mesh else CLIENT_SERVER)
        messages = self.take(handle)
        assert messages[0] == (ID, 1, MESH if mesh else CLIENT_SERVER)
        assert messages[1][:2] == (JOIN, 0)
        return host, messages[1][2]

    def join(self, handle: str, lobby: str) -> tuple[Peer, int]:
        peer = self.connect(handle)
        self.send_join(peer, lobby)
        first = self.inbox[handle][0]
        assert first[0] == ID
        return peer, first[1]


@pytest.fixture
def h() -> Harness:
    return Harness()


def visible_ids(messages: list[tuple[int, int, object]]) -> list[int]:
    return [id_ for type_, id_, _ in messages if type_ == PEER_CONNECT]


# -- creating and joining ------------------------------------------------------


def test_create_mesh_lobby_makes_the_creator_host_with_id_1(h: Harness) -> None:
    host, name = h.create(mesh=True)
    assert re.fullmatch(r"[A-Za-z0-9]{16,}", name)
    assert h.core.lobbies[name].host is host
    assert h.core.lobbies[name].topology is MESH
    assert JoinDeadline(host) not in h.timers
    assert [type(e).__name__ for e in h.events] == ["PeerConnected", "LobbyCreated", "PeerJoined"]
    assert isinstance(h.events[1], LobbyCreated) and h.events[1].mesh


def test_create_client_server_lobby(h: Harness) -> None:
    host = h.connect("host")
    h.send_join(host, "", CLIENT_SERVER)
    (id_msg, join_msg) = h.take("host")
    assert id_msg == (ID, 1, CLIENT_SERVER)
    assert h.core.lobbies[join_msg[2]].topology is CLIENT_SERVER
    assert [e.mode for e in h.events if isinstance(e, LobbyCreated)] == ["client-server"]


def test_lobby_names_are_distinct_and_drawn_from_a_cryptographic_source() -> None:
    core = Signaling()
    assert type(core.lobby_names.rng).__name__ == "SystemRandom"
    names = set()
    for n in range(50):
        peer, _ = core.connect(f"p{n}")
        core.receive(peer, Join("", MESH))
        names.add(peer.lobby.name)
    assert len(names) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{16}", name) for name in names)


def test_joiner_gets_id_then_peer_connects_then_join_in_that_order(h: Harness) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    b, b_id = h.join("b", name)
    assert h.take("b") == [
        (ID, b_id, MESH),
        (PEER_CONNECT, 1, ""),
        (PEER_CONNECT, a_id, ""),
        (JOIN, 0, name),
    ]
    assert h.take("a") == [
        (ID, a_id, MESH),
        (PEER_CONNECT, 1, ""),
        (JOIN, 0, name),
        (PEER_CONNECT, b_id, ""),
    ]
    assert h.take("host") == [(PEER_CONNECT, a_id, ""), (PEER_CONNECT, b_id, "")]


def test_joining_ignores_the_topology_asked_and_reports_the_lobby_topology(h: Harness) -> None:
    _, name = h.create(mesh=False)
    peer = h.connect("a")
    h.send_join(peer, name, MESH)
    assert h.take("a")[0] == (ID, peer.peer_id, CLIENT_SERVER)


def test_a_topology_names_itself_in_logs_and_failures() -> None:
    assert (repr(MESH), repr(CLIENT_SERVER)) == ("<mesh topology>", "<client-server topology>")


def test_mesh_everyone_sees_everyone(h: Harness) -> None:
    host, name = h.create(mesh=True)
    joined = [h.join(f"p{n}", name) for n in range(3)]
    ids = [peer_id for _, peer_id in joined]
    assert sorted(visible_ids(h.take("host"))) == sorted(ids)
    for n, peer_id in enumerate(ids):
        others = {1, *ids} - {peer_id}
        assert set(visible_ids(h.take(f"p{n}"))) == others


def test_client_server_non_hosts_only_see_the_host(h: Harness) -> None:
    host, name = h.create(mesh=False)
    a, a_id = h.join("a", name)
    b, b_id = h.join("b", name)
    assert visible_ids(h.take("a")) == [1]
    assert visible_ids(h.take("b")) == [1]
    assert visible_ids(h.take("host")) == [a_id, b_id]


class Teams(Topology):
    """A topology the core has never heard of: the host sees no one, and the
    others see only their own team (the first letter of their handle)."""

    @property
    def name(self) -> str:
        return "teams"

    def can_see(self, host: object, viewer: object, other: object) -> bool:
        if viewer is host or other is host:
            return False
        assert isinstance(viewer, Peer) and isinstance(other, Peer)
        return str(viewer.handle)[0] == str(other.handle)[0]


def test_a_new_topology_needs_no_change_to_the_core(h: Harness) -> None:
    teams = Teams()
    host = h.connect("host")
    h.send_join(host, "", teams)
    name = h.take("host")[1][2]
    assert [e.mode for e in h.events if isinstance(e, LobbyCreated)] == ["teams"]
    x1, x1_id = h.join("x1", name)
    y1, y1_id = h.join("y1", name)
    x2, x2_id = h.join("x2", name)
    assert h.take("x1") == [(ID, x1_id, teams), (JOIN, 0, name), (PEER_CONNECT, x2_id, "")]
    assert h.take("x2") == [(ID, x2_id, teams), (PEER_CONNECT, x1_id, ""), (JOIN, 0, name)]
    assert visible_ids(h.take("y1")) == []
    assert h.take("host") == []

    h.send(x1, OFFER, x2_id, "o")
    assert h.take("x2") == [(OFFER, x1_id, "o")]
    h.send(x1, OFFER, y1_id, "to the other team")
    assert h.closed == {"x1": CloseReason.INVALID_DESTINATION}
    assert h.take("x2") == [(PEER_DISCONNECT, x1_id, "")]
    assert h.take("y1") == h.take("host") == []


def test_peer_ids_are_in_range_and_never_0_or_1() -> None:
    class Scripted(random.Random):
        def __init__(self) -> None:
            super().__init__(0)
            self.calls: list[tuple[int, int]] = []

        def randint(self, a: int, b: int) -> int:
            self.calls.append((a, b))
            return super().randint(a, b)

    rng = Scripted()
    h = Harness(rng=rng)
    for n in range(20):
        h.connect(f"p{n}")
    assert set(rng.calls) == {(2, 2**31 - 1)}
    assert all(2 <= peer_id <= 2**31 - 1 for peer_id in h.core.peers)


def test_peer_ids_are_unique_while_in_use() -> None:
    class Colliding(random.Random):
        def randint(self, a: int, b: int) -> int:
            return script.pop(0)

    script = [5, 5, 5, 9, 5]
    h = Harness(rng=Colliding())
    first = h.connect("first")
    second = h.connect("second")
    assert (first.peer_id, second.peer_id) == (5, 9)
    h.leave(first)
    assert h.connect("third").peer_id == 5


# -- relaying ------------------------------------------------------------------


@pytest.mark.parametrize("kind", [OFFER, ANSWER, CANDIDATE])
def test_relay_rewrites_the_sender_id_and_keeps_data(h: Harness, kind: int) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    b, b_id = h.join("b", name)
    for handle in ("host", "a", "b"):
        h.take(handle)
    data = "\n0\n1\ncandidate:1 1 UDP 2122 127.0.0.1 5000 typ host ✓"
    h.send(a, kind, 1, data)
    h.send(host, kind, b_id, data + "!")
    h.send(b, kind, a_id, "")
    assert h.take("host") == [(kind, a_id, data)]
    assert h.take("b") == [(kind, 1, data + "!")]
    assert h.take("a") == [(kind, b_id, "")]
    assert not h.closed


def test_relay_produces_exactly_one_send(h: Harness) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    actions = h.send(a, OFFER, 1, "sdp")
    assert actions == [Send(host, Message(OFFER, a_id, "sdp"))]


@pytest.mark.parametrize(
    "destination",
    ["self", "unknown", "zero", "host real id", "other lobby"],
)
def test_relay_to_an_invisible_destination_closes_the_sender(h: Harness, destination: str) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    other_host, other_name = h.create("other")
    o, o_id = h.join("o", other_name)
    for handle in ("host", "a", "other", "o"):
        h.take(handle)
    dest = {
        "self": a_id,
        "unknown": 123456,
        "zero": 0,
        "host real id": host.peer_id,
        "other lobby": o_id,
    }[destination]
    h.send(a, CANDIDATE, dest, "x")
    assert h.closed == {"a": CloseReason.INVALID_DESTINATION}
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]
    assert h.take("o") == [] and h.take("other") == []
    # The other lobby is untouched and still relays.
    h.send(o, OFFER, 1, "still here")
    assert h.take("other") == [(OFFER, o_id, "still here")]


def test_client_server_relay_between_non_hosts_is_an_invalid_destination(h: Harness) -> None:
    host, name = h.create(mesh=False)
    a, a_id = h.join("a", name)
    b, b_id = h.join("b", name)
    h.send(a, OFFER, 1, "to host is fine")
    assert h.take("host")[-1] == (OFFER, a_id, "to host is fine")
    h.send(host, ANSWER, a_id, "host to a is fine")
    assert h.take("a")[-1] == (ANSWER, 1, "host to a is fine")
    h.send(a, OFFER, b_id, "a to b is not")
    assert h.closed == {"a": CloseReason.INVALID_DESTINATION}
    # Only the host could see a, so only the host hears it leave.
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]
    assert PEER_DISCONNECT not in [m[0] for m in h.take("b")]


# -- sealing -------------------------------------------------------------------


def test_seal_tells_everyone_refuses_joins_then_closes_all_after_the_timeout() -> None:
    h = Harness(SignalingConfig(seal_timeout=7.5))
    host, name = h.create()
    a, _ = h.join("a", name)
    h.take("a")
    h.take("host")
    h.send(host, SEAL)
    assert h.take("host") == [(SEAL, 0, "")]
    assert h.take("a") == [(SEAL, 0, "")]
    timer = SealDeadline(h.core.lobbies[name])
    assert h.timers[timer] == 7.5

    late = h.connect("late")
    h.send_join(late, name)
    assert h.closed == {"late": CloseReason.LOBBY_IS_SEALED}

    # Relaying still works while the lobby is sealed.
    h.send(a, CANDIDATE, 1, "c")
    assert h.take("host")[-1][0] == CANDIDATE

    h.fire(timer)
    assert h.closed["host"] == h.closed["a"] == CloseReason.SEAL_COMPLETE
    assert CloseReason.SEAL_COMPLETE.code == 1000
    assert name not in h.core.lobbies
    again = h.connect("again")
    h.send_join(again, name)
    assert h.closed["again"] == CloseReason.LOBBY_DOES_NOT_EXIST


def test_only_the_host_may_seal(h: Harness) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    h.send(a, SEAL)
    assert h.closed == {"a": CloseReason.ONLY_HOST_CAN_SEAL}
    assert not h.core.lobbies[name].sealed
    assert h.take("host")[-1] == (PEER_DISCONNECT, a_id, "")


def test_a_repeated_seal_does_not_push_the_deadline_back(h: Harness) -> None:
    host, name = h.create()
    h.send(host, SEAL)
    h.take("host")
    assert h.send(host, SEAL) == []
    assert list(h.timers) == [SealDeadline(h.core.lobbies[name])]


def test_host_leaving_a_sealed_lobby_cancels_the_seal_timer(h: Harness) -> None:
    host, name = h.create()
    a, _ = h.join("a", name)
    h.send(host, SEAL)
    h.leave(host)
    assert h.closed == {"a": CloseReason.HOST_DISCONNECTED}
    assert h.timers == {}


def test_sealed_lobby_members_leaving_still_notify_the_rest(h: Harness) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    h.send(host, SEAL)
    h.take("host")
    h.leave(a)
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]


# -- join timeout --------------------------------------------------------------


def test_join_timeout_closes_a_connection_that_never_joined() -> None:
    h = Harness(SignalingConfig(join_timeout=0.25))
    peer = h.connect("idle")
    assert h.timers == {JoinDeadline(peer): 0.25}
    h.fire(JoinDeadline(peer))
    assert h.closed == {"idle": CloseReason.NO_LOBBY}
    assert CloseReason.NO_LOBBY.code == 4000


def test_joining_cancels_the_join_timeout_and_a_late_fire_is_harmless(h: Harness) -> None:
    host, name = h.create()
    assert h.timers == {}
    assert h.core.timer_fired(JoinDeadline(host)) == []


def test_leaving_before_joining_cancels_the_join_timeout(h: Harness) -> None:
    peer = h.connect("brief")
    h.leave(peer)
    assert h.timers == {}
    assert h.core.peers == {}


# -- leaving -------------------------------------------------------------------


def test_non_host_leaving_notifies_the_members_who_could_see_it(h: Harness) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    b, _ = h.join("b", name)
    for handle in ("host", "a", "b"):
        h.take(handle)
    h.leave(a)
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]
    assert h.take("b") == [(PEER_DISCONNECT, a_id, "")]
    assert a_id not in h.core.peers
    assert h.closed == {}


def test_client_server_leaving_notifies_only_the_host(h: Harness) -> None:
    host, name = h.create(mesh=False)
    a, a_id = h.join("a", name)
    b, _ = h.join("b", name)
    for handle in ("host", "a", "b"):
        h.take(handle)
    h.leave(a)
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]
    assert h.take("b") == []


def test_host_leaving_closes_everyone_and_deletes_the_lobby(h: Harness) -> None:
    host, name = h.create()
    a, _ = h.join("a", name)
    b, _ = h.join("b", name)
    h.take("a")
    h.take("b")
    h.leave(host)
    assert h.closed == {"a": CloseReason.HOST_DISCONNECTED, "b": CloseReason.HOST_DISCONNECTED}
    assert h.take("a") == [] and h.take("b") == []
    assert name not in h.core.lobbies
    late = h.connect("late")
    h.send_join(late, name)
    assert h.closed["late"] == CloseReason.LOBBY_DOES_NOT_EXIST
    assert LobbyClosed(name, CloseReason.HOST_DISCONNECTED.text) in h.events


def test_a_closed_peer_is_ignored_until_its_socket_is_gone(h: Harness) -> None:
    host, name = h.create()
    a, _ = h.join("a", name)
    h.send(a, SEAL)  # closes a
    h.take("host")
    assert h.send(a, OFFER, 1, "too late") == []
    assert h.send_join(a, "") == []
    assert h.core.reject(a, CloseReason.INVALID_FORMAT) == []
    assert h.take("host") == []
    assert h.leave(a) == []
    assert a.peer_id not in h.core.peers


# -- limits --------------------------------------------------------------------


def test_peer_limit_refuses_the_next_connection_and_frees_on_leave() -> None:
    h = Harness(SignalingConfig(max_peers=2))
    first = h.connect("1")
    h.connect("2")
    refused = h.connect("3")
    assert h.closed == {"3": CloseReason.TOO_MANY_PEERS}
    assert refused.peer_id == 0 and refused.closing
    assert h.leave(refused) == []
    assert len(h.core.peers) == 2
    h.leave(first)
    h.connect("4")
    assert "4" not in h.closed


def test_lobby_limit_refuses_creating_but_not_joining() -> None:
    h = Harness(SignalingConfig(max_lobbies=1))
    host, name = h.create()
    extra = h.connect("extra")
    h.send_join(extra, "")
    assert h.closed == {"extra": CloseReason.TOO_MANY_LOBBIES}
    h.join("a", name)
    assert "a" not in h.closed
    h.leave(host)
    h.create("next")
    assert "next" not in h.closed


# -- protocol errors -----------------------------------------------------------


@pytest.mark.parametrize("second", ["", "own lobby", "other lobby"])
def test_a_second_join_is_refused(h: Harness, second: str) -> None:
    host, name = h.create()
    _, other = h.create("other")
    a, a_id = h.join("a", name)
    h.take("host")
    h.send_join(a, {"": "", "own lobby": name, "other lobby": other}[second])
    assert h.closed == {"a": CloseReason.ALREADY_IN_LOBBY}
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]
    assert len(h.core.lobbies[other].members) == 1


def test_a_host_sending_a_second_join_takes_its_lobby_down(h: Harness) -> None:
    host, name = h.create()
    h.join("a", name)
    h.send_join(host, "")
    assert h.closed == {
        "host": CloseReason.ALREADY_IN_LOBBY,
        "a": CloseReason.HOST_DISCONNECTED,
    }
    assert h.core.lobbies == {}


def test_joining_an_unknown_lobby(h: Harness) -> None:
    peer = h.connect("a")
    h.send_join(peer, "NoSuchLobby12345")
    assert h.closed == {"a": CloseReason.LOBBY_DOES_NOT_EXIST}
    assert h.timers == {}


@pytest.mark.parametrize(
    "kind", [ID, PEER_CONNECT, PEER_DISCONNECT, OFFER, ANSWER, CANDIDATE, SEAL, 8, 99]
)
def test_anything_but_join_before_joining(h: Harness, kind: int) -> None:
    peer = h.connect("a")
    h.send(peer, kind, 1, "x")
    assert h.closed == {"a": CloseReason.NEED_LOBBY}
    assert h.timers == {}


@pytest.mark.parametrize("kind", [ID, PEER_CONNECT, PEER_DISCONNECT, 8, 1000, sys.maxsize])
def test_unknown_or_server_only_type_in_a_lobby_is_an_invalid_command(
    h: Harness, kind: int
) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    h.take("host")
    h.send(a, kind, 1, "")
    assert h.closed == {"a": CloseReason.INVALID_COMMAND}
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]


@pytest.mark.parametrize("in_lobby", [False, True])
def test_an_id_from_a_client_is_answered_as_any_server_only_type(
    h: Harness, in_lobby: bool
) -> None:
    # The JSON codec reads every type-1 message as an Identity, whoever sent it.
    host, name = h.create()
    peer = h.join("a", name)[0] if in_lobby else h.connect("a")
    h.apply(h.core.receive(peer, Identity(1, MESH)))
    expected = CloseReason.INVALID_COMMAND if in_lobby else CloseReason.NEED_LOBBY
    assert h.closed == {"a": expected}


@pytest.mark.parametrize("reason", [CloseReason.INVALID_FORMAT, CloseReason.INVALID_TRANSFER_MODE])
def test_rejections_below_the_message_level_close_only_that_peer(
    h: Harness, reason: CloseReason
) -> None:
    host, name = h.create()
    a, a_id = h.join("a", name)
    h.take("host")
    h.apply(h.core.reject(a, reason))
    assert h.closed == {"a": reason}
    assert h.take("host") == [(PEER_DISCONNECT, a_id, "")]


def test_protocol_errors_are_noticed_with_peer_lobby_and_reason(h: Harness) -> None:
    host, name = h.create()
    a, _ = h.join("a", name)
    h.send(a, SEAL)
    closed = [e for e in h.events if isinstance(e, PeerDisconnected)]
    assert len(closed) == 1
    assert closed[0].peer.peer_id == a.peer_id
    assert closed[0].peer.lobby == name
    assert (closed[0].code, closed[0].reason) == (4000, "Only host can seal the lobby")
    assert closed[0].by_server


def test_relays_produce_no_events(h: Harness) -> None:
    host, name = h.create()
    a, _ = h.join("a", name)
    before = len(h.events)
    for kind in (OFFER, ANSWER, CANDIDATE):
        h.send(a, kind, 1, "x")
    assert len(h.events) == before


# -- shutdown ------------------------------------------------------------------


def test_shutdown_closes_everyone_with_1001_and_refuses_newcomers(h: Harness) -> None:
    host, name = h.create()
    h.join("a", name)
    _, sealed = h.create("sealer")
    h.send(h.core.lobbies[sealed].host, SEAL)
    h.connect("waiting")
    h.apply(h.core.shutdown())
    assert set(h.closed) == {"host", "a", "sealer", "waiting"}
    assert set(h.closed.values()) == {CloseReason.SHUTDOWN}
    assert CloseReason.SHUTDOWN.code == 1001
    assert h.timers == {}
    assert h.core.lobbies == {}
    h.connect("late")
    assert h.closed["late"] == CloseReason.SHUTDOWN


# -- the close table -----------------------------------------------------------


def test_close_table_matches_the_protocol_exactly() -> None:
    table = {reason.text: reason.code for reason in CloseReason}
    assert table == {
        "Have not joined lobby yet": 4000,
        "Room host has disconnected": 4000,
        "Only host can seal the lobby": 4000,
        "Seal complete": 1000,
        "Too many lobbies open, disconnecting": 4000,
        "Already in a lobby": 4000,
        "Lobby does not exists": 4000,
        "Lobby is sealed": 4000,
        "Invalid message format": 4000,
        "Invalid message when not in a lobby": 4000,
        "Invalid destination": 4000,
        "Invalid command": 4000,
        "Too many peers connected": 4000,
        "Invalid transfer mode, must be text": 4000,
        "Server shutting down": 1001,
        "Too many lobbies from your address": 4000,
        "Too many messages": 4000,
        "Lobby expired": 4000,
        "Too many pings": 1008,
        "Too many fragments": 1008,
        "Internal server error": 1011,
        "Lobby is full": 4000,
        "Not allowed in this lobby": 4000,
        "Lobby closed by the server": 4000,
        "Kicked by the server": 4000,
        "Try again later": 1013,
        "Quick-match picks the lobby": 4000,
    }


def test_lobby_name_characters_are_evenly_drawn() -> None:
    core = Signaling(rng=random.Random(7))
    counts: dict[str, int] = defaultdict(int)
    for _ in range(5000):
        for character in core.lobby_names.new_name(core.lobbies):
            counts[character] += 1
    expected = 5000 * 16 / 62
    assert len(counts) == 62
    assert all(abs(count - expected) < 0.15 * expected for count in counts.values())
