"""Rule-based tests of the pure core: hypothesis drives `Signaling` through
random sequences of every event an adapter can feed it, and checks each step
against a model of the protocol written independently of the core.

The machine plays the adapter, as tests/test_core.py's harness does: it
carries out the actions (records what each connection was sent and how it was
closed, keeps a table of the timers the core started and fires live ones) and
feeds the core only what a real adapter could (nothing from a connection
whose socket is gone, no timer that was cancelled or has fired).

After every step it checks the invariants: each peer is in at most one lobby,
which lists it; ids are unique and never 0 or 1; nothing is sent to a peer
after it was closed and no peer is closed twice; every timer is cancelled or
fires, once; once every connection is gone, nothing is left; no lobby has
more members than its size, and no quick-match lobby is left unsealed with
its N members (or, its wait over, with its minimum). Each step is
also compared with the model: who is closed and why, and what each connection
is sent, in order. From each connection's own view: it hears of a peer
before hearing from it, it hears of exactly the lobby members it may see, and
in a client-server lobby a non-host never hears of anyone but the host.

Quick-match connections (a `LobbyRequest` with a pool, as a /match/<pool>
URL gives) take part as any other: their JOIN with no name is matched into
the oldest unsealed lobby of their pool, mode and size (the model finds it
by its own reading of the rule), a named JOIN from one is refused, and the
model seals a pool lobby at N members, or at its minimum once its wait ran out.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import get_args

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from webrtc_signal import CloseReason, Signaling, SignalingConfig
from webrtc_signal.protocol.core import (
    MIN_PEER_ID,
    CancelTimer,
    Close,
    JoinDeadline,
    MatchWaitDeadline,
    Peer,
    SealDeadline,
    Send,
    StartTimer,
    Timer,
)
from webrtc_signal.protocol.events import Event
from webrtc_signal.protocol.messages import HOST_ID, Identity, Join, Message, MessageType
from webrtc_signal.protocol.pools import LobbyRequest
from webrtc_signal.protocol.topology import CLIENT_SERVER, MESH, Topology

MAX_PEERS = 8
MAX_LOBBIES = 3
# Peer ids are drawn from a range barely larger than the peer limit, so that
# the core must often draw again to keep them unique.
ID_RANGE = 10
RELAY_TYPES = (MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE)

# A message as a connection receives it; an ID's data is the lobby's topology.
Received = tuple[int, int, object]


class FewIds(random.Random):
    """Peer ids from [MIN_PEER_ID, MIN_PEER_ID + ID_RANGE): collisions are common."""

    def randint(self, a: int, b: int) -> int:
        assert (a, b) == (MIN_PEER_ID, 2**31 - 1)
        return super().randint(a, a + ID_RANGE - 1)


@dataclass(eq=False)
class Conn:
    """One connection, as the adapter and the model see it."""

    handle: int
    peer: Peer
    refused: bool
    # The adapter's record: is the socket there, was a Close carried out.
    socket_open: bool = True
    got_close: bool = False
    # The model's: closed by the core (why), or gone before it was.
    closed: CloseReason | None = None
    left: bool = False
    lobby: ModelLobby | None = None
    # The client's view: the ids it was told are in its lobby.
    knows: set[int] = field(default_factory=set)
    my_id: int = 0
    # What its URL asked (a quick-match pool), if anything.
    request: LobbyRequest | None = None

    @property
    def done(self) -> bool:
        """The core is finished with it: closed it, or saw it go."""
        return self.refused or self.closed is not None or self.left


@dataclass(eq=False)
class ModelLobby:
    name: str
    host: Conn
    topology: Topology
    members: dict[int, Conn] = field(default_factory=dict)
    sealed: bool = False
    # A quick-match lobby: its pool, mode and size; its minimum and whether
    # its wait runs (``waiting``) or ran out (``waited``).
    pool_key: tuple[str, str, int] | None = None
    min_members: int = 0
    waiting: bool = False
    waited: bool = False

    def public_id(self, conn: Conn) -> int:
        return HOST_ID if conn is self.host else conn.peer.peer_id

    def sees(self, viewer: Conn, other: Conn) -> bool:
        """The protocol's visibility rule, written again rather than asked of
        the topology under test."""
        if viewer is other:
            return False
        if self.topology is MESH:
            return True
        return viewer is self.host or other is self.host


def active(conn: Conn) -> bool:
    """Not closed by the core, nor gone."""
    return not conn.done


def waiting(conn: Conn) -> bool:
    return not conn.done and conn.lobby is None


def seated(conn: Conn) -> bool:
    return not conn.done and conn.lobby is not None


def hosting(conn: Conn) -> bool:
    return seated(conn) and conn.lobby is not None and conn is conn.lobby.host


def guest(conn: Conn) -> bool:
    return seated(conn) and conn.lobby is not None and conn is not conn.lobby.host


def sees_someone(conn: Conn) -> bool:
    return seated(conn) and bool(conn.knows)


def closing(conn: Conn) -> bool:
    """Closed by the core, its socket not gone yet."""
    return conn.done


def matching(conn: Conn) -> bool:
    """On a quick-match URL, in no lobby yet."""
    return waiting(conn) and conn.request is not None


def pool_key(conn: Conn, topology: Topology) -> tuple[str, str, int]:
    request = conn.request
    assert request is not None and request.pool is not None and request.size is not None
    return (request.pool, topology.name, request.size)


OTHER_MESSAGES = [
    Identity(1, MESH),
    Identity(5, CLIENT_SERVER),
    Message(MessageType.ID, 3, ""),
    Message(MessageType.PEER_CONNECT, 1, ""),
    Message(MessageType.PEER_DISCONNECT, 1, ""),
    Message(8, 0, ""),
    Message(99, 1, "x"),
    Message(-1, 0, "payload"),  # the line codec's unknown letter
]
NOT_JOINS = [
    *OTHER_MESSAGES,
    Message(MessageType.SEAL, 0, ""),
    *(Message(kind, 1, "x") for kind in RELAY_TYPES),
]
DESTINATIONS = [0, 1, *range(MIN_PEER_ID, MIN_PEER_ID + ID_RANGE), 2**31 - 1]
topologies = st.sampled_from([MESH, CLIENT_SERVER])
picks = st.integers(min_value=0, max_value=63)
# Two pools, two sizes, with or without a wait: enough for lobbies of one
# key to fill while those of another wait beside them.
match_requests = st.builds(
    lambda pool, size, wait: LobbyRequest(pool, size, 2 if wait else None, 1.0 if wait else None),
    st.sampled_from(["a", "a", "a", "b/c"]),
    st.integers(min_value=2, max_value=3),
    st.booleans(),
)


class SignalingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core: Signaling
        self.conns: list[Conn] = []
        self.by_handle: dict[int, Conn] = {}
        self.lobbies: dict[str, ModelLobby] = {}
        self.names_seen: list[str] = []
        self.accepting = True
        # The adapter's timer table: the live timers, in the order started.
        self.timers: dict[Timer, None] = {}
        self.started: set[Timer] = set()
        # What the current step should do, filled by the model.
        self.want_sends: dict[int, list[Received]] = {}
        self.want_closes: dict[int, CloseReason] = {}

    @initialize(
        seed=st.integers(min_value=0, max_value=2**32 - 1),
        lobbies=st.lists(
            st.tuples(
                topologies, st.integers(min_value=0, max_value=3), st.none() | match_requests
            ),
            max_size=MAX_LOBBIES,
        ),
        waiting=st.integers(min_value=0, max_value=2),
    )
    def start(
        self,
        seed: int,
        lobbies: list[tuple[Topology, int, LobbyRequest | None]],
        waiting: int,
    ) -> None:
        """Start from lobbies (topology, how many guests, and for a pool
        lobby the players' request) and connections in none, built through
        the core as any others: random steps alone seldom get far before
        closing everyone."""
        config = SignalingConfig(
            max_peers=MAX_PEERS, max_lobbies=MAX_LOBBIES, join_timeout=1.0, seal_timeout=2.0
        )
        self.core = Signaling(config, rng=FewIds(seed))
        for topology, guests, request in lobbies:
            if len(self.conns) >= MAX_PEERS:
                break
            self.create_lobby(self.new_connection(request), topology)
            name = self.names_seen[-1]
            for _ in range(min(guests, MAX_PEERS - len(self.conns))):
                if request is None:
                    self.join(self.new_connection(), name, MESH)
                else:
                    self.match(self.new_connection(request), topology)
        for _ in range(min(waiting, MAX_PEERS - len(self.conns))):
            self.new_connection()

    # -- choosing -----------------------------------------------------------------
    # Rules pick a connection among those in the state the rule is about, so
    # that few steps are spent on moves that can only close a connection.

    def among(self, wanted: Callable[[Conn], bool], index: int) -> Conn:
        conns = [conn for conn in self.conns if conn.socket_open and wanted(conn)]
        return conns[index % len(conns)]

    def exists(self, wanted: Callable[[Conn], bool]) -> bool:
        return any(conn.socket_open and wanted(conn) for conn in self.conns)

    # -- the model ------------------------------------------------------------------

    def expect_send(self, conn: Conn, message: Received) -> None:
        self.want_sends.setdefault(conn.handle, []).append(message)

    def expect_close(self, conn: Conn, reason: CloseReason) -> None:
        assert conn.handle not in self.want_closes
        event(f"closed: {reason.name}")
        self.want_closes[conn.handle] = reason
        conn.closed = reason
        self.detach(conn)

    def detach(self, conn: Conn) -> None:
        lobby = conn.lobby
        if lobby is None:
            return
        conn.lobby = None
        public_id = lobby.public_id(conn)
        del lobby.members[public_id]
        if conn is lobby.host:
            self.delete(lobby, CloseReason.HOST_DISCONNECTED)
            return
        for member in lobby.members.values():
            if lobby.sees(member, conn):
                self.expect_send(member, (MessageType.PEER_DISCONNECT, public_id, ""))

    def delete(self, lobby: ModelLobby, reason: CloseReason) -> None:
        event(f"lobby deleted: {reason.name}, {len(lobby.members)} left")
        del self.lobbies[lobby.name]
        members = list(lobby.members.values())
        lobby.members.clear()
        for member in members:
            member.lobby = None
            assert member.handle not in self.want_closes
            self.want_closes[member.handle] = reason
            member.closed = reason

    def enter(self, conn: Conn, lobby: ModelLobby) -> None:
        newcomer_id = lobby.public_id(conn)
        self.expect_send(conn, (MessageType.ID, newcomer_id, lobby.topology))
        for member_id, member in lobby.members.items():
            if lobby.sees(member, conn):
                self.expect_send(member, (MessageType.PEER_CONNECT, newcomer_id, ""))
                self.expect_send(conn, (MessageType.PEER_CONNECT, member_id, ""))
        lobby.members[newcomer_id] = conn
        conn.lobby = lobby
        self.expect_send(conn, (MessageType.JOIN, 0, lobby.name))

    # -- the adapter ----------------------------------------------------------------

    def run(self, actions: list, creating: tuple[Conn, Topology] | None = None) -> None:
        """Carry out ``actions`` as an adapter would, checking each, then
        compare what was sent and closed with what the model expects.
        ``creating``: the connection expected to create a lobby, and its
        topology (the model learns the lobby's name from the core)."""
        sends: dict[int, list[Received]] = {}
        closes: dict[int, CloseReason] = {}
        for action in actions:
            if type(action) is Send:
                conn = self.by_handle[action.peer.handle]
                assert action.peer is conn.peer
                assert conn.socket_open, f"sent to {conn.handle}, whose socket is gone"
                assert not conn.got_close, f"sent to {conn.handle} after closing it"
                message = action.message
                if isinstance(message, Identity):
                    received: Received = (message.type, message.id, message.topology)
                else:
                    received = (message.type, message.id, message.data)
                self.client_view(conn, received)
                sends.setdefault(conn.handle, []).append(received)
            elif type(action) is Close:
                conn = self.by_handle[action.peer.handle]
                assert action.peer is conn.peer
                assert conn.socket_open, f"closed {conn.handle}, whose socket is gone"
                assert not conn.got_close, f"closed {conn.handle} twice"
                conn.got_close = True
                closes[conn.handle] = action.reason
            elif type(action) is StartTimer:
                timer = action.timer
                assert timer not in self.started, f"{timer} started twice"
                self.started.add(timer)
                self.timers[timer] = None
            elif type(action) is CancelTimer:
                assert action.timer in self.timers, f"cancelled {action.timer}, which is not live"
                del self.timers[action.timer]
            else:
                assert isinstance(action, get_args(Event)), action
        if creating is not None:
            self.created(*creating, sends.get(creating[0].handle, []))
        assert closes == self.want_closes, (closes, self.want_closes)
        assert sends == self.want_sends, (sends, self.want_sends)
        self.want_sends, self.want_closes = {}, {}

    def created(self, host: Conn, topology: Topology, sent: list[Received]) -> None:
        """The model learns a new lobby's name from the core's JOIN."""
        assert sent, f"{host.handle} created no lobby"
        kind, _, name = sent[-1]
        assert kind == MessageType.JOIN
        assert isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9]{16}", name)
        assert name not in self.names_seen, "a lobby name used twice"
        self.names_seen.append(name)
        lobby = ModelLobby(name, host, topology)
        request = host.request
        if request is not None and request.pool is not None:
            lobby.pool_key = pool_key(host, topology)
            lobby.min_members = request.min_members or 0
            lobby.waiting = request.wait is not None
        self.lobbies[name] = lobby
        self.enter(host, lobby)

    def client_view(self, conn: Conn, message: Received) -> None:
        """What a client may expect: to hear of a peer before hearing from
        it, of each peer once, and in a client-server lobby of the host alone."""
        kind, peer_id, _ = message
        if kind == MessageType.ID:
            conn.my_id = peer_id
            return
        if kind not in (MessageType.PEER_CONNECT, MessageType.PEER_DISCONNECT, *RELAY_TYPES):
            return
        lobby = conn.lobby
        if lobby is not None and lobby.topology is CLIENT_SERVER and conn is not lobby.host:
            assert peer_id == HOST_ID, f"non-host {conn.handle} heard of {peer_id}"
        if kind == MessageType.PEER_CONNECT:
            assert peer_id not in conn.knows and peer_id != conn.my_id
            conn.knows.add(peer_id)
        elif kind == MessageType.PEER_DISCONNECT:
            assert peer_id in conn.knows, f"{conn.handle} told {peer_id} left, never joined"
            conn.knows.remove(peer_id)
        else:
            assert peer_id in conn.knows, f"{conn.handle} got a relay from unknown {peer_id}"

    # -- rules ----------------------------------------------------------------------

    @rule()
    def connect(self) -> None:
        self.new_connection()

    def new_connection(self, request: LobbyRequest | None = None) -> Conn:
        handle = len(self.conns)
        registered = sum(1 for conn in self.conns if not conn.refused and conn.socket_open)
        peer, actions = self.core.connect(handle, request=request)
        refused = not self.accepting or registered >= MAX_PEERS
        conn = Conn(handle, peer, refused, request=request)
        self.conns.append(conn)
        self.by_handle[handle] = conn
        if refused:
            reason = CloseReason.SHUTDOWN if not self.accepting else CloseReason.TOO_MANY_PEERS
            event(f"refused: {reason.name}")
            self.want_closes[handle] = reason
            conn.closed = reason
        self.run(actions)
        if not refused:
            assert JoinDeadline(peer) in self.timers
        return conn

    # Newcomers keep the population up: closing is for good, and most moves
    # close someone.
    @rule(topology=topologies)
    def newcomer_creates(self, topology: Topology) -> None:
        conn = self.new_connection()
        if not conn.done:
            self.create_lobby(conn, topology)

    @precondition(lambda self: self.names_seen)
    @rule(which=picks, topology=topologies)
    def newcomer_joins(self, which: int, topology: Topology) -> None:
        conn = self.new_connection()
        if not conn.done:
            self.join(conn, self.names_seen[which % len(self.names_seen)], topology)

    @precondition(lambda self: self.exists(waiting))
    @rule(index=picks, topology=topologies)
    def create(self, index: int, topology: Topology) -> None:
        self.create_lobby(self.among(waiting, index), topology)

    def create_lobby(self, conn: Conn, topology: Topology) -> None:
        if conn.request is not None:
            self.match(conn, topology)
            return
        creating = None
        if len(self.lobbies) >= MAX_LOBBIES:
            self.expect_close(conn, CloseReason.TOO_MANY_LOBBIES)
        else:
            creating = (conn, topology)
        self.run(self.core.receive(conn.peer, Join("", topology)), creating)

    @precondition(lambda self: self.exists(waiting) and self.names_seen)
    @rule(index=picks, which=picks, topology=topologies)
    def join_known(self, index: int, which: int, topology: Topology) -> None:
        """Join a lobby that exists, or did: open, sealed, or deleted."""
        name = self.names_seen[which % len(self.names_seen)]
        self.join(self.among(waiting, index), name, topology)

    @precondition(lambda self: self.exists(active))
    @rule(index=picks, topology=topologies)
    def join_unknown(self, index: int, topology: Topology) -> None:
        self.join(self.among(active, index), "NoSuchLobby12345", topology)

    @precondition(lambda self: self.exists(seated))
    @rule(index=picks, which=picks, topology=topologies)
    def join_again(self, index: int, which: int, topology: Topology) -> None:
        """A member sends a second JOIN: to create, or for any lobby."""
        names = ["", *self.names_seen]
        self.join(self.among(seated, index), names[which % len(names)], topology)

    def join(self, conn: Conn, name: str, topology: Topology) -> None:
        if conn.lobby is not None:
            self.expect_close(conn, CloseReason.ALREADY_IN_LOBBY)
        elif conn.request is not None:
            # The lobby's name is the server's to pick on a match URL.
            self.expect_close(conn, CloseReason.QUICK_MATCH_PICKS_LOBBY)
        elif name not in self.lobbies:
            assert name, "create() creates"
            self.expect_close(conn, CloseReason.LOBBY_DOES_NOT_EXIST)
        elif self.lobbies[name].sealed:
            self.expect_close(conn, CloseReason.LOBBY_IS_SEALED)
        else:
            lobby = self.lobbies[name]
            event(f"joined {lobby.topology.name}, {len(lobby.members)} there")
            self.enter(conn, lobby)
            self.seal_if_ready(lobby)
        self.run(self.core.receive(conn.peer, Join(name, topology)))

    # -- quick-match ---------------------------------------------------------------

    @rule(request=match_requests, topology=topologies, count=st.integers(min_value=1, max_value=3))
    def newcomers_match(self, request: LobbyRequest, topology: Topology, count: int) -> None:
        """A few players asking for the same pool, mode and size, one after
        another: enough for lobbies to fill."""
        for _ in range(count):
            conn = self.new_connection(request)
            if not conn.done:
                self.match(conn, topology)

    @rule(request=match_requests)
    def connect_to_a_pool(self, request: LobbyRequest) -> None:
        """A quick-match connection that has not sent its JOIN yet (the
        other rules then pick it among the waiting: a named JOIN, a relay...)."""
        self.new_connection(request)

    @precondition(lambda self: self.exists(matching))
    @rule(index=picks, topology=topologies)
    def match_waiting(self, index: int, topology: Topology) -> None:
        self.match(self.among(matching, index), topology)

    def match(self, conn: Conn, topology: Topology) -> None:
        """JOIN "" from a quick-match connection: the model's own reading
        of the rule picks its lobby."""
        key = pool_key(conn, topology)
        creating = None
        filling = [
            lobby for lobby in self.lobbies.values() if lobby.pool_key == key and not lobby.sealed
        ]
        if filling:
            lobby = filling[0]  # the lobbies are kept in creation order
            event(f"matched into a lobby of {len(lobby.members)}, size {key[2]}")
            assert len(lobby.members) < key[2], "an unsealed pool lobby is full"
            self.enter(conn, lobby)
            self.seal_if_ready(lobby)
        elif len(self.lobbies) >= MAX_LOBBIES:
            self.expect_close(conn, CloseReason.TOO_MANY_LOBBIES)
        else:
            event("matched into a new lobby")
            creating = (conn, topology)
        self.run(self.core.receive(conn.peer, Join("", topology)), creating)

    def seal_if_ready(self, lobby: ModelLobby) -> None:
        """A pool lobby seals at N members, or at its minimum once its wait
        ran out, as a host's SEAL would."""
        if lobby.pool_key is None or lobby.sealed:
            return
        members = len(lobby.members)
        if members >= lobby.pool_key[2] or (lobby.waited and members >= lobby.min_members):
            event(f"pool lobby sealed with {members}")
            self.seal_model(lobby)

    def seal_model(self, lobby: ModelLobby) -> None:
        lobby.sealed = True
        lobby.waiting = False
        for member in lobby.members.values():
            self.expect_send(member, (MessageType.SEAL, 0, ""))

    @precondition(lambda self: self.exists(seated))
    @rule(
        index=picks,
        kind=st.sampled_from(RELAY_TYPES),
        destination=st.sampled_from(DESTINATIONS),
        data=st.sampled_from(["", "v=0", "\n0\n0\ncandidate ü"]),
    )
    def relay(self, index: int, kind: int, destination: int, data: str) -> None:
        """A relay to any id: a member, someone elsewhere, or no one."""
        self.send_relay(self.among(seated, index), kind, destination, data)

    @precondition(lambda self: self.exists(seated))
    @rule(index=picks, which=picks, kind=st.sampled_from(RELAY_TYPES))
    def relay_within_the_lobby(self, index: int, which: int, kind: int) -> None:
        """A relay to a member of the sender's lobby (itself included),
        visible to it or not."""
        sender = self.among(seated, index)
        assert sender.lobby is not None
        members = sorted(sender.lobby.members)
        self.send_relay(sender, kind, members[which % len(members)], "sdp")

    @precondition(lambda self: self.exists(sees_someone))
    @rule(index=picks, which=picks, kind=st.sampled_from(RELAY_TYPES))
    def relay_to_a_peer_it_sees(self, index: int, which: int, kind: int) -> None:
        """The relay signaling is made of (the others are mostly mistakes)."""
        sender = self.among(sees_someone, index)
        assert sender.lobby is not None
        visible = sorted(sender.knows)
        self.send_relay(sender, kind, visible[which % len(visible)], "sdp")

    def send_relay(self, conn: Conn, kind: int, destination: int, data: str) -> None:
        lobby = conn.lobby
        assert lobby is not None
        target = lobby.members.get(destination)
        if target is None or not lobby.sees(conn, target):
            self.expect_close(conn, CloseReason.INVALID_DESTINATION)
        else:
            # Exactly the destination, from the sender's public id.
            event(f"relayed in {lobby.topology.name}")
            self.expect_send(target, (kind, lobby.public_id(conn), data))
        self.run(self.core.receive(conn.peer, Message(kind, destination, data)))

    @precondition(lambda self: self.exists(hosting))
    @rule(index=picks)
    def seal_by_host(self, index: int) -> None:
        self.seal(self.among(hosting, index))

    @precondition(lambda self: self.exists(guest))
    @rule(index=picks)
    def seal_by_guest(self, index: int) -> None:
        self.seal(self.among(guest, index))

    def seal(self, conn: Conn) -> None:
        lobby = conn.lobby
        assert lobby is not None
        if conn is not lobby.host:
            self.expect_close(conn, CloseReason.ONLY_HOST_CAN_SEAL)
        elif not lobby.sealed:
            event(f"sealed with {len(lobby.members)}")
            self.seal_model(lobby)
        self.run(self.core.receive(conn.peer, Message(MessageType.SEAL, 0, "")))

    @precondition(lambda self: self.exists(waiting))
    @rule(index=picks, message=st.sampled_from(NOT_JOINS))
    def before_joining(self, index: int, message: Message | Identity) -> None:
        """Anything but a JOIN from a connection in no lobby."""
        conn = self.among(waiting, index)
        self.expect_close(conn, CloseReason.NEED_LOBBY)
        self.run(self.core.receive(conn.peer, message))

    @precondition(lambda self: self.exists(seated))
    @rule(index=picks, message=st.sampled_from(OTHER_MESSAGES))
    def other_message(self, index: int, message: Message | Identity) -> None:
        """Unknown types, and types only the server may send, in a lobby."""
        conn = self.among(seated, index)
        self.expect_close(conn, CloseReason.INVALID_COMMAND)
        self.run(self.core.receive(conn.peer, message))

    @precondition(lambda self: self.exists(active))
    @rule(
        index=picks,
        reason=st.sampled_from([CloseReason.INVALID_FORMAT, CloseReason.INVALID_TRANSFER_MODE]),
    )
    def reject(self, index: int, reason: CloseReason) -> None:
        """A frame the adapter could not make a message of."""
        conn = self.among(active, index)
        self.expect_close(conn, reason)
        self.run(self.core.reject(conn.peer, reason))

    @precondition(lambda self: self.exists(active))
    @rule(index=picks)
    def leave(self, index: int) -> None:
        """A connection the core has not closed goes away (the client left)."""
        conn = self.among(active, index)
        event("left " + ("a lobby" if conn.lobby else "before joining"))
        conn.left = True
        self.detach(conn)
        conn.socket_open = False
        self.run(self.core.disconnect(conn.peer))

    @precondition(lambda self: self.exists(closing))
    @rule(
        index=picks,
        last_words=st.sampled_from(
            [None, Join("", MESH), Join("NoSuchLobby12345", MESH), *NOT_JOINS]
        ),
    )
    def drop(self, index: int, last_words: Message | Join | Identity | None) -> None:
        """A connection the core closed (or refused) is gone at last. What it
        sent meanwhile, or what could not be read, is ignored."""
        conn = self.among(closing, index)
        if last_words is not None:
            self.run(self.core.receive(conn.peer, last_words))
            self.run(self.core.reject(conn.peer, CloseReason.INVALID_FORMAT))
        conn.socket_open = False
        self.run(self.core.disconnect(conn.peer))

    @precondition(lambda self: self.timers)
    @rule(index=picks)
    def fire(self, index: int) -> None:
        timers = list(self.timers)
        timer = timers[index % len(timers)]
        del self.timers[timer]
        if isinstance(timer, JoinDeadline):
            conn = self.by_handle[timer.peer.handle]
            assert conn.lobby is None and not conn.done
            self.expect_close(conn, CloseReason.NO_LOBBY)
        elif isinstance(timer, MatchWaitDeadline):
            lobby = self.lobbies[timer.lobby.name]
            assert lobby.waiting and not lobby.sealed
            event(f"wait over with {len(lobby.members)}")
            lobby.waiting = False
            lobby.waited = True
            self.seal_if_ready(lobby)
        else:
            lobby = self.lobbies[timer.lobby.name]
            self.delete(lobby, CloseReason.SEAL_COMPLETE)
        self.run(self.core.timer_fired(timer))

    @precondition(lambda self: any(isinstance(t, MatchWaitDeadline) for t in self.timers))
    @rule(index=picks)
    def wait_runs_out(self, index: int) -> None:
        """A pool lobby's wait, rather than any timer: the rule that starts
        lobbies at their minimum needs it to run out while they fill."""
        waits = [t for t in self.timers if isinstance(t, MatchWaitDeadline)]
        timers = list(self.timers)
        self.fire(timers.index(waits[index % len(waits)]))

    @rule(now=st.integers(min_value=0, max_value=3))
    def shutdown(self, now: int) -> None:
        # Only a quarter of the times it is picked: it ends everything but
        # refusals. (Not on 0, which hypothesis draws more often than others.)
        if now != 3:
            return
        self.accepting = False
        for lobby in list(self.lobbies.values()):
            self.delete(lobby, CloseReason.SHUTDOWN)
        for conn in self.conns:
            if conn.socket_open and not conn.done:
                self.expect_close(conn, CloseReason.SHUTDOWN)
        self.run(self.core.shutdown())
        assert not self.timers

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def peers_are_the_registered_open_connections(self) -> None:
        registered = [conn for conn in self.conns if not conn.refused and conn.socket_open]
        ids = [conn.peer.peer_id for conn in registered]
        assert len(ids) == len(set(ids)), f"ids reused: {ids}"
        assert {id(conn.peer) for conn in registered} == {
            id(peer) for peer in self.core.peers.values()
        }
        for peer_id, peer in self.core.peers.items():
            assert peer.peer_id == peer_id
            assert peer_id not in (0, 1)
        for conn in self.conns:
            assert conn.peer.closing == (conn.done or not conn.socket_open)

    @invariant()
    def each_peer_is_in_at_most_one_lobby_which_lists_it(self) -> None:
        seats: dict[int, str] = {}
        for name, lobby in self.core.lobbies.items():
            assert lobby.name == name
            assert lobby.members.get(HOST_ID) is lobby.host
            for public_id, member in lobby.members.items():
                assert id(member) not in seats, "a peer in two lobbies"
                seats[id(member)] = name
                assert member.lobby is lobby
                assert public_id == lobby.public_id(member)
                assert not member.closing
        for peer in self.core.peers.values():
            if peer.lobby is not None:
                assert seats.get(id(peer)) == peer.lobby.name

    @invariant()
    def lobbies_are_the_models(self) -> None:
        assert set(self.core.lobbies) == set(self.lobbies)
        for name, model in self.lobbies.items():
            lobby = self.core.lobbies[name]
            assert lobby.host is model.host.peer
            assert lobby.topology is model.topology
            assert lobby.sealed == model.sealed
            assert {k: id(v) for k, v in lobby.members.items()} == {
                k: id(v.peer) for k, v in model.members.items()
            }
        for conn in self.conns:
            if conn.socket_open and not conn.refused:
                expected = self.core.lobbies[conn.lobby.name] if conn.lobby else None
                assert conn.peer.lobby is expected

    @invariant()
    def live_timers_are_exactly_the_pending_deadlines(self) -> None:
        waiting = {
            id(conn.peer)
            for conn in self.conns
            if conn.socket_open and not conn.done and conn.lobby is None
        }
        joins = {id(t.peer) for t in self.timers if isinstance(t, JoinDeadline)}
        assert joins == waiting, "a join deadline runs for the wrong peers"
        seals = {id(t.lobby) for t in self.timers if isinstance(t, SealDeadline)}
        sealed = {id(lobby) for lobby in self.core.lobbies.values() if lobby.sealed}
        assert seals == sealed, "a seal deadline runs for the wrong lobbies"
        waits = {t.lobby.name for t in self.timers if isinstance(t, MatchWaitDeadline)}
        assert waits == {name for name, lobby in self.lobbies.items() if lobby.waiting}

    @invariant()
    def no_lobby_is_over_its_size_and_no_full_pool_lobby_is_unsealed(self) -> None:
        for lobby in self.core.lobbies.values():
            if lobby.size is not None:
                assert len(lobby.members) <= lobby.size, "a lobby over its size"
            if lobby.pool_key is not None and not lobby.sealed:
                assert len(lobby.members) < lobby.size, "a full pool lobby left unsealed"
                if lobby.waited:
                    assert len(lobby.members) < (lobby.min_members or 0)
        # The core's index of lobbies filling is exactly the unsealed pool lobbies.
        filling = sum(
            1 for lobby in self.core.lobbies.values() if lobby.pool_key and not lobby.sealed
        )
        assert len(self.core.pools) == filling

    @invariant()
    def members_know_exactly_whom_they_may_see(self) -> None:
        for lobby in self.lobbies.values():
            for conn in lobby.members.values():
                visible = {
                    public_id
                    for public_id, other in lobby.members.items()
                    if lobby.sees(conn, other)
                }
                assert conn.knows == visible, (conn.handle, conn.knows, visible)

    @invariant()
    def nothing_is_left_once_every_connection_is_gone(self) -> None:
        if not any(conn.socket_open for conn in self.conns):
            assert self.core.peers == {}
            assert self.core.lobbies == {}
            assert not self.timers


TestSignalingMachine = SignalingMachine.TestCase
# Its 200 runs of 50 steps go through the core's lines again and again.
pytestmark = pytest.mark.unmeasured
TestSignalingMachine.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
