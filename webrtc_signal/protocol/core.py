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

import itertools
import random
from typing import Any, Generic

from .access import limit_key
from .config import CoreConfig
from .events import (
    ConnectionRefused,
    LobbyClosed,
    LobbyCreated,
    LobbySealed,
    PeerConnected,
    PeerDisconnected,
    PeerJoined,
    PeerLeft,
)
from .hooks import JoinPolicy, LobbyInfo
from .limits import LobbyLimits
from .lobby_list import ListPage, ListQuery, LobbyList
from .messages import RELAY_TYPES, AnyMessage, Identity, Join, Message, MessageType
from .names import (
    MAX_PEER_ID,
    MIN_PEER_ID,
    LobbyNames,
    PeerIds,
    RandomLobbyNames,
    RandomPeerIds,
)
from .pools import LobbyRequest, PoolIndex
from .reasons import RESERVATION_EXPIRED, CloseReason, Reason
from .state import (
    CancelTimer,
    Close,
    H,
    JoinDeadline,
    Lobby,
    LobbyAgeDeadline,
    MatchWaitDeadline,
    Output,
    Peer,
    ReservationDeadline,
    SealDeadline,
    Send,
    StartTimer,
    Timer,
    peer_info,
)
from .topology import CLIENT_SERVER, MESH, Topology


class Signaling(Generic[H]):
    """The lobby registry and every protocol rule.

    Its sources of lobby names and peer ids (`names`) and the game server's
    join policy are constructor arguments; the defaults are those of a
    single server. ``rng``, when given, seeds both default sources (tests)."""

    def __init__(
        self,
        config: CoreConfig | None = None,
        rng: random.Random | None = None,
        authorize_join: JoinPolicy | None = None,
        *,
        lobby_names: LobbyNames | None = None,
        peer_ids: PeerIds | None = None,
    ):
        # A SignalingConfig (all layers' settings) works too: its core part.
        self.config: CoreConfig = getattr(config, "core", config) or CoreConfig()
        # Asked before a JOIN is applied (see `JoinPolicy`); None allows all.
        self.authorize_join = authorize_join
        self.lobby_names: LobbyNames = lobby_names or RandomLobbyNames(rng)
        self.peer_ids: PeerIds = peer_ids or RandomPeerIds(rng)
        self.peers: dict[int, Peer[H]] = {}
        self.lobbies: dict[str, Lobby[H]] = {}
        self.accepting = True
        self.lobby_limits = LobbyLimits(
            self.config.max_lobbies_per_address, self.config.max_lobby_rate
        )
        # Draining (see `drain`): lobbies already open carry on, no new ones.
        self.draining = False
        # Quick-match lobbies still filling, and the public lobby list.
        self.pools: PoolIndex[Lobby[H]] = PoolIndex()
        self.lobby_list = LobbyList()
        self._serials = itertools.count(1)

    # -- events -------------------------------------------------------------

    def connect(
        self,
        handle: H,
        address: str = "",
        identity: object = None,
        request: LobbyRequest | None = None,
    ) -> tuple[Peer[H], list[Output[H]]]:
        """A connection opened from ``address`` (an IP address as text).
        ``request`` is what its URL asks of the lobby it creates or is
        matched into (see `pools`). Returns its `Peer`, to pass to later events."""
        if not self.accepting:
            return self._refuse(handle, CloseReason.SHUTDOWN, address)
        if len(self.peers) >= self.config.max_peers:
            return self._refuse(handle, CloseReason.TOO_MANY_PEERS, address)
        peer = Peer(
            handle,
            self.peer_ids.new_id(self.peers),
            address=address,
            identity=identity,
            request=request,
        )
        self.peers[peer.peer_id] = peer
        return peer, [
            PeerConnected(peer_info(peer)),
            StartTimer(JoinDeadline(peer), self.config.join_timeout),
        ]

    def attach(
        self, handle: H, address: str, peer_id: int, identity: object = None
    ) -> tuple[Peer[H] | None, list[Output[H]]]:
        """A peer admitted elsewhere, under the id given there (see
        `Peer.attached`): whoever attaches it counts it, times its JOIN and
        asked the join policy. None if ``peer_id`` is out of range or in use."""
        if not MIN_PEER_ID <= peer_id <= MAX_PEER_ID or peer_id in self.peers:
            return None, []
        peer = Peer(handle, peer_id, address=address, identity=identity, attached=True)
        self.peers[peer_id] = peer
        return peer, [PeerConnected(peer_info(peer))]

    def receive(self, peer: Peer[H], message: AnyMessage, now: float = 0.0) -> list[Output[H]]:
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
            return self.join(peer, message, now)
        # An ID is only ever the server's to send: answered as any other
        # command a client may not send.
        if lobby is None:
            return self._close(peer, CloseReason.NEED_LOBBY)
        return self._close(peer, CloseReason.INVALID_COMMAND)

    def reject(self, peer: Peer[H], reason: Reason) -> list[Output[H]]:
        """The adapter found something wrong below the message level (a frame
        that is not text, a payload that does not parse, a rate passed):
        close the peer."""
        if peer.closing:
            return []
        return self._close(peer, reason)

    def disconnect(self, peer: Peer[H], code: int = 1006, reason: str = "") -> list[Output[H]]:
        """The connection is gone, whoever closed it: ``code`` and ``reason``
        are those of the client's close frame (1006 when there was none)."""
        # A refused connection (id 0) was never registered.
        if self.peers.get(peer.peer_id) is not peer:
            return []
        del self.peers[peer.peer_id]
        if not peer.attached:
            self.peer_ids.release(peer.peer_id)
        if peer.closing:
            return []
        peer.closing = True
        return [*_gone(peer, code, reason, by_server=False), *self._detach(peer)]

    def timer_fired(self, timer: Timer[H]) -> list[Output[H]]:
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
        if isinstance(timer, MatchWaitDeadline):
            return self._wait_over(lobby)
        return self._delete_lobby(lobby, CloseReason.SEAL_COMPLETE, fired=timer)

    def shutdown(self) -> list[Output[H]]:
        """Close everyone (1001), drop every lobby, cancel every timer, and
        refuse connections from now on."""
        self.accepting = False
        actions: list[Output[H]] = []
        for lobby in list(self.lobbies.values()):
            actions += self._delete_lobby(lobby, CloseReason.SHUTDOWN)
        for peer in list(self.peers.values()):
            if not peer.closing:
                actions += self._close(peer, CloseReason.SHUTDOWN)
        return actions

    def drain(self) -> list[Output[H]]:
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
    ) -> tuple[Lobby[H] | None, list[Output[H]]]:
        """A lobby without a host yet: the first peer to join it by name
        becomes its host; unclaimed after ``ttl`` seconds, it is gone.
        ``size``: its own member limit instead of ``max_lobby_size``. None
        when the lobby limit (or shutdown) forbids it."""
        if not self.accepting or len(self.lobbies) >= self.config.max_lobbies:
            return None, []
        topology = MESH if mesh else CLIENT_SERVER
        name = self.lobby_names.new_name(self.lobbies)
        lobby: Lobby[H] = Lobby(
            name, host=None, topology=topology, size=size, serial=next(self._serials)
        )
        self.lobbies[lobby.name] = lobby
        return lobby, [
            StartTimer(ReservationDeadline(lobby), ttl),
            LobbyCreated(lobby.name, None, mesh),
        ]

    def close_lobby(self, name: str, reason: Reason) -> list[Output[H]] | None:
        """Close every member of lobby ``name`` for ``reason`` and forget the
        lobby; None if there is no such lobby."""
        lobby = self.lobbies.get(name)
        if lobby is None:
            return None
        return self._delete_lobby(lobby, reason)

    def seal_lobby(self, name: str) -> list[Output[H]] | None:
        """Seal lobby ``name`` as if its host had; None if there is no such
        lobby. A reservation nobody has claimed is sealed too: nobody can
        claim it any more, and it closes at its seal timeout or at the end
        of its reservation, whichever comes first."""
        lobby = self.lobbies.get(name)
        if lobby is None:
            return None
        return self._seal_now(lobby)

    def kick(self, peer_id: int, reason: Reason) -> list[Output[H]] | None:
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
            pool=lobby.pool,
            title=lobby.title,
            size=lobby.size,
            listed=lobby.listed,
        )

    def list_page(self, query: ListQuery) -> ListPage:
        """A page of the public lobby list (see `lobby_list`)."""
        return self.lobby_list.page(query, self.config.max_lobby_size)

    # -- rules --------------------------------------------------------------

    def join(
        self, peer: Peer[H], message: Join, now: float = 0.0, name: str | None = None
    ) -> list[Output[H]]:
        """A JOIN from ``peer`` (what `receive` does with one). When it creates
        a lobby, ``name``, if given, is that lobby's name instead of a fresh
        one from the name source: a caller that claimed it beforehand (a
        cluster node, cluster-wide) passes it here. A peer on a quick-match
        URL is matched: into the oldest lobby of its pool here that takes
        players, else into a new one (named ``name`` if given)."""
        return self._join(peer, message, now, name, picked=False)

    def join_pool_lobby(
        self, peer: Peer[H], message: Join, now: float, name: str, authorized: bool = False
    ) -> list[Output[H]]:
        """The JOIN of a quick-match peer, for whom someone else (a cluster's
        shared pool) picked lobby ``name``: the peer joins it if it is here,
        else becomes the host of a new pool lobby under that name. The
        checks are those of `join` (a second JOIN, a named JOIN, the join
        policy), and a lobby that is sealed or full meanwhile refuses as usual.
        ``authorized``: the caller asked the join policy already (a cluster
        node asks before it looks for the lobby), so it is not asked again."""
        return self._join(peer, message, now, name, picked=True, authorized=authorized)

    def _join(
        self,
        peer: Peer[H],
        message: Join,
        now: float,
        name: str | None,
        picked: bool,
        authorized: bool = False,
    ) -> list[Output[H]]:
        if peer.closing:
            return []
        if peer.lobby is not None:
            return self._close(peer, CloseReason.ALREADY_IN_LOBBY)
        request = peer.request
        # An attached peer was matched where it is connected: here it joins by name.
        matched = request is not None and request.pool is not None and not peer.attached
        if matched and message.lobby != "":
            return self._close(peer, CloseReason.QUICK_MATCH_PICKS_LOBBY)
        # The game server decides first, before anything about the lobby is
        # looked at: a refused peer learns nothing (not even whether a name exists).
        refusal = None if peer.attached or authorized else self.authorize(peer, message.lobby)
        if refusal is not None:
            return self._close(peer, refusal)
        actions: list[Output[H]] = []
        if matched:
            found, created = self._match(peer, message.topology, now, name, picked, actions)
        elif message.lobby == "":
            found, created = self._create(peer, message.topology, now, name, actions), True
        else:
            found, created = self._claim_seat(message.lobby, peer, actions), False
        if not isinstance(found, Lobby):
            return self._close(peer, found)
        return self._seat(peer, found, actions, created=created)

    def authorize(self, peer: Peer[H], lobby: str) -> Reason | None:
        """The game server's word on ``peer`` joining ``lobby`` ("" creates):
        None to allow, or the close to refuse with."""
        if self.authorize_join is None:
            return None
        return self.authorize_join(peer_info(peer), lobby, lobby == "")

    def _match(
        self,
        peer: Peer[H],
        topology: Topology,
        now: float,
        name: str | None,
        picked: bool,
        actions: list[Any],
    ) -> tuple[Lobby[H] | Reason, bool]:
        """The pool lobby a quick-match peer goes to, and whether it creates
        it; or why not. ``picked``: ``name`` is the lobby chosen elsewhere."""
        if picked and name is not None:
            if name in self.lobbies:
                return self._claim_seat(name, peer, actions), False
        else:
            key = peer.request.pool_key(topology.name) if peer.request is not None else None
            oldest = self.pools.oldest(key) if key is not None else None
            if oldest is not None:
                # Lobbies leave the index when sealed, and seal when full:
                # the oldest has room.
                return self._claim_seat(oldest.name, peer, actions), False
        return self._create(peer, topology, now, name, actions), True

    def _create(
        self, peer: Peer[H], topology: Topology, now: float, name: str | None, actions: list[Any]
    ) -> Lobby[H] | Reason:
        """A new lobby hosted by ``peer``, or why not."""
        if self.draining:
            return CloseReason.SHUTDOWN
        if len(self.lobbies) >= self.config.max_lobbies:
            return CloseReason.TOO_MANY_LOBBIES
        owner_key = limit_key(peer.address, self.config.ipv6_prefix)
        if not self.lobby_limits.may_create(owner_key, now):
            return CloseReason.TOO_MANY_LOBBIES_FROM_ADDRESS
        if name is None:
            name = self.lobby_names.new_name(self.lobbies)
        lobby = Lobby(
            name,
            host=peer,
            topology=topology,
            owner_key=owner_key,
            serial=next(self._serials),
            created=now,
        )
        self.lobbies[name] = lobby
        if self.config.max_lobby_age:
            actions.append(StartTimer(LobbyAgeDeadline(lobby), self.config.max_lobby_age))
            lobby.age_limited = True
        if peer.request is not None:
            self._as_requested(lobby, peer.request, actions)
        return lobby

    def _as_requested(self, lobby: Lobby[H], request: LobbyRequest, actions: list[Any]) -> None:
        """What its creator's URL asked of a new lobby: its size, a pool, a
        place on the list."""
        lobby.size = request.size
        lobby.title = request.title
        key = request.pool_key(lobby.topology.name)
        if key is not None:
            lobby.pool, lobby.pool_key = key.pool, key
            self.pools.add(key, lobby.name, lobby)
            if request.wait is not None:
                lobby.min_members = request.min_members
                lobby.waiting = True
                actions.append(StartTimer(MatchWaitDeadline(lobby), request.wait))
        if request.listed:
            lobby.listed = True
            self.lobby_list.add(lobby)

    def _unlist(self, lobby: Lobby[H]) -> None:
        """``lobby`` takes nobody any more (sealed or closed): out of its pool
        and off the list."""
        if lobby.pool_key is not None:
            self.pools.remove(lobby.pool_key, lobby.name)
        if lobby.listed:
            self.lobby_list.remove(lobby)

    def _wait_over(self, lobby: Lobby[H]) -> list[Output[H]]:
        """A pool lobby's wait ran out: it starts now if it has its minimum,
        else as soon as it has."""
        lobby.waiting = False
        lobby.waited = True
        if lobby.sealed or len(lobby.members) < (lobby.min_members or 0):
            return []
        return self._seal_now(lobby)

    def _filled(self, lobby: Lobby[H]) -> bool:
        """Whether a pool lobby has what it needs to start."""
        members = len(lobby.members)
        if lobby.size is not None and members >= lobby.size:
            return True
        return lobby.waited and members >= (lobby.min_members or 0)

    def _claim_seat(self, name: str, peer: Peer[H], actions: list[Any]) -> Lobby[H] | Reason:
        """Lobby ``name`` with room for ``peer``, or why not."""
        lobby = self.lobbies.get(name)
        if lobby is None:
            return CloseReason.LOBBY_DOES_NOT_EXIST
        if lobby.sealed:
            return CloseReason.LOBBY_IS_SEALED
        limit = self.config.max_lobby_size if lobby.size is None else lobby.size
        if limit and len(lobby.members) >= limit:
            return CloseReason.LOBBY_FULL
        if lobby.host is None:
            # A reserved lobby's first JOIN claims it: host, in the lobby's
            # own mode (the JOIN's mode id is not looked at).
            lobby.host = peer
            actions.append(CancelTimer(ReservationDeadline(lobby)))
        return lobby

    def _seat(
        self, peer: Peer[H], lobby: Lobby[H], actions: list[Output[H]], created: bool
    ) -> list[Output[H]]:
        """Seat ``peer`` in ``lobby``: its ID, then who it sees, then JOIN."""
        newcomer_id = lobby.public_id(peer)
        if not peer.attached:
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
                LobbyCreated(
                    lobby.name,
                    info,
                    lobby.topology is MESH,
                    mode=lobby.topology.name,
                    pool=lobby.pool,
                )
            )
        actions.append(PeerJoined(lobby.name, info, len(lobby.members)))
        if lobby.pool_key is not None and not lobby.sealed and self._filled(lobby):
            # Sealed as its host's SEAL would: every member gets SEAL.
            actions += self._seal_now(lobby)
        return actions

    def _seal(self, peer: Peer[H], lobby: Lobby[H]) -> list[Output[H]]:
        if peer is not lobby.host:
            return self._close(peer, CloseReason.ONLY_HOST_CAN_SEAL)
        return self._seal_now(lobby)

    def _seal_now(self, lobby: Lobby[H]) -> list[Output[H]]:
        if lobby.sealed:
            # A repeated SEAL must not push the deadline back.
            return []
        lobby.sealed = True
        self._unlist(lobby)
        actions: list[Output[H]] = [
            Send(member, Message(MessageType.SEAL, 0)) for member in lobby.members.values()
        ]
        if lobby.waiting:
            lobby.waiting = False
            actions.append(CancelTimer(MatchWaitDeadline(lobby)))
        if lobby.age_limited:
            # --max-lobby-age is for lobbies that never start; this one has.
            lobby.age_limited = False
            actions.append(CancelTimer(LobbyAgeDeadline(lobby)))
        actions.append(StartTimer(SealDeadline(lobby), self.config.seal_timeout))
        actions.append(LobbySealed(lobby.name, len(lobby.members), pool=lobby.pool))
        return actions

    def _close(self, peer: Peer[H], reason: Reason) -> list[Output[H]]:
        """Close one peer for ``reason`` and take it out of its lobby now."""
        peer.closing = True
        return [
            Close(peer, reason),
            *_gone(peer, reason.code, reason.text, by_server=True),
            *self._detach(peer),
        ]

    def _detach(self, peer: Peer[H]) -> list[Output[H]]:
        """Undo a peer's place on the server: its join timer, or its lobby seat."""
        lobby = peer.lobby
        if lobby is None:
            return [] if peer.attached else [CancelTimer(JoinDeadline(peer))]
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
    ) -> list[Output[H]]:
        """Close every remaining member for ``reason`` and forget the lobby.
        Its running timers are cancelled, but for ``fired``, the one that
        has just run out (if that is why)."""
        del self.lobbies[lobby.name]
        self.lobby_limits.closed(lobby.owner_key)
        self._unlist(lobby)
        running: list[Timer[H]] = []
        if lobby.sealed:
            running.append(SealDeadline(lobby))
        if lobby.age_limited:
            running.append(LobbyAgeDeadline(lobby))
        if lobby.host is None:
            running.append(ReservationDeadline(lobby))
        if lobby.waiting:
            lobby.waiting = False
            running.append(MatchWaitDeadline(lobby))
        actions: list[Output[H]] = [CancelTimer(timer) for timer in running if timer != fired]
        # Snapshots first, while the members still show their lobby.
        members = [(member, peer_info(member)) for member in lobby.members.values()]
        for member, info in members:
            member.lobby = None
            member.closing = True
            actions.append(Close(member, reason))
            actions.append(PeerLeft(lobby.name, info, reason.text))
        lobby.members.clear()
        actions.append(LobbyClosed(lobby.name, reason.text, code=reason.code, pool=lobby.pool))
        for _, info in members:
            actions.append(PeerDisconnected(info, reason.code, reason.text, by_server=True))
        return actions

    def _refuse(
        self, handle: H, reason: CloseReason, address: str
    ) -> tuple[Peer[H], list[Output[H]]]:
        peer = Peer(handle, peer_id=0, closing=True, address=address)
        return peer, [Close(peer, reason), ConnectionRefused(address, reason.code, reason.text)]


def _gone(peer: Peer[H], code: int, reason: str, by_server: bool) -> list[Output[H]]:
    """The events of one peer going: it leaves its lobby, then disconnects."""
    info = peer_info(peer)
    gone = PeerDisconnected(info, code, reason, by_server=by_server)
    if info.lobby is None:
        return [gone]
    return [PeerLeft(info.lobby, info, reason), gone]
