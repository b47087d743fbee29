"""The signaling rules, free of any I/O (sans-IO, in the style of h11 and wsproto).

`Signaling` owns the peers and lobbies. An adapter feeds it events (a
connection opened, a message arrived, a connection closed, a timer fired) and
carries out the actions it returns (send a message, close a connection, start
or cancel a timer), in order. Nothing here imports Twisted or Autobahn and
nothing here reads a clock: time only enters as `timer_fired` events.

Connections are identified by an opaque ``handle`` chosen by the adapter; the
core stores it on the `Peer` and hands it back inside actions: the core is
generic in its type (``Signaling[H]``), which it never looks inside.

A peer that the core closes is detached from its lobby at once (its lobby
mates hear PEER_DISCONNECT, or are closed too if it hosted). Whatever that
connection still sends until its socket is gone is ignored, so a closing peer
can never touch a lobby again.

What happens (a peer connected, joined, left; a lobby was created, sealed,
closed) comes out as events (`events`) among the actions, in order; the
adapter hands them to its observers, its log among them. A game server's
``authorize_join`` reaches the core as a pure `JoinPolicy`, asked before any
JOIN is applied; its control methods (`close_lobby`, `kick`, `reserve`) are
events in like any other.
"""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .access import limit_key
from .config import SignalingConfig
from .events import (
    ConnectionRefused,
    Event,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
    PeerLeft,
)
from .hooks import JoinPolicy, LobbyInfo, PeerInfo
from .limits import LobbyLimits
from .messages import HOST_ID, RELAY_TYPES, AnyMessage, Identity, Join, Message, MessageType
from .reasons import RESERVATION_EXPIRED, CloseReason, Reason
from .topology import CLIENT_SERVER, MESH, Topology

LOBBY_NAME_ALPHABET = string.ascii_letters + string.digits
LOBBY_NAME_LENGTH = 16
_LOBBY_NAMES = len(LOBBY_NAME_ALPHABET) ** LOBBY_NAME_LENGTH
_LOBBY_NAME_BITS = _LOBBY_NAMES.bit_length()
# Peer ids are drawn from [2, 2^31-1]: 0 means "no peer" and 1 is the host's alias.
MIN_PEER_ID = 2
MAX_PEER_ID = 2**31 - 1


# The adapter's connection object, which the core stores and hands back.
H = TypeVar("H")


@dataclass(eq=False, slots=True)
class Peer(Generic[H]):
    """One connection as the core sees it. ``peer_id`` is 0 for a connection
    that was refused on arrival (over the peer limit, or during shutdown)."""

    handle: H
    peer_id: int
    lobby: Lobby[H] | None = None
    closing: bool = False
    # The client's IP address as the adapter saw it (after any trusted proxy
    # header), for per-address limits and logs; "" when unknown.
    address: str = ""
    # What the game server's authentication said about this connection
    # (None = anonymous). The core never looks inside.
    identity: object = None
    # "json" or "lines", set by the adapter once the first message picks it.
    framing: str = ""


@dataclass(eq=False, slots=True)
class Lobby(Generic[H]):
    name: str
    # None while a reserved lobby waits for its host.
    host: Peer[H] | None
    # Who is told about whom, and who may relay to whom.
    topology: Topology
    # Members by the id the others know them under: the host is HOST_ID.
    members: dict[int, Peer[H]] = field(default_factory=dict)
    sealed: bool = False
    # The key its creator's address counts under for per-address lobby limits.
    owner_key: str = ""
    # Whether a LobbyAgeDeadline runs for it (--max-lobby-age, from its creation).
    age_limited: bool = False
    # Its own size limit (reserve); None: config.max_lobby_size.
    size: int | None = None

    def public_id(self, peer: Peer[H]) -> int:
        return HOST_ID if peer is self.host else peer.peer_id


# Timers are named by what they guard; the adapter maps them to real delayed calls.
@dataclass(frozen=True, slots=True)
class JoinDeadline(Generic[H]):
    peer: Peer[H]


@dataclass(frozen=True, slots=True)
class SealDeadline(Generic[H]):
    lobby: Lobby[H]


@dataclass(frozen=True, slots=True)
class LobbyAgeDeadline(Generic[H]):
    """An unsealed lobby's end under ``max_lobby_age``."""

    lobby: Lobby[H]


@dataclass(frozen=True, slots=True)
class ReservationDeadline(Generic[H]):
    """A reserved lobby's end if nobody claims it."""

    lobby: Lobby[H]


Timer = JoinDeadline[H] | SealDeadline[H] | LobbyAgeDeadline[H] | ReservationDeadline[H]


# Actions are made per message and never changed: plain (not frozen)
# dataclasses, which are three times cheaper to make. Timers stay frozen:
# they are dictionary keys.
@dataclass(slots=True)
class Send(Generic[H]):
    peer: Peer[H]
    message: Message | Identity


@dataclass(slots=True)
class Close(Generic[H]):
    peer: Peer[H]
    reason: Reason


@dataclass(frozen=True, slots=True)
class StartTimer(Generic[H]):
    timer: Timer[H]
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Generic[H]):
    timer: Timer[H]


# Events (what happened, for observers) are actions too, so that they keep
# their place in the order of things.
Action = Send[H] | Close[H] | StartTimer[H] | CancelTimer[H] | Event


class Signaling(Generic[H]):
    """The lobby registry and every protocol rule."""

    def __init__(
        self,
        config: SignalingConfig | None = None,
        rng: random.Random | None = None,
        authorize_join: JoinPolicy | None = None,
    ):
        self.config = config or SignalingConfig()
        # Asked before a JOIN is applied (see `JoinPolicy`); None allows all.
        self.authorize_join = authorize_join
        # Lobby names are the secret that lets one join: a cryptographic
        # source. Peer ids grant nothing (a peer only ever reaches the peers
        # its lobby shows it), so a fast generator, seeded from the system's,
        # spares a system call per connection. Tests inject one for both.
        self._name_rng = rng or secrets.SystemRandom()
        self._id_rng = rng or random.Random()
        self.peers: dict[int, Peer[H]] = {}
        self.lobbies: dict[str, Lobby[H]] = {}
        self.accepting = True
        self.lobby_limits = LobbyLimits(
            self.config.max_lobbies_per_address, self.config.max_lobby_rate
        )
        # Draining (see `drain`): lobbies already open carry on, no new ones.
        self.draining = False

    # -- events -------------------------------------------------------------

    def connect(
        self, handle: H, address: str = "", identity: object = None
    ) -> tuple[Peer[H], list[Action[H]]]:
        """A connection opened from ``address`` (an IP address as text).
        Returns its `Peer`, to pass to later events."""
        if not self.accepting:
            return self._refuse(handle, CloseReason.SHUTDOWN, address)
        if len(self.peers) >= self.config.max_peers:
            return self._refuse(handle, CloseReason.TOO_MANY_PEERS, address)
        peer = Peer(handle, self._new_peer_id(), address=address, identity=identity)
        self.peers[peer.peer_id] = peer
        return peer, [
            PeerConnected(peer_info(peer)),
            StartTimer(JoinDeadline(peer), self.config.join_timeout),
        ]

    def receive(self, peer: Peer[H], message: AnyMessage, now: float = 0.0) -> list[Action[H]]:
        """A well-formed message arrived from ``peer``. ``now`` is the
        adapter's clock in seconds, for rate limits."""
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
            return self._join(peer, message, now)
        # An ID is only ever the server's to send: answered as any other
        # command a client may not send.
        if lobby is None:
            return self._close(peer, CloseReason.NEED_LOBBY)
        return self._close(peer, CloseReason.INVALID_COMMAND)

    def reject(self, peer: Peer[H], reason: CloseReason) -> list[Action[H]]:
        """The adapter found something wrong below the message level (a frame
        that is not text, a payload that does not parse): close the peer."""
        if peer.closing:
            return []
        return self._close(peer, reason)

    def disconnect(self, peer: Peer[H], code: int = 1006, reason: str = "") -> list[Action[H]]:
        """The connection is gone, whoever closed it: ``code`` and ``reason``
        are those of the client's close frame (1006 when there was none)."""
        # A refused connection (id 0) was never registered.
        if self.peers.get(peer.peer_id) is not peer:
            return []
        del self.peers[peer.peer_id]
        if peer.closing:
            return []
        peer.closing = True
        return [*_gone(peer, code, reason, by_server=False), *self._detach(peer)]

    def timer_fired(self, timer: Timer[H]) -> list[Action[H]]:
        """A timer the core started, and has not cancelled, ran out. The
        actions never cancel it: every timer is cancelled or fires, not both."""
        if isinstance(timer, JoinDeadline):
            peer = timer.peer
            if peer.lobby is None and not peer.closing:
                # Not _close: its _detach would cancel this very timer.
                peer.closing = True
                reason = CloseReason.NO_LOBBY
                return [Close(peer, reason), *_gone(peer, reason.code, reason.text, True)]
            return []
        lobby = timer.lobby
        if self.lobbies.get(lobby.name) is not lobby:
            return []
        if isinstance(timer, ReservationDeadline):
            if lobby.host is not None:
                return []
            return self._delete_lobby(lobby, RESERVATION_EXPIRED, fired=timer)
        if isinstance(timer, LobbyAgeDeadline):
            if lobby.sealed:
                return []
            return self._delete_lobby(lobby, CloseReason.LOBBY_EXPIRED, fired=timer)
        return self._delete_lobby(lobby, CloseReason.SEAL_COMPLETE, fired=timer)

    def shutdown(self) -> list[Action[H]]:
        """Close everyone (1001), drop every lobby, cancel every timer, and
        refuse connections from now on."""
        self.accepting = False
        actions: list[Action[H]] = []
        for lobby in list(self.lobbies.values()):
            actions += self._delete_lobby(lobby, CloseReason.SHUTDOWN)
        for peer in list(self.peers.values()):
            if not peer.closing:
                actions += self._close(peer, CloseReason.SHUTDOWN)
        return actions

    def drain(self) -> list[Action[H]]:
        """Stop creating lobbies, so that the server can stop once the open
        ones are gone: joins, relays and seals in them carry on. A peer that
        asks for a new lobby meanwhile is closed with 1001 `Server shutting
        down`, as it would be a moment later anyway; a client that reconnects
        then reaches a server that is not going away. Refusing new
        connections is the adapter's part (HTTP 503 at the upgrade)."""
        self.draining = True
        return []

    # -- the game server's control --------------------------------------------

    def reserve(
        self, mesh: bool, ttl: float, size: int | None = None
    ) -> tuple[Lobby[H] | None, list[Action[H]]]:
        """A lobby without a host yet: the first peer to join it by name
        becomes its host; unclaimed after ``ttl`` seconds, it is gone.
        ``size``: its own member limit instead of ``max_lobby_size``. None
        when the lobby limit (or shutdown) forbids it."""
        if not self.accepting or len(self.lobbies) >= self.config.max_lobbies:
            return None, []
        topology = MESH if mesh else CLIENT_SERVER
        lobby: Lobby[H] = Lobby(self._new_lobby_name(), host=None, topology=topology, size=size)
        self.lobbies[lobby.name] = lobby
        return lobby, [
            StartTimer(ReservationDeadline(lobby), ttl),
            LobbyCreated(lobby.name, None, mesh),
        ]

    def close_lobby(self, name: str, reason: Reason) -> list[Action[H]] | None:
        """Close every member of lobby ``name`` for ``reason`` and forget the
        lobby; None if there is no such lobby."""
        lobby = self.lobbies.get(name)
        if lobby is None:
            return None
        return self._delete_lobby(lobby, reason)

    def seal_lobby(self, name: str) -> list[Action[H]] | None:
        """Seal lobby ``name`` as if its host had; None if there is no such
        lobby. A reservation nobody has claimed is sealed too: nobody can
        claim it any more, and it closes at its seal timeout or at the end
        of its reservation, whichever comes first."""
        lobby = self.lobbies.get(name)
        if lobby is None:
            return None
        return self._seal_now(lobby)

    def kick(self, peer_id: int, reason: Reason) -> list[Action[H]] | None:
        """Close one peer for ``reason``; its lobby sees it go as if it had
        disconnected. None if there is no such peer (or it is closing)."""
        peer = self.peers.get(peer_id)
        if peer is None or peer.closing:
            return None
        return self._close(peer, reason)

    def lobby_info(self, lobby: Lobby[H], created: float) -> LobbyInfo:
        """A snapshot of ``lobby``; ``created`` is the adapter's timestamp."""
        host = lobby.host
        return LobbyInfo(
            name=lobby.name,
            mesh=lobby.topology is MESH,
            sealed=lobby.sealed,
            reserved=host is None,
            host=peer_info(host) if host is not None else None,
            members=tuple(peer_info(member) for member in lobby.members.values()),
            created=created,
            size=lobby.size,
        )

    # -- rules --------------------------------------------------------------

    def _join(self, peer: Peer[H], message: Join, now: float) -> list[Action[H]]:
        if peer.lobby is not None:
            return self._close(peer, CloseReason.ALREADY_IN_LOBBY)
        # The game server decides first, before anything about the lobby is
        # looked at: a refused peer learns nothing (not even whether a name exists).
        refusal = self._authorize(peer, message.lobby)
        if refusal is not None:
            return self._close(peer, refusal)
        actions: list[Action[H]] = []
        if message.lobby == "":
            if self.draining:
                return self._close(peer, CloseReason.SHUTDOWN)
            if len(self.lobbies) >= self.config.max_lobbies:
                return self._close(peer, CloseReason.TOO_MANY_LOBBIES)
            owner_key = limit_key(peer.address)
            if not self.lobby_limits.may_create(owner_key, now):
                return self._close(peer, CloseReason.TOO_MANY_LOBBIES_FROM_ADDRESS)
            lobby = Lobby(self._new_lobby_name(), host=peer, topology=message.topology)
            lobby.owner_key = owner_key
            self.lobbies[lobby.name] = lobby
            if self.config.max_lobby_age:
                actions.append(StartTimer(LobbyAgeDeadline(lobby), self.config.max_lobby_age))
                lobby.age_limited = True
            created = True
        else:
            found = self.lobbies.get(message.lobby)
            if found is None:
                return self._close(peer, CloseReason.LOBBY_DOES_NOT_EXIST)
            if found.sealed:
                return self._close(peer, CloseReason.LOBBY_IS_SEALED)
            limit = self.config.max_lobby_size if found.size is None else found.size
            if limit and len(found.members) >= limit:
                return self._close(peer, CloseReason.LOBBY_FULL)
            lobby = found
            created = False
            if lobby.host is None:
                # A reserved lobby's first JOIN claims it: host, in the
                # lobby's own mode (the JOIN's mode id is not looked at).
                lobby.host = peer
                actions.append(CancelTimer(ReservationDeadline(lobby)))

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
        info = peer_info(peer)
        if created:
            actions.append(
                LobbyCreated(lobby.name, info, lobby.topology is MESH, mode=lobby.topology.name)
            )
        actions.append(PeerJoined(lobby.name, info, len(lobby.members)))
        return actions

    def _authorize(self, peer: Peer[H], lobby: str) -> Reason | None:
        """The game server's word on ``peer`` joining ``lobby`` ("" creates)."""
        if self.authorize_join is None:
            return None
        return self.authorize_join(peer_info(peer), lobby, lobby == "")

    def _seal(self, peer: Peer[H], lobby: Lobby[H]) -> list[Action[H]]:
        if peer is not lobby.host:
            return self._close(peer, CloseReason.ONLY_HOST_CAN_SEAL)
        return self._seal_now(lobby)

    def _seal_now(self, lobby: Lobby[H]) -> list[Action[H]]:
        if lobby.sealed:
            # A repeated SEAL must not push the deadline back.
            return []
        lobby.sealed = True
        actions: list[Action[H]] = [
            Send(member, Message(MessageType.SEAL, 0)) for member in lobby.members.values()
        ]
        if lobby.age_limited:
            # --max-lobby-age is for lobbies that never start; this one has.
            lobby.age_limited = False
            actions.append(CancelTimer(LobbyAgeDeadline(lobby)))
        actions.append(StartTimer(SealDeadline(lobby), self.config.seal_timeout))
        actions.append(LobbySealed(lobby.name, len(lobby.members)))
        return actions

    def _close(self, peer: Peer[H], reason: Reason) -> list[Action[H]]:
        """Close one peer for ``reason`` and take it out of its lobby now."""
        peer.closing = True
        return [
            Close(peer, reason),
            *_gone(peer, reason.code, reason.text, by_server=True),
            *self._detach(peer),
        ]

    def _detach(self, peer: Peer[H]) -> list[Action[H]]:
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
        self, lobby: Lobby[H], reason: Reason, fired: Timer[H] | None = None
    ) -> list[Action[H]]:
        """Close every remaining member for ``reason`` and forget the lobby.
        Its running timers are cancelled, but for ``fired``, the one that
        has just run out (if that is why)."""
        del self.lobbies[lobby.name]
        self.lobby_limits.closed(lobby.owner_key)
        running: list[Timer[H]] = []
        if lobby.sealed:
            running.append(SealDeadline(lobby))
        if lobby.age_limited:
            running.append(LobbyAgeDeadline(lobby))
        if lobby.host is None:
            running.append(ReservationDeadline(lobby))
        actions: list[Action[H]] = [CancelTimer(timer) for timer in running if timer != fired]
        # Snapshots first, while the members still show their lobby.
        members = [(member, peer_info(member)) for member in lobby.members.values()]
        for member, info in members:
            member.lobby = None
            member.closing = True
            actions.append(Close(member, reason))
            actions.append(PeerLeft(lobby.name, info, reason.text))
        lobby.members.clear()
        actions.append(LobbyClosed(lobby.name, reason.text, code=reason.code))
        for _, info in members:
            actions.append(PeerDisconnected(info, reason.code, reason.text, by_server=True))
        return actions

    def _refuse(
        self, handle: H, reason: CloseReason, address: str
    ) -> tuple[Peer[H], list[Action[H]]]:
        peer = Peer(handle, peer_id=0, closing=True, address=address)
        return peer, [Close(peer, reason), ConnectionRefused(address, reason.code, reason.text)]

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


def peer_info(peer: Peer[Any]) -> PeerInfo:
    """A snapshot of ``peer`` for hooks, events and the control methods."""
    lobby = peer.lobby
    if lobby is None:
        return PeerInfo(peer.peer_id, None, None, peer.identity, peer.address, peer.framing)
    return PeerInfo(
        peer.peer_id, lobby.public_id(peer), lobby.name, peer.identity, peer.address, peer.framing
    )


def _gone(peer: Peer[H], code: int, reason: str, by_server: bool) -> list[Action[H]]:
    """The events of one peer going: it leaves its lobby, then disconnects."""
    info = peer_info(peer)
    gone = PeerDisconnected(info, code, reason, by_server=by_server)
    if info.lobby is None:
        return [gone]
    return [PeerLeft(info.lobby, info, reason), gone]
