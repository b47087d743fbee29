"""The engine: runs the core for a server.

It carries out the core's actions (sends and closes through each
connection's `ConnectionHandle`, timers on an injected clock), hands the
core's events to observers, writes what a batch of input queued in one piece
per connection (`flush`), pings connections, drains, and shuts down. Its
control API (`control`) is what a game server, the admin API and the cluster
use to look at lobbies and act on them.

It knows nothing of Autobahn, HTTP or Redis: the WebSocket adapter
(`websocket`) turns bytes into the calls below, and a `Router` (the cluster)
may take the messages of peers that are in no lobby of this server. Tests
drive it with plain handle objects and a `task.Clock`, without sockets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar, assert_never

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..protocol.core import Signaling
from ..protocol.events import (
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
from ..protocol.messages import AnyMessage
from ..protocol.pools import LobbyRequest
from ..protocol.reasons import Reason
from ..protocol.state import (
    CancelTimer,
    Close,
    Output,
    Peer,
    Send,
    StartTimer,
    Timer,
)
from .config import ServerConfig
from .control import Control
from .drain import Drain
from .errors import ErrorReports
from .keepalive import Keepalive
from .observers import Observers
from .traffic import TrafficCounts

_log = Logger(namespace="webrtc_signal")


class ConnectionHandle(Protocol):
    """What the engine needs of a connection (the core's handle type)."""

    def send_message(self, message: AnyMessage) -> None:
        """Queue ``message``; it is written at the next `flush`."""

    def flush(self) -> None:
        """Write what is queued, in one piece."""

    def close_for(self, reason: Reason) -> None:
        """Begin a closing handshake with ``reason``."""

    def drop(self) -> None:
        """Cut the connection now, without a closing handshake."""

    def ping(self, payload: bytes) -> None:
        """Send a keepalive ping carrying ``payload``."""


# The connection type of an engine.
C = TypeVar("C", bound=ConnectionHandle)


class Router(Protocol[C]):
    """Takes the messages of peers that are in no lobby of this server (the
    cluster: a JOIN of another node's lobby, and what follows it)."""

    def receive(self, peer: Peer[C], message: AnyMessage, now: float) -> list[Output[C]]:
        """A message from ``peer``, which is in no local lobby."""

    def closed(self, peer: Peer[C], code: int, reason: str) -> None:
        """``peer``'s connection is gone."""

    def flush(self) -> None:
        """The end of a batch of input: send what it queued."""

    def problem(self) -> str | None:
        """Why this server cannot create lobbies now (None: it can)."""


class Engine(Generic[C]):
    """One core, and everything with a lifetime around it."""

    def __init__(self, core: Signaling[C], config: ServerConfig, clock: IReactorTime) -> None:
        self.core = core
        self.config = config
        self.clock = clock
        self.traffic = TrafficCounts(core.lobbies)
        self.observers = Observers()
        self.control: Control[C] = Control(core, clock, self.run_now)
        self.observers.add(self.control.observe)
        self.errors = ErrorReports(clock)
        # Connections with a peer slot (upgrade complete, not yet closed),
        # and their peers.
        self.connections: dict[C, Peer[C]] = {}
        self.keepalive: Keepalive[C] = Keepalive(clock, config.ping_interval, self.connections)
        self.router: Router[C] | None = None
        self.drain: Drain | None = None
        # Connections that queued a frame in the current batch of input.
        self.unflushed: list[C] = []
        self._timers: dict[Timer[C], IDelayedCall] = {}
        self._events: deque[Event] = deque()
        self._dispatching = False
        self._all_closed: list[Deferred[None]] = []

    # -- from the connections -------------------------------------------------------

    def open(
        self,
        handle: C,
        address: str,
        identity: object = None,
        request: LobbyRequest | None = None,
    ) -> Peer[C]:
        """A connection completed its upgrade: its peer, to pass to later
        calls. ``request``: what its URL asks of its lobby (see `pools`)."""
        peer, outputs = self.core.connect(handle, address, identity, request)
        if not peer.closing:
            self.connections[handle] = peer
            if self.core.accepting:
                self.keepalive.start()
        self.run(outputs)
        return peer

    def receive(self, peer: Peer[C], message: AnyMessage, now: float) -> None:
        """A decoded message from ``peer``."""
        router = self.router
        if router is not None and peer.lobby is None:
            # Not in a lobby of this server: the router decides (a JOIN of a
            # lobby another node runs, or what follows it).
            self.run(router.receive(peer, message, now))
        else:
            self.run(self.core.receive(peer, message, now))

    def reject(self, peer: Peer[C], reason: Reason) -> None:
        """Something below the message level was wrong: close ``peer``."""
        self.run(self.core.reject(peer, reason))

    def closed(self, handle: C, peer: Peer[C] | None, code: int = 1006, reason: str = "") -> None:
        """A connection is gone (``peer`` None: it never completed its upgrade)."""
        if peer is None:
            return
        self.connections.pop(handle, None)
        self.keepalive.forget(handle)
        self.run(self.core.disconnect(peer, code, reason))
        if self.router is not None:
            self.router.closed(peer, code, reason)
        self.flush()
        if not self.connections:
            waiters, self._all_closed = self._all_closed, []
            for waiter in waiters:
                waiter.callback(None)
        if self.drain is not None:
            self.drain.check()

    # -- carrying out the core's outputs ---------------------------------------------

    def run(self, outputs: Iterable[Output[C]]) -> None:
        """Carry out ``outputs`` in order; observers hear of the events once
        the actions are done (frames queued, closes begun), in order, even
        when an observer calls a control method meanwhile."""
        for output in outputs:
            # Sends are by far the most frequent: tested first, and cheaply.
            if type(output) is Send:
                output.peer.handle.send_message(output.message)
            else:
                self._carry_out(output)
        if self._events and not self._dispatching:
            self._dispatch()

    def run_now(self, outputs: Iterable[Output[C]]) -> None:
        """`run`, then `flush`: for what happens outside a batch of input (a
        timer, a control call, a message from the cluster's bus)."""
        self.run(outputs)
        self.flush()

    def _carry_out(self, output: Output[C]) -> None:
        match output:
            case Send():
                output.peer.handle.send_message(output.message)
            case Close():
                output.peer.handle.close_for(output.reason)
            case StartTimer():
                call = self.clock.callLater(output.delay, self._timer_fired, output.timer)
                self._timers[output.timer] = call
            case CancelTimer():
                pending = self._timers.pop(output.timer, None)
                if pending is not None and pending.active():
                    pending.cancel()
            case (
                PeerConnected()
                | PeerDisconnected()
                | LobbyCreated()
                | PeerJoined()
                | PeerLeft()
                | LobbySealed()
                | LobbyClosed()
                | ConnectionRefused()
            ):
                self._events.append(output)
            case _:
                assert_never(output)

    def _dispatch(self) -> None:
        self._dispatching = True
        events = self._events
        try:
            while events:
                self.observers.tell(events.popleft())
        finally:
            self._dispatching = False

    def _timer_fired(self, timer: Timer[C]) -> None:
        self._timers.pop(timer, None)
        self.run_now(self.core.timer_fired(timer))

    def flush(self) -> None:
        """Write out what the core's outputs queued. Every way into the
        engine (input, a closed connection, a timer, shutdown) ends here, so
        the reactor never idles with frames queued, and each connection gets
        one write per batch of input, however many messages it holds."""
        unflushed = self.unflushed
        if unflushed:
            for handle in unflushed:
                handle.flush()
            unflushed.clear()
        if self.router is not None:
            self.router.flush()

    # -- health, draining and shutdown ---------------------------------------------------

    def health(self) -> dict[str, str | int]:
        """What ``GET /healthz`` answers: ``status`` "ok" while this server
        takes new players, else "draining", "stopping" or "degraded" (then
        with a ``reason``); and how many peers and lobbies it has."""
        core = self.core
        reason = None
        if not core.accepting:
            status = "stopping"
        elif core.draining:
            status = "draining"
        else:
            reason = self.router.problem() if self.router is not None else None
            status = "ok" if reason is None else "degraded"
        body: dict[str, str | int] = {"status": status}
        if reason is not None:
            body["reason"] = reason
        body["peers"] = len(core.peers)
        body["lobbies"] = len(core.lobbies)
        return body

    def start_drain(self, timeout: float) -> Deferred[str]:
        """Let the open lobbies finish, with no new connections or lobbies,
        for up to ``timeout`` seconds (see `drain`)."""
        self.run_now(self.core.drain())
        drain = self.drain = Drain(self.core, self.clock, timeout)
        drain.ended.addBoth(self._drain_ended)
        return drain.start()

    def _drain_ended(self, why: object) -> object:
        self.drain = None
        return why

    def shutdown(self, timeout: float = 5.0) -> Deferred[None]:
        """Close every client with 1001, cancel every timer, refuse newcomers.

        The Deferred fires once every connection is gone, or after ``timeout``
        seconds on `clock`, when stragglers are dropped without a handshake."""
        self.keepalive.stop()
        # The core's shutdown cancels every timer it started.
        self.run_now(self.core.shutdown())
        if not self.connections:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._all_closed.append(done)
        deadline = self.clock.callLater(timeout, self._drop_stragglers)
        done.addBoth(_cancel_then_pass, deadline)
        return done

    def _drop_stragglers(self) -> None:
        for handle in list(self.connections):
            _log.warn("dropping a connection that did not finish closing in time")
            handle.drop()


def _cancel_then_pass(result: object, call: IDelayedCall) -> object:
    if call.active():
        call.cancel()
    return result


Observer = Callable[[Event], object]
