"""Owner side of a cluster node: the peers of other nodes that take part in
a lobby this node runs.

Each is an *attached* core peer (`Signaling.attach`) whose handle
(`RemotePeer`) carries the core's sends and closes back to its edge over the
bus; the edge asked the join policy and times its JOIN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from ..protocol.core import Signaling
from ..protocol.messages import AnyMessage, Identity, Join, Message
from ..protocol.pools import LobbyRequest
from ..protocol.reasons import CloseReason, Reason
from ..protocol.state import Output, Peer
from ..server.engine import ConnectionHandle
from . import frames
from .frames import Attach, Deliver, Detach, Forward, Frame, Gone, Identify, JoinAgain

# Sends a frame to a node (its incarnation) with the next flush.
Send = Callable[[str, Frame], None]
_Peer = Peer[ConnectionHandle]


class RemotePeer:
    """The handle of a core peer connected to another node."""

    __slots__ = ("edge", "link", "send")

    def __init__(self, send: Send, edge: str, link: int) -> None:
        self.send = send
        self.edge = edge
        self.link = link

    def send_message(self, message: AnyMessage) -> None:
        if type(message) is Message:
            self.send(self.edge, Deliver(self.link, message.type, message.id, message.data))
        elif isinstance(message, Identity):
            self.send(self.edge, Identify(self.link, message.id, message.topology.name))

    def close_for(self, reason: Reason) -> None:
        self.send(self.edge, Detach(self.link, reason.code, reason.text))

    def flush(self) -> None:
        """Its frames go out with the bridge's (`ClusterBridge.flush`)."""

    def drop(self) -> None:
        """Never asked: the engine drops only its own connections."""

    def ping(self, payload: bytes) -> None:
        """Never asked: its edge keeps the connection alive."""


class Owner:
    def __init__(
        self,
        core: Signaling[ConnectionHandle],
        run: Callable[[Iterable[Output[Any]]], None],
        send: Send,
        clock: IReactorTime,
    ) -> None:
        self.core = core
        self.run = run
        self.send = send
        self.clock = clock
        # Attached peers by (edge incarnation, link id).
        self.remotes: dict[tuple[str, int], _Peer] = {}

    def attach(self, sender: str, frame: Attach) -> None:
        key = (sender, frame.link)
        if key in self.remotes:
            return
        handle = RemotePeer(self.send, sender, frame.link)
        peer, outputs = self.core.attach(handle, frame.address, frame.peer_id, frame.identity)
        if peer is None:
            # Its id is in use here (a clash, see ids.py): the edge closes it.
            handle.close_for(CloseReason.TRY_AGAIN_LATER)
            return
        peer.framing = frame.framing
        if frame.pool:
            # Matched by its edge: here it only joins by name (see `Peer.attached`).
            peer.request = LobbyRequest(pool=frame.pool)
        self.remotes[key] = peer
        join = Join(frame.lobby, frames.TOPOLOGIES[frame.topology])
        self.run([*outputs, *self.core.join(peer, join, self.clock.seconds())])

    def forwarded(self, sender: str, frame: Forward) -> None:
        peer = self.remotes.get((sender, frame.link))
        if peer is not None:
            message = Message(frame.type, frame.id, frame.data)
            self.run(self.core.receive(peer, message, self.clock.seconds()))

    def join_again(self, sender: str, frame: JoinAgain) -> None:
        peer = self.remotes.get((sender, frame.link))
        if peer is not None:
            join = Join(frame.lobby, frames.TOPOLOGIES[frame.topology])
            self.run(self.core.join(peer, join, self.clock.seconds()))

    def gone(self, sender: str, frame: Gone) -> None:
        peer = self.remotes.pop((sender, frame.link), None)
        if peer is not None:
            self.run(self.core.disconnect(peer, frame.code, frame.reason))

    def edges(self) -> set[str]:
        """The nodes whose peers take part here."""
        return {edge for edge, _ in self.remotes}

    def edge_gone(self, incarnation: str) -> list[Output[Any]]:
        """That node is gone: its peers leave as if their connections had dropped."""
        outputs: list[Output[Any]] = []
        for key in [key for key in self.remotes if key[0] == incarnation]:
            peer = self.remotes.pop(key)
            outputs += self.core.disconnect(peer, 1006, "")
        return outputs

    def all_gone(self) -> list[Output[Any]]:
        """The bus is lost: every attached peer leaves."""
        outputs: list[Output[Any]] = []
        for incarnation in self.edges():
            outputs += self.edge_gone(incarnation)
        return outputs
