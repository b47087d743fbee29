"""A node of a cluster: the edge of its own connections, the owner of the
lobbies its peers created (docs/cluster.md).

Owner: a lobby's name is claimed cluster-wide (`Bus.claim_lobby`) before the
core creates it; the core then runs it exactly as on a single node. A peer
connected elsewhere takes part as a *remote* peer: a core `Peer[Any]` whose handle
(`RemotePeer`) carries the core's sends and closes back over the bus.

Edge: a connection whose JOIN names a lobby this node does not run is
*linked* to that lobby's owner: its decoded messages are forwarded there,
and what the owner sends back is written to it in its own framing.

Frames (JSON arrays, batched per destination per turn of input):

- edge -> owner: ``["J", link, lobby, topology, address]`` (the first JOIN),
  ``["m", link, type, id, data]``, ``["j", link, lobby, topology]`` (a later
  JOIN), ``["g", link, code, reason]`` (the connection is gone);
- owner -> edge: ``["s", link, type, id, data]``, ``["i", link, id,
  topology]`` (ID), ``["c", link, code, reason]`` (close it).

One bus connection per node carries everything it publishes, so the frames
between two nodes, hence the messages between any two peers, keep their order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.core import (
    MAX_PEER_ID,
    MIN_PEER_ID,
    Action,
    CancelTimer,
    JoinDeadline,
    Peer,
    Signaling,
    peer_info,
)
from ..protocol.events import Event, LobbyClosed, LobbyCreated, PeerConnected
from ..protocol.messages import AnyMessage, Identity, Join, Message
from ..protocol.reasons import CloseReason, CustomReason, Reason
from ..protocol.topology import CLIENT_SERVER, MESH, Topology
from .bus import CLAIMED, LOBBIES_FULL, Bus
from .ids import PeerIds

if TYPE_CHECKING:
    from ..server.adapter import SignalingServerFactory, SignalingServerProtocol

_log = Logger(namespace="webrtc_signal.cluster")

_TOPOLOGIES: dict[str, Topology] = {MESH.name: MESH, CLIENT_SERVER.name: CLIENT_SERVER}
# A fresh name is drawn again this many times if another node holds it.
_NAME_ATTEMPTS = 3


class ClusterSignaling(Signaling[Any]):
    """The core, plus what the bridge needs of it: a lobby name chosen (and
    claimed) before the JOIN that creates it, and peers from other nodes."""

    next_lobby_name: str | None = None
    # This node's claimed peer ids (set by the bridge).
    ids: PeerIds | None = None

    def _new_lobby_name(self) -> str:
        name = self.next_lobby_name
        if name is not None:
            self.next_lobby_name = None
            return name
        return super()._new_lobby_name()

    def draw_lobby_name(self) -> str:
        return super()._new_lobby_name()

    def _new_peer_id(self) -> int:
        ids = self.ids
        if ids is None:
            return super()._new_peer_id()
        return ids.draw(self.peers)

    def authorize_remote_join(self, peer: Peer[Any], lobby: str) -> Reason | None:
        """The game server's word on a local peer joining another node's lobby."""
        return super()._authorize(peer, lobby)

    def _authorize(self, peer: Peer[Any], lobby: str) -> Reason | None:
        # A remote peer's edge asked already, with the identity it has.
        if isinstance(peer.handle, RemotePeer):
            return None
        return super()._authorize(peer, lobby)

    def attach_remote(
        self, handle: RemotePeer, address: str, peer_id: int, identity: object = None
    ) -> tuple[Peer[Any] | None, list[Action[Any]]]:
        """A peer whose connection is on another node, under the id its edge
        gave it (claimed cluster-wide there). Its edge counts it against
        ``max_peers`` and times its JOIN. None if that id is in use here (a
        clash, see ids.py)."""
        if not MIN_PEER_ID <= peer_id <= MAX_PEER_ID or peer_id in self.peers:
            return None, []
        peer = Peer(handle, peer_id, address=address, identity=identity)
        self.peers[peer_id] = peer
        return peer, [PeerConnected(peer_info(peer))]

    def disconnect(self, peer: Peer[Any], code: int = 1006, reason: str = "") -> list[Action[Any]]:
        registered = self.peers.get(peer.peer_id) is peer
        actions = super().disconnect(peer, code, reason)
        ids = self.ids
        if registered and ids is not None and type(peer.handle) is not RemotePeer:
            ids.release(peer.peer_id)
        return actions

    def close_peer(self, peer: Peer[Any], reason: Reason) -> list[Action[Any]]:
        if peer.closing:
            return []
        return self._close(peer, reason)


@dataclass(eq=False)
class Link:
    """Edge side: a local connection taking part in a lobby of another node."""

    id: int
    connection: SignalingServerProtocol
    peer: Peer[Any]
    # The owner's incarnation; "" while it is being looked up.
    owner: str = ""
    # Messages that came while the owner was looked up (or the name claimed).
    queue: list[AnyMessage] | None = field(default_factory=list)


class RemotePeer:
    """Owner side: the handle of a core `Peer[Any]` connected to another node."""

    __slots__ = ("bridge", "edge", "link")

    def __init__(self, bridge: ClusterBridge, edge: str, link: int) -> None:
        self.bridge = bridge
        self.edge = edge
        self.link = link

    def send_message(self, message: AnyMessage) -> None:
        if type(message) is Message:
            frame: list[Any] = ["s", self.link, message.type, message.id, message.data]
        elif isinstance(message, Identity):
            frame = ["i", self.link, message.id, message.topology.name]
        else:
            return
        self.bridge.queue(self.edge, frame)

    def close_for(self, reason: Reason) -> None:
        self.bridge.queue(self.edge, ["c", self.link, reason.code, reason.text])


class ClusterBridge:
    def __init__(
        self,
        factory: SignalingServerFactory,
        bus: Bus,
        clock: IReactorTime,
        period: float,
    ) -> None:
        self.factory = factory
        self.signaling: ClusterSignaling = factory.signaling  # type: ignore[assignment]
        self.bus = bus
        self.ids = PeerIds(bus, self.signaling._id_rng)
        self.signaling.ids = self.ids
        self.clock = clock
        self.period = period
        self.links: dict[int, Link] = {}
        self._link_ids = itertools.count(1)
        self.remotes: dict[tuple[str, int], Peer[Any]] = {}
        self.outbox: dict[str, list[Any]] = {}
        self._check: IDelayedCall | None = None
        self._checking = False
        self.stopped = False

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        self.factory.add_observer(self.observe)
        self.bus.start(self)
        self._check = self.clock.callLater(self.period, self._check_liveness)

    def stop(self) -> Any:
        self.stopped = True
        if self._check is not None and self._check.active():
            self._check.cancel()
        self._check = None
        return self.bus.stop()

    # -- from the adapter --------------------------------------------------------

    def receive(
        self, connection: SignalingServerProtocol, peer: Peer[Any], message: AnyMessage, now: float
    ) -> list[Action[Any]]:
        """A message from a local peer in no local lobby."""
        signaling = self.signaling
        if peer.closing:
            return []
        link = connection.cluster_link
        if link is not None:
            if link.queue is not None:
                link.queue.append(message)
            else:
                self.queue(link.owner, _edge_frame(link.id, message))
            return []
        if type(message) is not Join:
            return signaling.receive(peer, message, now)
        if message.lobby == "":
            return self._create(connection, peer, message, now, _NAME_ATTEMPTS)
        if message.lobby in signaling.lobbies:
            return signaling.receive(peer, message, now)
        # The game server's authorize_join runs here, at the edge, where the
        # identity its authenticate hook gave this peer lives; the lobby's
        # node does not ask again (see ClusterSignaling._authorize).
        refusal = signaling.authorize_remote_join(peer, message.lobby)
        if refusal is not None:
            return signaling.close_peer(peer, refusal)
        if not self.bus.up:
            return signaling.close_peer(peer, CloseReason.TRY_AGAIN_LATER)
        link = Link(next(self._link_ids), connection, peer)
        connection.cluster_link = link
        found = self.bus.find_owner(message.lobby)
        found.addCallbacks(self._owner_found, self._redis_failed, (link, message), {}, (link,))
        return []

    def connection_closed(
        self, connection: SignalingServerProtocol, code: int, reason: str
    ) -> None:
        link = connection.cluster_link
        if link is None:
            return
        connection.cluster_link = None
        if self.links.pop(link.id, None) is not None and link.owner:
            self.queue(link.owner, ["g", link.id, code, reason])

    def queue(self, incarnation: str, frame: list[Any]) -> None:
        frames = self.outbox.get(incarnation)
        if frames is None:
            self.outbox[incarnation] = [frame]
        else:
            frames.append(frame)

    def flush(self) -> None:
        """Publish what this turn queued: one bus message per destination."""
        if self.ids.released:
            self.ids.flush()
        outbox = self.outbox
        if outbox:
            publish = self.bus.publish
            for incarnation, frames in outbox.items():
                publish(incarnation, frames)
            outbox.clear()

    # -- creating a lobby ---------------------------------------------------------

    def _create(
        self,
        connection: SignalingServerProtocol,
        peer: Peer[Any],
        message: Join,
        now: float,
        attempts: int,
    ) -> list[Action[Any]]:
        signaling = self.signaling
        if signaling.draining or not signaling.accepting:
            # The core answers that (1001) itself, without a claim.
            return signaling.receive(peer, message, now)
        if not self.bus.up:
            return signaling.close_peer(peer, CloseReason.TRY_AGAIN_LATER)
        name = signaling.draw_lobby_name()
        # Held while the name is claimed; replayed to the core after.
        link = Link(0, connection, peer)
        connection.cluster_link = link
        claim = self.bus.claim_lobby(name, signaling.config.max_lobbies)
        claim.addCallbacks(
            self._claimed, self._redis_failed, (link, message, name, attempts), {}, (link,)
        )
        return []

    def _claimed(self, answer: str, link: Link, message: Join, name: str, attempts: int) -> None:
        connection, peer, signaling = link.connection, link.peer, self.signaling
        if connection.cluster_link is not link or peer.closing:
            self.bus.release_lobby(name) if answer == CLAIMED else None
            return
        connection.cluster_link = None
        now = self.clock.seconds()
        if answer == CLAIMED:
            signaling.next_lobby_name = name
            actions = signaling.receive(peer, message, now)
            signaling.next_lobby_name = None
            if name not in signaling.lobbies:
                # The core refused (a local limit, the game server's hook).
                self.bus.release_lobby(name)
            for queued in link.queue or ():
                if peer.lobby is None:
                    actions += self.receive(connection, peer, queued, now)
                else:
                    actions += signaling.receive(peer, queued, now)
        elif answer == LOBBIES_FULL:
            actions = signaling.close_peer(peer, CloseReason.TOO_MANY_LOBBIES)
        elif attempts > 1:
            actions = self._create(connection, peer, message, now, attempts - 1)
            pending = connection.cluster_link
            if pending is not None and pending.queue is not None:
                pending.queue[:0] = link.queue or []
        else:
            actions = signaling.close_peer(peer, CloseReason.TRY_AGAIN_LATER)
        self._run(actions)

    # -- joining a lobby of another node -------------------------------------------

    def _owner_found(self, owner: str | None, link: Link, message: Join) -> None:
        connection, peer, signaling = link.connection, link.peer, self.signaling
        if connection.cluster_link is not link or peer.closing:
            return
        now = self.clock.seconds()
        if owner is None or owner == self.bus.incarnation or not self.bus.up:
            # Gone, or ours after all (created meanwhile): the core answers.
            connection.cluster_link = None
            actions = signaling.receive(peer, message, now)
            for queued in link.queue or ():
                actions += signaling.receive(peer, queued, now)
            self._run(actions)
            return
        link.owner = owner
        self.links[link.id] = link
        topology = message.topology.name
        self.queue(
            owner,
            [
                "J",
                link.id,
                message.lobby,
                topology,
                peer.address,
                peer.peer_id,
                _wire(peer.identity),
            ],
        )
        for queued in link.queue or ():
            self.queue(owner, _edge_frame(link.id, queued))
        link.queue = None
        self._run([])

    def _redis_failed(self, failure: Failure, link: Link) -> None:
        connection, peer = link.connection, link.peer
        if connection.cluster_link is not link or peer.closing:
            return
        connection.cluster_link = None
        _log.info(
            "cluster: refused peer {peer_id}'s JOIN, redis failed: {why}",
            peer_id=peer.peer_id,
            why=failure.getErrorMessage(),
        )
        self._run(self.signaling.close_peer(peer, CloseReason.TRY_AGAIN_LATER))

    # -- from the bus ------------------------------------------------------------

    def bus_message(self, sender: str, frames: list[Any]) -> None:
        signaling = self.signaling
        actions: list[Action[Any]] = []
        now = self.clock.seconds()
        try:
            for frame in frames:
                kind = frame[0]
                if kind == "m":
                    peer = self.remotes.get((sender, frame[1]))
                    if peer is not None:
                        actions += signaling.receive(
                            peer, Message(frame[2], frame[3], frame[4]), now
                        )
                elif kind == "s":
                    link = self.links.get(frame[1])
                    if link is not None and link.owner == sender:
                        link.connection.send_message(Message(frame[2], frame[3], frame[4]))
                elif kind == "i":
                    link = self.links.get(frame[1])
                    if link is not None and link.owner == sender:
                        topology = _TOPOLOGIES[frame[3]]
                        link.connection.send_message(Identity(frame[2], topology))
                        # Joined: the edge's join timer stops here.
                        actions.append(CancelTimer(JoinDeadline(link.peer)))
                elif kind == "c":
                    link = self.links.get(frame[1])
                    if link is not None and link.owner == sender:
                        reason = _reason(frame[2], frame[3])
                        actions += signaling.close_peer(link.peer, reason)
                elif kind == "J":
                    key = (sender, frame[1])
                    if key not in self.remotes:
                        handle = RemotePeer(self, sender, frame[1])
                        peer, attached = signaling.attach_remote(
                            handle,
                            str(frame[4]),
                            int(frame[5]),
                            frame[6] if len(frame) > 6 else None,
                        )
                        if peer is None:
                            # Its id is in use here: the edge closes it.
                            reason = CloseReason.TRY_AGAIN_LATER
                            handle.close_for(reason)
                            continue
                        self.remotes[key] = peer
                        actions += attached
                        join = Join(str(frame[2]), _TOPOLOGIES.get(frame[3], MESH))
                        actions += signaling.receive(peer, join, now)
                elif kind == "j":
                    peer = self.remotes.get((sender, frame[1]))
                    if peer is not None:
                        join = Join(str(frame[2]), _TOPOLOGIES.get(frame[3], MESH))
                        actions += signaling.receive(peer, join, now)
                elif kind == "g":
                    peer = self.remotes.pop((sender, frame[1]), None)
                    if peer is not None:
                        actions += signaling.disconnect(peer, frame[2], frame[3])
        except (IndexError, KeyError, TypeError, ValueError):
            _log.failure("cluster: a malformed frame from {sender}", sender=sender)
        self._run(actions)

    def bus_up(self) -> None:
        # Claims made under the previous incarnation died with it: claim
        # again every lobby this node still runs, and its peers' ids.
        self.bus.reclaim_lobbies(list(self.signaling.lobbies))
        self.ids.bus_up()

    def bus_down(self) -> None:
        """Redis is gone: lobbies whose members are all here go on; every
        link to another node ends, as if the other side had died."""
        actions: list[Action[Any]] = []
        for link in list(self.links.values()):
            actions += self._end_link(link)
        for connection in list(self.factory.connections):
            edge = connection.cluster_link
            if edge is not None and not edge.owner:
                connection.cluster_link = None
                actions += self.signaling.close_peer(edge.peer, CloseReason.TRY_AGAIN_LATER)
        for key in list(self.remotes):
            actions += self._drop_remote(key)
        self.outbox.clear()
        self.ids.bus_down()
        self._run(actions)

    # -- liveness ------------------------------------------------------------------

    def _check_liveness(self) -> None:
        self._check = None
        if self.stopped:
            return
        self._check = self.clock.callLater(self.period, self._check_liveness)
        if self._checking or not self.bus.up:
            return
        others = {link.owner for link in self.links.values()} | {e for e, _ in self.remotes}
        if not others:
            return
        self._checking = True
        asked = self.bus.live(others)
        asked.addCallbacks(self._live, lambda _: None, (others,))
        asked.addBoth(self._checked)

    def _checked(self, result: object) -> None:
        self._checking = False

    def _live(self, live: set[str], asked: set[str]) -> None:
        dead = asked - live
        if not dead:
            return
        actions: list[Action[Any]] = []
        for incarnation in dead:
            _log.warn("cluster: node {incarnation} is gone", incarnation=incarnation)
            for link in list(self.links.values()):
                if link.owner == incarnation:
                    actions += self._end_link(link)
            for key in [key for key in self.remotes if key[0] == incarnation]:
                actions += self._drop_remote(key)
            self.outbox.pop(incarnation, None)
        self._run(actions)

    def _end_link(self, link: Link) -> list[Action[Any]]:
        """The owner is gone: for this peer, so is its lobby's host."""
        self.links.pop(link.id, None)
        link.connection.cluster_link = None
        return self.signaling.close_peer(link.peer, CloseReason.HOST_DISCONNECTED)

    def _drop_remote(self, key: tuple[str, int]) -> list[Action[Any]]:
        """The edge is gone: its peer leaves as if its connection had dropped."""
        peer = self.remotes.pop(key)
        return self.signaling.disconnect(peer, 1006, "")

    # -- the core's events -----------------------------------------------------------

    def observe(self, event: Event) -> None:
        if type(event) is LobbyClosed:
            self.bus.release_lobby(event.lobby)
        elif type(event) is LobbyCreated and event.host is None and self.bus.up:
            # A lobby reserved by the game server: claimed after the fact.
            claim = self.bus.claim_lobby(event.lobby, self.signaling.config.max_lobbies + 1)
            claim.addErrback(lambda _: None)

    def _run(self, actions: list[Action[Any]]) -> None:
        self.factory.execute(actions)
        self.factory.flush()


def _edge_frame(link: int, message: AnyMessage) -> list[Any]:
    if type(message) is Message:
        return ["m", link, message.type, message.id, message.data]
    if isinstance(message, Join):
        return ["j", link, message.lobby, message.topology.name]
    # An ID from a client: the owner answers it as the core does.
    return ["m", link, message.type, message.id, ""]


def _wire(identity: object) -> object:
    """What the lobby's node is told of a peer's identity, for its PeerInfo
    (events, observers): a JSON value as it is, anything else as its text
    (a token's identity is its subject)."""
    if identity is None or type(identity) in (str, int, float, bool):
        return identity
    return str(identity)


def _reason(code: int, text: str) -> Reason:
    for reason in CloseReason:
        if reason.code == code and reason.text == text:
            return reason
    return CustomReason(int(code), str(text))
