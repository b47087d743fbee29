"""A node of a cluster: the edge of its own connections (`edge`), the owner
of the lobbies its peers created (`owner`), joined by a bus (docs/cluster.md).

The bridge is the engine's `Router`: the engine hands it every message of a
peer that is in no lobby of this node, and its edge decides. It composes the
engine with a `Bus` and never changes the core: the core takes its names and
ids from sources the node gives it (`node`), and is called through its
public methods. Beside the edge and the owner it keeps what the nodes share:
the pool lobbies this node fills (`matching.FillingPools`), its part of the
lobby list (`listing.SharedList`), and the admin API's control across nodes
(`control.ClusterControl`).

Frames between nodes (`frames`) are batched per destination per turn of
input; one bus connection per node carries everything it publishes, so the
frames between two nodes, hence the messages between any two peers, keep
their order. A frame that cannot be read or handled costs only itself.
"""

from __future__ import annotations

from typing import Any, assert_never

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from ..protocol.events import Event, LobbyClosed, LobbyCreated
from ..protocol.messages import AnyMessage
from ..protocol.names import LobbyNames
from ..protocol.state import Output, Peer
from ..server.engine import ConnectionHandle, Engine
from ..server.log_limits import LogLimits
from . import frames
from .bus import Bus
from .control import ClusterControl
from .edge import Edge
from .frames import (
    Ask,
    Attach,
    Deliver,
    Detach,
    Forward,
    Frame,
    Gone,
    Identify,
    JoinAgain,
    Reply,
)
from .ids import ClusterPeerIds
from .listing import SharedList
from .matching import FillingPools
from .owner import Owner

_log = Logger(namespace="webrtc_signal.cluster")

# The log kinds of frames this node could not read or handle (per sender).
_BAD_FRAME = "ignored a frame"
_FAILED_FRAME = "a frame failed"

_Peer = Peer[ConnectionHandle]


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
        self.max_lobbies = max_lobbies
        self.clock = clock
        self.period = period
        self.edge = Edge(
            engine.core,
            engine.run_now,
            engine.flush,
            self.queue,
            bus,
            lobby_names,
            max_lobbies,
            clock,
        )
        self.owner = Owner(engine.core, engine.run, self.queue, clock)
        self.pools = FillingPools(engine.core, bus)
        self.listing = SharedList(engine.core, bus)
        self.control = ClusterControl(
            engine.control, engine.core.lobbies, bus, self.queue, self.flush, clock
        )
        # What this turn sends, by destination incarnation.
        self.outbox: dict[str, list[Any]] = {}
        self._check: IDelayedCall | None = None
        self._checking = False
        # Another node (or whoever can publish to Redis) decides how many
        # bad frames arrive: one line per sender, then a summary.
        self.log_limits = LogLimits(clock)
        self.stopped = False

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        self.engine.observers.add(self.observe)
        self.engine.observers.add(self.pools.observe)
        self.engine.observers.add(self.listing.observe)
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
        return self.edge.receive(peer, message, now)

    def closed(self, peer: _Peer, code: int, reason: str) -> None:
        self.edge.closed(peer, code, reason)

    def flush(self) -> None:
        """Publish what this turn queued: one bus message per destination."""
        if self.ids.released:
            self.ids.flush()
        if self.listing.dirty:
            self.listing.flush()
        if self.pools.changed:
            self.pools.flush()
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
                held_back = self.log_limits.allow(_FAILED_FRAME, sender)
                if held_back is not None:
                    _log.failure(
                        "cluster: a frame from {sender} failed ({suppressed} more since the "
                        "last report)",
                        sender=sender,
                        suppressed=held_back,
                    )
        self.engine.flush()

    def _handle(self, sender: str, frame: Frame) -> None:
        owner, edge, run = self.owner, self.edge, self.engine.run
        match frame:
            case Attach():
                owner.attach(sender, frame)
            case Forward():
                owner.forwarded(sender, frame)
            case JoinAgain():
                owner.join_again(sender, frame)
            case Gone():
                owner.gone(sender, frame)
            case Deliver() | Identify():
                run(edge.deliver(sender, frame))
            case Detach():
                run(edge.detach(sender, frame))
            case Ask():
                self.control.asked(sender, frame)
            case Reply():
                self.control.replied(sender, frame)
            case _:
                assert_never(frame)

    def _bad_frame(self, sender: str, problem: str) -> None:
        self.log_limits.emit(
            LogLevel.warn,
            _BAD_FRAME,
            sender,
            "cluster: ignored a frame from {sender}: {problem}",
            sender=sender,
            problem=problem[:200],
        )

    def bus_up(self) -> None:
        # Claims made under the previous incarnation died with it: claim
        # again every lobby this node still runs, and its peers' ids.
        self.bus.reclaim_lobbies(list(self.core.lobbies))
        self.ids.bus_up()
        self.pools.bus_up()
        self.listing.bus_up()

    def bus_down(self) -> None:
        """Redis is gone: lobbies whose members are all here go on; every
        link to another node ends, as if the other side had died."""
        outputs = self.edge.all_gone() + self.owner.all_gone()
        self.outbox.clear()
        self.ids.bus_down()
        self.control.bus_down()
        self.engine.run_now(outputs)

    # -- liveness ------------------------------------------------------------------

    def _check_liveness(self) -> None:
        self._check = None
        if self.stopped:
            return
        self._check = self.clock.callLater(self.period, self._check_liveness)
        if self._checking or not self.bus.up:
            return
        others = self.edge.owners() | self.owner.edges()
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
            outputs += self.edge.owner_gone(incarnation)
            outputs += self.owner.edge_gone(incarnation)
            self.outbox.pop(incarnation, None)
        if outputs:
            self.engine.run_now(outputs)

    # -- the core's events -----------------------------------------------------------

    def observe(self, event: Event) -> None:
        if type(event) is LobbyClosed:
            self.bus.release_lobby(event.lobby)
        elif type(event) is LobbyCreated and event.host is None and self.bus.up:
            # A lobby reserved by the game server: claimed after the fact.
            claim = self.bus.claim_lobby(event.lobby, self.max_lobbies + 1)
            claim.addErrback(lambda _: None)
