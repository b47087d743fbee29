"""The signaling rules, free of any I/O (sans-IO, in the style of h11 and wsproto).

`Signaling` owns the peers and lobbies. An adapter feeds it events (a
connection opened, a message arrived, a connection closed, a timer fired) and
carries out the actions it returns (send a message, close a connection, start
or cancel a timer), in order. Nothing here imports Twisted or Autobahn and
nothing here reads a clock: time only enters as `timer_fired` events.

Connections are identified by an opaque ``handle`` chosen by the adapter; the
core stores it on the `Peer` and hands it back inside actions.

A peer that the core closes is detached from its lobby at once (its lobby
mates hear PEER_DISCONNECT, or are closed too if it hosted). Whatever that
connection still sends until its socket is gone is ignored, so a closing peer
can never touch a lobby again.
"""

from __future__ import annotations

import random
import secrets
import string
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum

from .config import SignalingConfig
from .messages import HOST_ID, RELAY_TYPES, AnyMessage, Identity, Join, Message, MessageType
from .reasons import CloseReason
from .topology import Topology

LOBBY_NAME_ALPHABET = string.ascii_letters + string.digits
LOBBY_NAME_LENGTH = 16
_LOBBY_NAMES = len(LOBBY_NAME_ALPHABET) ** LOBBY_NAME_LENGTH
_LOBBY_NAME_BITS = _LOBBY_NAMES.bit_length()
# Peer ids are drawn from [2, 2^31-1]: 0 means "no peer" and 1 is the host's alias.
MIN_PEER_ID = 2
MAX_PEER_ID = 2**31 - 1


@dataclass(eq=False, slots=True)
class Peer:
    """One connection as the core sees it. ``peer_id`` is 0 for a connection
    that was refused on arrival (over the peer limit, or during shutdown)."""

    handle: Hashable
    peer_id: int
    lobby: Lobby | None = None
    closing: bool = False


@dataclass(eq=False, slots=True)
class Lobby:
    name: str
    host: Peer
    # Who is told about whom, and who may relay to whom.
    topology: Topology
    # Members by the id the others know them under: the host is HOST_ID.
    members: dict[int, Peer] = field(default_factory=dict)
    sealed: bool = False

    def public_id(self, peer: Peer) -> int:
        return HOST_ID if peer is self.host else peer.peer_id


# Timers are named by what they guard; the adapter maps them to real delayed calls.
@dataclass(frozen=True, slots=True)
class JoinDeadline:
    peer: Peer


@dataclass(frozen=True, slots=True)
class SealDeadline:
    lobby: Lobby


Timer = JoinDeadline | SealDeadline


# Actions are made per message and never changed: plain (not frozen)
# dataclasses, which are three times cheaper to make. Timers stay frozen:
# they are dictionary keys.
@dataclass(slots=True)
class Send:
    peer: Peer
    message: Message | Identity


@dataclass(slots=True)
class Close:
    peer: Peer
    reason: CloseReason


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


class NoticeKind(StrEnum):
    CONNECTED = "connected"
    REFUSED = "refused"
    LOBBY_CREATED = "lobby created"
    LOBBY_JOINED = "lobby joined"
    LOBBY_SEALED = "lobby sealed"
    LOBBY_DELETED = "lobby deleted"
    LEFT = "left"
    CLOSED = "closed"


@dataclass(slots=True)
class Notice:
    """Something worth a log line. Relays never produce one."""

    kind: NoticeKind
    peer: Peer | None
    lobby: str = ""
    reason: CloseReason | None = None
    members: int = 0
    mode: str = ""


Action = Send | Close | StartTimer | CancelTimer | Notice


class Signaling:
    """The lobby registry and every protocol rule."""

    def __init__(self, config: SignalingConfig | None = None, rng: random.Random | None = None):
        self.config = config or SignalingConfig()
        # Lobby names are the secret that lets one join: a cryptographic
        # source. Peer ids grant nothing (a peer only ever reaches the peers
        # its lobby shows it), so a fast generator, seeded from the system's,
        # spares a system call per connection. Tests inject one for both.
        self._name_rng = rng or secrets.SystemRandom()
        self._id_rng = rng or random.Random()
        self.peers: dict[int, Peer] = {}
        self.lobbies: dict[str, Lobby] = {}
        self.accepting = True

    # -- events -------------------------------------------------------------

    def connect(self, handle: Hashable) -> tuple[Peer, list[Action]]:
        """A connection opened. Returns its `Peer`, to pass to later events."""
        if not self.accepting:
            return self._refuse(handle, CloseReason.SHUTDOWN)
        if len(self.peers) >= self.config.max_peers:
            return self._refuse(handle, CloseReason.TOO_MANY_PEERS)
        peer = Peer(handle, self._new_peer_id())
        self.peers[peer.peer_id] = peer
        return peer, [
            Notice(NoticeKind.CONNECTED, peer),
            StartTimer(JoinDeadline(peer), self.config.join_timeout),
        ]

    def receive(self, peer: Peer, message: AnyMessage) -> list[Action]:
        """A well-formed message arrived from ``peer``."""
        if peer.closing:
            return []
        lobby = peer.lobby
        if type(message) is Message:  # anything but a JOIN or an ID
            if lobby is None:
                return self._close(peer, CloseReason.NEED_LOBBY)
            kind = message.type
            if kind in RELAY_TYPES:
                destination = lobby.members.get(message.id)
                # No one relays to itself; whom else, the topology says.
                if (
                    destination is None
                    or destination is peer
                    or not lobby.topology.can_see(lobby.host, peer, destination)
                ):
                    return self._close(peer, CloseReason.INVALID_DESTINATION)
                relayed = Message(kind, lobby.public_id(peer), message.data)
                return [Send(destination, relayed)]
            if kind == MessageType.SEAL:
                return self._seal(peer, lobby)
            return self._close(peer, CloseReason.INVALID_COMMAND)
        if isinstance(message, Join):
            return self._join(peer, message)
        # An ID is only ever the server's to send: answered as any other
        # command a client may not send.
        if lobby is None:
            return self._close(peer, CloseReason.NEED_LOBBY)
        return self._close(peer, CloseReason.INVALID_COMMAND)

    def reject(self, peer: Peer, reason: CloseReason) -> list[Action]:
        """The adapter found something wrong below the message level (a frame
        that is not text, a payload that does not parse): close the peer."""
        if peer.closing:
            return []
        return self._close(peer, reason)

    def disconnect(self, peer: Peer) -> list[Action]:
        """The connection is gone, whoever closed it."""
        # A refused connection (id 0) was never registered.
        if self.peers.get(peer.peer_id) is not peer:
            return []
        del self.peers[peer.peer_id]
        if peer.closing:
            return []
        peer.closing = True
        return [Notice(NoticeKind.LEFT, peer, _lobby_name(peer)), *self._detach(peer)]

    def timer_fired(self, timer: Timer) -> list[Action]:
        """A timer the core started, and has not cancelled, ran out. The
        actions never cancel it: every timer is cancelled or fires, not both."""
        if isinstance(timer, JoinDeadline):
            peer = timer.peer
            if peer.lobby is None and not peer.closing:
                # Not _close: it would cancel this very timer.
                peer.closing = True
                return [
                    Close(peer, CloseReason.NO_LOBBY),
                    Notice(NoticeKind.CLOSED, peer, "", CloseReason.NO_LOBBY),
                ]
            return []
        lobby = timer.lobby
        if self.lobbies.get(lobby.name) is lobby:
            return self._delete_lobby(lobby, CloseReason.SEAL_COMPLETE, seal_timer_fired=True)
        return []

    def shutdown(self) -> list[Action]:
        """Close everyone (1001), drop every lobby, cancel every timer, and
        refuse connections from now on."""
        self.accepting = False
        actions: list[Action] = []
        for lobby in list(self.lobbies.values()):
            actions += self._delete_lobby(lobby, CloseReason.SHUTDOWN)
        for peer in list(self.peers.values()):
            if not peer.closing:
                actions += self._close(peer, CloseReason.SHUTDOWN)
        return actions

    # -- rules --------------------------------------------------------------

    def _join(self, peer: Peer, message: Join) -> list[Action]:
        if peer.lobby is not None:
            return self._close(peer, CloseReason.ALREADY_IN_LOBBY)
        actions: list[Action] = []
        if message.lobby == "":
            if len(self.lobbies) >= self.config.max_lobbies:
                return self._close(peer, CloseReason.TOO_MANY_LOBBIES)
            lobby = Lobby(self._new_lobby_name(), host=peer, topology=message.topology)
            self.lobbies[lobby.name] = lobby
            actions.append(
                Notice(NoticeKind.LOBBY_CREATED, peer, lobby.name, mode=lobby.topology.name)
            )
        else:
            found = self.lobbies.get(message.lobby)
            if found is None:
                return self._close(peer, CloseReason.LOBBY_DOES_NOT_EXIST)
            if found.sealed:
                return self._close(peer, CloseReason.LOBBY_IS_SEALED)
            lobby = found

        newcomer_id = lobby.public_id(peer)
        actions.append(CancelTimer(JoinDeadline(peer)))
        actions.append(Send(peer, Identity(newcomer_id, lobby.topology)))
        topology, host = lobby.topology, lobby.host
        for member_id, member in lobby.members.items():
            if topology.can_see(host, member, peer):
                actions.append(Send(member, Message(MessageType.PEER_CONNECT, newcomer_id)))
                actions.append(Send(peer, Message(MessageType.PEER_CONNECT, member_id)))
        lobby.members[newcomer_id] = peer
        peer.lobby = lobby
        actions.append(Send(peer, Message(MessageType.JOIN, 0, lobby.name)))
        if peer is not lobby.host:  # the host's join is told by LOBBY_CREATED
            actions.append(
                Notice(NoticeKind.LOBBY_JOINED, peer, lobby.name, members=len(lobby.members))
            )
        return actions

    def _seal(self, peer: Peer, lobby: Lobby) -> list[Action]:
        if peer is not lobby.host:
            return self._close(peer, CloseReason.ONLY_HOST_CAN_SEAL)
        if lobby.sealed:
            # A repeated SEAL must not push the deadline back.
            return []
        lobby.sealed = True
        actions: list[Action] = [
            Send(member, Message(MessageType.SEAL, 0)) for member in lobby.members.values()
        ]
        actions.append(StartTimer(SealDeadline(lobby), self.config.seal_timeout))
        actions.append(
            Notice(NoticeKind.LOBBY_SEALED, peer, lobby.name, members=len(lobby.members))
        )
        return actions

    def _close(self, peer: Peer, reason: CloseReason) -> list[Action]:
        """Close one peer for ``reason`` and take it out of its lobby now."""
        lobby_name = _lobby_name(peer)
        peer.closing = True
        return [
            Close(peer, reason),
            Notice(NoticeKind.CLOSED, peer, lobby_name, reason),
            *self._detach(peer),
        ]

    def _detach(self, peer: Peer) -> list[Action]:
        """Undo a peer's place on the server: its join timer, or its lobby seat."""
        lobby = peer.lobby
        if lobby is None:
            return [CancelTimer(JoinDeadline(peer))]
        peer.lobby = None
        public_id = lobby.public_id(peer)
        del lobby.members[public_id]
        if peer is lobby.host:
            return self._delete_lobby(lobby, CloseReason.HOST_DISCONNECTED)
        gone = Message(MessageType.PEER_DISCONNECT, public_id)
        topology, host = lobby.topology, lobby.host
        return [
            Send(member, gone)
            for member in lobby.members.values()
            if topology.can_see(host, member, peer)
        ]

    def _delete_lobby(
        self, lobby: Lobby, reason: CloseReason, seal_timer_fired: bool = False
    ) -> list[Action]:
        """Close every remaining member for ``reason`` and forget the lobby."""
        del self.lobbies[lobby.name]
        actions: list[Action] = []
        if lobby.sealed and not seal_timer_fired:
            actions.append(CancelTimer(SealDeadline(lobby)))
        for member in lobby.members.values():
            member.lobby = None
            member.closing = True
            actions.append(Close(member, reason))
        lobby.members.clear()
        actions.append(Notice(NoticeKind.LOBBY_DELETED, None, lobby.name, reason))
        return actions

    def _refuse(self, handle: Hashable, reason: CloseReason) -> tuple[Peer, list[Action]]:
        peer = Peer(handle, peer_id=0, closing=True)
        return peer, [Close(peer, reason), Notice(NoticeKind.REFUSED, peer, reason=reason)]

    # -- names --------------------------------------------------------------

    def _new_peer_id(self) -> int:
        while True:
            candidate = self._id_rng.randint(MIN_PEER_ID, MAX_PEER_ID)
            if candidate not in self.peers:
                return candidate

    def _new_lobby_name(self) -> str:
        while True:
            # One draw of random bits (one system call with SystemRandom), not
            # one per character; redrawn rather than reduced, so every name
            # is equally likely.
            number = self._name_rng.getrandbits(_LOBBY_NAME_BITS)
            if number >= _LOBBY_NAMES:
                continue
            characters = []
            for _ in range(LOBBY_NAME_LENGTH):
                number, digit = divmod(number, len(LOBBY_NAME_ALPHABET))
                characters.append(LOBBY_NAME_ALPHABET[digit])
            name = "".join(characters)
            if name not in self.lobbies:
                return name


def _lobby_name(peer: Peer) -> str:
    return peer.lobby.name if peer.lobby is not None else ""
