"""Edge side of a cluster node: its own peers whose lobby another node runs.

A JOIN that names a lobby this node does not run is looked up in Redis; the
connection is then *linked* to that lobby's owner: its decoded messages are
forwarded there, and what the owner sends back is written to it in its own
framing. A JOIN that creates a lobby first claims a fresh name cluster-wide;
the core then creates the lobby under that name (`Signaling.join`). The JOIN
of a peer on a quick-match URL is matched cluster-wide (`matching`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
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
from .bus import Bus
from .creating import Creator
from .frames import Attach, Deliver, Detach, Forward, Frame, Gone, Identify, JoinAgain
from .links import Link
from .matching import Matcher

_log = Logger(namespace="webrtc_signal.cluster")

Send = Callable[[str, Frame], None]
_Peer = Peer[ConnectionHandle]


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
        self.creator = Creator(self)
        self.matcher = Matcher(self)

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
        if peer.request is not None and peer.request.pool is not None:
            if message.lobby == "":
                return self.matcher.match(peer, message, now)
            # A named JOIN on a match URL: the core refuses it, as on a single server.
            return self.core.join(peer, message, now)
        if message.lobby == "":
            return self.creator.create(peer, message, now)
        return self._join_elsewhere(peer, message, now)

    def closed(self, peer: _Peer, code: int, reason: str) -> None:
        link = self.linked.pop(peer, None)
        if link is None:
            return
        if self.links.pop(link.id, None) is not None and link.owner:
            self.send(link.owner, Gone(link.id, code, reason))
        if link.match is not None and link.lobby:
            # Gone on its way into a pool lobby: its held seat is free now.
            self.bus.unseat(link.lobby, peer.peer_id)

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
        link = self.linked[peer] = Link(0, peer)
        found = self.bus.find_owner(message.lobby)
        found.addCallbacks(self._owner_found, self.redis_failed, (link, message), {}, (link,))
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
        self.link_to(owner, link, message)

    def link_to(self, owner: str, link: Link, join: Join) -> None:
        """Attach ``link``'s peer to lobby ``join.lobby``, which ``owner``
        runs. A quick-match peer's messages wait until it is seated there."""
        peer = link.peer
        link.id = next(self._link_ids)
        link.owner = owner
        link.lobby = join.lobby
        self.linked[peer] = link
        self.links[link.id] = link
        identity = frames.wire_identity(peer.identity)
        topology = join.topology.name
        pool = peer.request.pool if peer.request is not None else None
        attach = Attach(
            link.id,
            join.lobby,
            topology,
            peer.address,
            peer.peer_id,
            identity,
            peer.framing,
            pool or "",
        )
        self.send(owner, attach)
        if link.match is None:
            self._pass_on(link)
        self.flush()

    def _pass_on(self, link: Link) -> None:
        """Forward what ``link`` held to its owner; from now on, as it comes."""
        for queued in link.queue or ():
            self.send(link.owner, _forward(link.id, queued))
        link.queue = None

    def unlink(self, link: Link, tell_owner: bool) -> None:
        """Forget ``link``, and tell its owner that its peer is gone there."""
        self.links.pop(link.id, None)
        if self.linked.get(link.peer) is link:
            del self.linked[link.peer]
        if tell_owner:
            self.send(link.owner, Gone(link.id, 1000, ""))

    def redis_failed(self, failure: Failure, link: Link) -> None:
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

    def replay(self, peer: _Peer, queued: list[AnyMessage], now: float) -> list[Output[Any]]:
        """Messages held while ``peer``'s JOIN waited for Redis, in order."""
        outputs: list[Output[Any]] = []
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
            if link.match is not None:
                # Seated: a quick-match peer's held messages follow its JOIN.
                link.match = None
                self._pass_on(link)
            # Joined: the edge's join timer stops here.
            return [CancelTimer(JoinDeadline(link.peer))]
        handle.send_message(Message(frame.type, frame.id, frame.data))
        return []

    def detach(self, sender: str, frame: Detach) -> list[Output[Any]]:
        link = self.links.get(frame.link)
        if link is None or link.owner != sender:
            return []
        reason = _reason(frame.code, frame.reason)
        if link.match is not None:
            return self.matcher.refused(link, reason)
        return self.core.reject(link.peer, reason)

    # -- owners lost -------------------------------------------------------------

    def owners(self) -> set[str]:
        """The nodes running lobbies this node's peers take part in."""
        return {link.owner for link in self.links.values()}

    def owner_gone(self, incarnation: str) -> list[Output[Any]]:
        """That node is gone: for its peers here, so is their lobby's host."""
        outputs: list[Output[Any]] = []
        for link in [link for link in self.links.values() if link.owner == incarnation]:
            if link.match is not None:
                # Not seated yet: matched again, into a lobby of a live node.
                self.unlink(link, tell_owner=False)
                outputs += self.matcher.again(link, "")
            else:
                outputs += self._end_link(link)
        return outputs

    def all_gone(self) -> list[Output[Any]]:
        """The bus is lost: every link ends, and so does every lookup or claim."""
        outputs: list[Output[Any]] = []
        for link in list(self.linked.values()):
            if link.owner and link.match is None:
                outputs += self._end_link(link)
            else:
                self.unlink(link, tell_owner=False)
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
