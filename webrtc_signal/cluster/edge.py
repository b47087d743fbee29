"""Edge side of a cluster node: its own peers whose lobby another node runs.

A JOIN that names a lobby this node does not run is looked up in Redis; the
connection is then *linked* to that lobby's owner: its decoded messages are
forwarded there, and what the owner sends back is written to it in its own
framing. A JOIN that creates a lobby first claims a fresh name cluster-wide;
the core then creates the lobby under that name (`Signaling.join`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.core import Signaling
from ..protocol.messages import AnyMessage, Identity, Join, Message
from ..protocol.names import LobbyNames
from ..protocol.reasons import CloseReason, CustomReason, Reason
from ..protocol.state import CancelTimer, JoinDeadline, Output, Peer
from ..server.engine import ConnectionHandle
from . import frames
from .bus import CLAIMED, LOBBIES_FULL, Bus
from .frames import Attach, Deliver, Detach, Forward, Frame, Gone, Identify, JoinAgain

_log = Logger(namespace="webrtc_signal.cluster")

# A fresh name is drawn again this many times if another node holds it.
NAME_ATTEMPTS = 3

Send = Callable[[str, Frame], None]
_Peer = Peer[ConnectionHandle]


@dataclass(eq=False)
class Link:
    """A local peer taking part in a lobby of another node."""

    id: int
    peer: _Peer
    # The owner's incarnation; "" while it is being looked up.
    owner: str = ""
    # Messages that came while the owner was looked up (or the name claimed).
    queue: list[AnyMessage] | None = field(default_factory=list)


class Edge:
    def __init__(
        self,
        core: Signaling[ConnectionHandle],
        run_now: Callable[[Iterable[Output[Any]]], None],
        flush: Callable[[], None],
        send: Send,
        bus: Bus,
        lobby_names: LobbyNames,
        max_lobbies: int,
        clock: IReactorTime,
    ) -> None:
        self.core = core
        self.run_now = run_now
        self.flush = flush
        self.send = send
        self.bus = bus
        self.lobby_names = lobby_names
        self.max_lobbies = max_lobbies
        self.clock = clock
        # Local peers linked to another node (or waiting to know which), and
        # those whose owner is known, by link id.
        self.linked: dict[_Peer, Link] = {}
        self.links: dict[int, Link] = {}
        self._link_ids = itertools.count(1)

    def receive(self, peer: _Peer, message: AnyMessage, now: float) -> list[Output[Any]]:
        """A message from a local peer in no local lobby."""
        if peer.closing:
            return []
        link = self.linked.get(peer)
        if link is not None:
            if link.queue is not None:
                link.queue.append(message)
            else:
                self.send(link.owner, _forward(link.id, message))
            return []
        if type(message) is not Join:
            return self.core.receive(peer, message, now)
        if message.lobby == "":
            return self._create(peer, message, now, NAME_ATTEMPTS)
        return self._join_elsewhere(peer, message, now)

    def closed(self, peer: _Peer, code: int, reason: str) -> None:
        link = self.linked.pop(peer, None)
        if link is not None and self.links.pop(link.id, None) is not None and link.owner:
            self.send(link.owner, Gone(link.id, code, reason))

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
            self.run_now(outputs)
            return
        link.owner = owner
        self.links[link.id] = link
        identity = frames.wire_identity(peer.identity)
        topology = message.topology.name
        self.send(
            owner,
            Attach(link.id, message.lobby, topology, peer.address, peer.peer_id, identity),
        )
        for queued in link.queue or ():
            self.send(owner, _forward(link.id, queued))
        link.queue = None
        self.flush()

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
        self.run_now(self.core.reject(peer, CloseReason.TRY_AGAIN_LATER))

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
            self._requeue(peer, link.queue or [])
        else:
            outputs = self.core.reject(peer, CloseReason.TRY_AGAIN_LATER)
        self.run_now(outputs)

    def _requeue(self, peer: _Peer, earlier: list[AnyMessage]) -> None:
        """Messages held for a claim that failed wait for the next one."""
        pending = self.linked.get(peer)
        if pending is not None and pending.queue is not None:
            pending.queue[:0] = earlier

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

    # -- from the owner -----------------------------------------------------------

    def deliver(self, sender: str, frame: Deliver | Identify) -> list[Output[Any]]:
        link = self.links.get(frame.link)
        if link is None or link.owner != sender:
            return []
        handle = link.peer.handle
        if isinstance(frame, Identify):
            handle.send_message(Identity(frame.id, frames.TOPOLOGIES[frame.topology]))
            # Joined: the edge's join timer stops here.
            return [CancelTimer(JoinDeadline(link.peer))]
        handle.send_message(Message(frame.type, frame.id, frame.data))
        return []

    def detach(self, sender: str, frame: Detach) -> list[Output[Any]]:
        link = self.links.get(frame.link)
        if link is None or link.owner != sender:
            return []
        return self.core.reject(link.peer, _reason(frame.code, frame.reason))

    # -- owners lost -------------------------------------------------------------

    def owners(self) -> set[str]:
        """The nodes running lobbies this node's peers take part in."""
        return {link.owner for link in self.links.values()}

    def owner_gone(self, incarnation: str) -> list[Output[Any]]:
        """That node is gone: for its peers here, so is their lobby's host."""
        outputs: list[Output[Any]] = []
        for link in [link for link in self.links.values() if link.owner == incarnation]:
            outputs += self._end_link(link)
        return outputs

    def all_gone(self) -> list[Output[Any]]:
        """The bus is lost: every link ends, and so does every lookup or claim."""
        outputs: list[Output[Any]] = []
        for link in list(self.linked.values()):
            if link.owner:
                outputs += self._end_link(link)
            else:
                del self.linked[link.peer]
                outputs += self.core.reject(link.peer, CloseReason.TRY_AGAIN_LATER)
        return outputs

    def _end_link(self, link: Link) -> list[Output[Any]]:
        self.links.pop(link.id, None)
        self.linked.pop(link.peer, None)
        return self.core.reject(link.peer, CloseReason.HOST_DISCONNECTED)


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
