"""A node of a cluster: the edge of its own connections, the owner of the
lobbies its peers created (docs/cluster.md).

The bridge is the engine's `Router`: the engine hands it every message of a
peer that is in no lobby of this node. It composes the engine with a `Bus`
and never changes the core: the core takes its names and ids from sources
the node gives it (`node`), and is called through its public methods.

Owner: a lobby's name is claimed cluster-wide (`Bus.claim_lobby`) before the
core creates it under that name (`Signaling.join`). A peer connected
elsewhere takes part as an *attached* peer (`Signaling.attach`) whose handle
(`RemotePeer`) carries the core's sends and closes back over the bus.

Edge: a connection whose JOIN names a lobby this node does not run is
*linked* to that lobby's owner: its decoded messages are forwarded there,
and what the owner sends back is written to it in its own framing.

One bus connection per node carries everything it publishes, so the frames
between two nodes, hence the messages between any two peers, keep their order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, assert_never

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.events import Event, LobbyClosed, LobbyCreated
from ..protocol.messages import AnyMessage, Identity, Join, Message
from ..protocol.names import LobbyNames
from ..protocol.reasons import CloseReason, CustomReason, Reason
from ..protocol.state import CancelTimer, JoinDeadline, Output, Peer
from ..server.engine import ConnectionHandle, Engine
from . import frames
from .bus import CLAIMED, LOBBIES_FULL, Bus
from .frames import Attach, Deliver, Detach, Forward, Frame, Gone, Identify, JoinAgain
from .ids import ClusterPeerIds

_log = Logger(namespace="webrtc_signal.cluster")

# A fresh name is drawn again this many times if another node holds it.
_NAME_ATTEMPTS = 3
# Seconds between log lines about frames this node could not read.
_BAD_FRAME_LOG_INTERVAL = 10.0

_Peer = Peer[ConnectionHandle]


@dataclass(eq=False)
class Link:
    """Edge side: a local peer taking part in a lobby of another node."""

    id: int
    peer: _Peer
    # The owner's incarnation; "" while it is being looked up.
    owner: str = ""
    # Messages that came while the owner was looked up (or the name claimed).
    queue: list[AnyMessage] | None = field(default_factory=list)


class RemotePeer:
    """Owner side: the handle of a core peer connected to another node."""

    __slots__ = ("bridge", "edge", "link")

    def __init__(self, bridge: ClusterBridge, edge: str, link: int) -> None:
        self.bridge = bridge
        self.edge = edge
        self.link = link

    def send_message(self, message: AnyMessage) -> None:
        if type(message) is Message:
            self.bridge.queue(self.edge, Deliver(self.link, message.type, message.id, message.data))
        elif isinstance(message, Identity):
            self.bridge.queue(self.edge, Identify(self.link, message.id, message.topology.name))

    def close_for(self, reason: Reason) -> None:
        self.bridge.queue(self.edge, Detach(self.link, reason.code, reason.text))

    def flush(self) -> None:
        """Its frames go out with the bridge's (`ClusterBridge.flush`)."""

    def drop(self) -> None:
        """Never asked: the engine drops only its own connections."""

    def ping(self, payload: bytes) -> None:
        """Never asked: its edge keeps the connection alive."""


class ClusterBridge:
    def __init__(
        self,
        engine: Engine[ConnectionHandle],
        bus: Bus,
        ids: ClusterPeerIds,
        lobby_names: LobbyNames,
        max_lobbies: int,
        clock: IReactorTime,
        period: float,
    ) -> None:
        self.engine = engine
        self.core = engine.core
        self.bus = bus
        self.ids = ids
        self.lobby_names = lobby_names
        self.max_lobbies = max_lobbies
        self.clock = clock
        self.period = period
        # Edge side: local peers linked to another node (or waiting to know
        # which), and those whose owner is known, by link id.
        self.linked: dict[_Peer, Link] = {}
        self.links: dict[int, Link] = {}
        self._link_ids = itertools.count(1)
        # Owner side: attached peers by (edge incarnation, link id).
        self.remotes: dict[tuple[str, int], _Peer] = {}
        self.outbox: dict[str, list[Any]] = {}
        self._check: IDelayedCall | None = None
        self._checking = False
        self._bad_frames = 0
        self._bad_frames_logged = -_BAD_FRAME_LOG_INTERVAL
        self.stopped = False

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        self.engine.observers.add(self.observe)
        self.bus.start(self)
        self._check = self.clock.callLater(self.period, self._check_liveness)

    def stop(self) -> Any:
        self.stopped = True
        if self._check is not None and self._check.active():
            self._check.cancel()
        self._check = None
        return self.bus.stop()

    # -- the engine's Router -------------------------------------------------------

    def receive(self, peer: _Peer, message: AnyMessage, now: float) -> list[Output[Any]]:
        """A message from a local peer in no local lobby."""
        if peer.closing:
            return []
        link = self.linked.get(peer)
        if link is not None:
            if link.queue is not None:
                link.queue.append(message)
            else:
                self.queue(link.owner, _forward(link.id, message))
            return []
        if type(message) is not Join:
            return self.core.receive(peer, message, now)
        if message.lobby == "":
            return self._create(peer, message, now, _NAME_ATTEMPTS)
        return self._join_elsewhere(peer, message, now)

    def closed(self, peer: _Peer, code: int, reason: str) -> None:
        link = self.linked.pop(peer, None)
        if link is not None and self.links.pop(link.id, None) is not None and link.owner:
            self.queue(link.owner, Gone(link.id, code, reason))

    def flush(self) -> None:
        """Publish what this turn queued: one bus message per destination."""
        if self.ids.released:
            self.ids.flush()
        outbox = self.outbox
        if outbox:
            publish = self.bus.publish
            for incarnation, batch in outbox.items():
                publish(incarnation, batch)
            outbox.clear()

    def problem(self) -> str | None:
        return None if self.bus.up else "redis unreachable"

    def queue(self, incarnation: str, frame: Frame) -> None:
        batch = self.outbox.get(incarnation)
        if batch is None:
            self.outbox[incarnation] = [frames.encode(frame)]
        else:
            batch.append(frames.encode(frame))

    # -- joining a lobby of another node -------------------------------------------

    def _join_elsewhere(self, peer: _Peer, message: Join, now: float) -> list[Output[Any]]:
        core = self.core
        if message.lobby in core.lobbies or not _could_be_lobby_name(message.lobby):
            # Ours, or no lobby anywhere (every lobby name is one of ours):
            # the core answers, as on a single node.
            return core.join(peer, message, now)
        # The game server's authorize_join runs here, at the edge, where the
        # identity its authenticate hook gave this peer lives; the lobby's
        # node does not ask again (the peer is attached there).
        refusal = core.authorize(peer, message.lobby)
        if refusal is not None:
            return core.reject(peer, refusal)
        if not self.bus.up:
            return core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        link = self.linked[peer] = Link(next(self._link_ids), peer)
        found = self.bus.find_owner(message.lobby)
        found.addCallbacks(self._owner_found, self._redis_failed, (link, message), {}, (link,))
        return []

    def _owner_found(self, owner: str | None, link: Link, message: Join) -> None:
        peer = link.peer
        if self.linked.get(peer) is not link or peer.closing:
            return
        now = self.clock.seconds()
        if owner is None or owner == self.bus.incarnation or not self.bus.up:
            # Gone, or ours after all (created meanwhile): the core answers.
            del self.linked[peer]
            outputs = self.core.join(peer, message, now)
            for queued in link.queue or ():
                outputs += self.core.receive(peer, queued, now)
            self.engine.run_now(outputs)
            return
        link.owner = owner
        self.links[link.id] = link
        self.queue(
            owner,
            Attach(
                link.id,
                message.lobby,
                message.topology.name,
                peer.address,
                peer.peer_id,
                frames.wire_identity(peer.identity),
            ),
        )
        for queued in link.queue or ():
            self.queue(owner, _forward(link.id, queued))
        link.queue = None
        self.engine.flush()

    def _redis_failed(self, failure: Failure, link: Link) -> None:
        peer = link.peer
        if self.linked.get(peer) is not link or peer.closing:
            return
        del self.linked[peer]
        _log.info(
            "cluster: refused peer {peer_id}'s JOIN, redis failed: {why}",
            peer_id=peer.peer_id,
            why=failure.getErrorMessage(),
        )
        self.engine.run_now(self.core.reject(peer, CloseReason.TRY_AGAIN_LATER))

    # -- creating a lobby ---------------------------------------------------------

    def _create(self, peer: _Peer, message: Join, now: float, attempts: int) -> list[Output[Any]]:
        core = self.core
        if core.draining or not core.accepting:
            # The core answers that (1001) itself, without a claim.
            return core.join(peer, message, now)
        if not self.bus.up:
            return core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        name = self.lobby_names.new_name(core.lobbies)
        # Held while the name is claimed; replayed to the core after.
        link = self.linked[peer] = Link(0, peer)
        claim = self.bus.claim_lobby(name, self.max_lobbies)
        claim.addCallbacks(
            self._claimed, self._redis_failed, (link, message, name, attempts), {}, (link,)
        )
        return []

    def _claimed(self, answer: str, link: Link, message: Join, name: str, attempts: int) -> None:
        peer = link.peer
        if self.linked.get(peer) is not link or peer.closing:
            if answer == CLAIMED:
                self.bus.release_lobby(name)
            return
        del self.linked[peer]
        now = self.clock.seconds()
        if answer == CLAIMED:
            outputs = self._create_claimed(peer, message, name, link.queue or [], now)
        elif answer == LOBBIES_FULL:
            outputs = self.core.reject(peer, CloseReason.TOO_MANY_LOBBIES)
        elif attempts > 1:
            outputs = self._create(peer, message, now, attempts - 1)
            pending = self.linked.get(peer)
            if pending is not None and pending.queue is not None:
                pending.queue[:0] = link.queue or []
        else:
            outputs = self.core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        self.engine.run_now(outputs)

    def _create_claimed(
        self, peer: _Peer, message: Join, name: str, queued: list[AnyMessage], now: float
    ) -> list[Output[Any]]:
        outputs = self.core.join(peer, message, now, name=name)
        if name not in self.core.lobbies:
            # The core refused (a local limit, the game server's hook).
            self.bus.release_lobby(name)
        for later in queued:
            if peer.lobby is None:
                outputs += self.receive(peer, later, now)
            else:
                outputs += self.core.receive(peer, later, now)
        return outputs

    # -- from the bus ------------------------------------------------------------

    def bus_message(self, sender: str, batch: list[Any]) -> None:
        """A batch of frames from ``sender``; one that cannot be read or
        handled costs only itself."""
        if type(batch) is not list:
            self._bad_frame(sender, "not a batch of frames")
            return
        for raw in batch:
            try:
                self._handle(sender, frames.decode(raw))
            except frames.FrameError as error:
                self._bad_frame(sender, str(error))
            except Exception:
                _log.failure("cluster: a frame from {sender} failed", sender=sender)
        self.engine.flush()

    def _handle(self, sender: str, frame: Frame) -> None:
        match frame:
            case Attach():
                self._attach(sender, frame)
            case Forward():
                self._forwarded(sender, frame)
            case JoinAgain():
                self._join_again(sender, frame)
            case Gone():
                self._gone(sender, frame)
            case Deliver() | Identify():
                self._deliver(sender, frame)
            case Detach():
                self._detach(sender, frame)
            case _:
                assert_never(frame)

    def _attach(self, sender: str, frame: Attach) -> None:
        key = (sender, frame.link)
        if key in self.remotes:
            return
        handle = RemotePeer(self, sender, frame.link)
        peer, outputs = self.core.attach(handle, frame.address, frame.peer_id, frame.identity)
        if peer is None:
            # Its id is in use here (a clash, see ids.py): the edge closes it.
            handle.close_for(CloseReason.TRY_AGAIN_LATER)
            return
        self.remotes[key] = peer
        join = Join(frame.lobby, frames.TOPOLOGIES[frame.topology])
        self.engine.run([*outputs, *self.core.join(peer, join, self.clock.seconds())])

    def _forwarded(self, sender: str, frame: Forward) -> None:
        peer = self.remotes.get((sender, frame.link))
        if peer is not None:
            message = Message(frame.type, frame.id, frame.data)
            self.engine.run(self.core.receive(peer, message, self.clock.seconds()))

    def _join_again(self, sender: str, frame: JoinAgain) -> None:
        peer = self.remotes.get((sender, frame.link))
        if peer is not None:
            join = Join(frame.lobby, frames.TOPOLOGIES[frame.topology])
            self.engine.run(self.core.join(peer, join, self.clock.seconds()))

    def _gone(self, sender: str, frame: Gone) -> None:
        peer = self.remotes.pop((sender, frame.link), None)
        if peer is not None:
            self.engine.run(self.core.disconnect(peer, frame.code, frame.reason))

    def _deliver(self, sender: str, frame: Deliver | Identify) -> None:
        link = self.links.get(frame.link)
        if link is None or link.owner != sender:
            return
        handle = link.peer.handle
        if isinstance(frame, Identify):
            handle.send_message(Identity(frame.id, frames.TOPOLOGIES[frame.topology]))
            # Joined: the edge's join timer stops here.
            self.engine.run([CancelTimer(JoinDeadline(link.peer))])
        else:
            handle.send_message(Message(frame.type, frame.id, frame.data))

    def _detach(self, sender: str, frame: Detach) -> None:
        link = self.links.get(frame.link)
        if link is not None and link.owner == sender:
            self.engine.run(self.core.reject(link.peer, _reason(frame.code, frame.reason)))

    def _bad_frame(self, sender: str, problem: str) -> None:
        """Logged at most once per `_BAD_FRAME_LOG_INTERVAL`, with how many
        more there were."""
        now = self.clock.seconds()
        if now - self._bad_frames_logged < _BAD_FRAME_LOG_INTERVAL:
            self._bad_frames += 1
            return
        _log.warn(
            "cluster: ignored a frame from {sender}: {problem} ({more} more since the last report)",
            sender=sender,
            problem=problem[:200],
            more=self._bad_frames,
        )
        self._bad_frames_logged = now
        self._bad_frames = 0

    def bus_up(self) -> None:
        # Claims made under the previous incarnation died with it: claim
        # again every lobby this node still runs, and its peers' ids.
        self.bus.reclaim_lobbies(list(self.core.lobbies))
        self.ids.bus_up()

    def bus_down(self) -> None:
        """Redis is gone: lobbies whose members are all here go on; every
        link to another node ends, as if the other side had died."""
        outputs: list[Output[Any]] = []
        for link in list(self.linked.values()):
            if link.owner:
                outputs += self._end_link(link)
            else:
                del self.linked[link.peer]
                outputs += self.core.reject(link.peer, CloseReason.TRY_AGAIN_LATER)
        for key in list(self.remotes):
            outputs += self._drop_remote(key)
        self.outbox.clear()
        self.ids.bus_down()
        self.engine.run_now(outputs)

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
        outputs: list[Output[Any]] = []
        for incarnation in asked - live:
            _log.warn("cluster: node {incarnation} is gone", incarnation=incarnation)
            for link in list(self.links.values()):
                if link.owner == incarnation:
                    outputs += self._end_link(link)
            for key in [key for key in self.remotes if key[0] == incarnation]:
                outputs += self._drop_remote(key)
            self.outbox.pop(incarnation, None)
        if outputs:
            self.engine.run_now(outputs)

    def _end_link(self, link: Link) -> list[Output[Any]]:
        """The owner is gone: for this peer, so is its lobby's host."""
        self.links.pop(link.id, None)
        self.linked.pop(link.peer, None)
        return self.core.reject(link.peer, CloseReason.HOST_DISCONNECTED)

    def _drop_remote(self, key: tuple[str, int]) -> list[Output[Any]]:
        """The edge is gone: its peer leaves as if its connection had dropped."""
        peer = self.remotes.pop(key)
        return self.core.disconnect(peer, 1006, "")

    # -- the core's events -----------------------------------------------------------

    def observe(self, event: Event) -> None:
        if type(event) is LobbyClosed:
            self.bus.release_lobby(event.lobby)
        elif type(event) is LobbyCreated and event.host is None and self.bus.up:
            # A lobby reserved by the game server: claimed after the fact.
            claim = self.bus.claim_lobby(event.lobby, self.max_lobbies + 1)
            claim.addErrback(lambda _: None)


def _forward(link: int, message: AnyMessage) -> Frame:
    if type(message) is Message:
        return Forward(link, message.type, message.id, message.data)
    if isinstance(message, Join):
        return JoinAgain(link, message.lobby, message.topology.name)
    # An ID from a client: the owner answers it as the core does.
    return Forward(link, message.type, message.id, "")


def _could_be_lobby_name(name: str) -> bool:
    """Whether ``name`` could name a lobby at all: every lobby's name comes
    from the cluster's name source (letters and digits). Anything else
    (a lone surrogate, which Redis could not even store) exists nowhere."""
    return name.isascii() and name.isalnum()


def _reason(code: int, text: str) -> Reason:
    for reason in CloseReason:
        if reason.code == code and reason.text == text:
            return reason
    return CustomReason(code, text)
