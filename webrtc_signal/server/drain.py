"""Draining restarts: a stopping server lets the lobbies it has finish.

A lobby lives for seconds (players join, swap offers and candidates, the host
seals, the peers connect to each other and leave), so a restart that waits a
little cuts nobody off mid-handshake. While draining, new connections get
HTTP 503 at the upgrade and ``/healthz`` says ``draining`` (so a load
balancer sends players elsewhere), nobody may create a lobby (the core's
rule), and everything else carries on: joins to open lobbies, relays, seals.
The drain ends when the last lobby is gone, when the timeout passes, or when
`Drain.end_now` is called (twistd: a second SIGTERM or Ctrl-C); the service
then closes what is left with 1001 ``Server shutting down``, as any stop does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..protocol.core import Signaling

# Seconds between progress lines (only when the number of lobbies changed).
PROGRESS_INTERVAL = 5.0

_log = Logger(namespace="webrtc_signal")


class Drain:
    """One drain of a server's core, timed on its clock. The core is told
    to drain before (`Signaling.drain`); the engine calls `check` whenever a
    connection is gone."""

    def __init__(self, core: Signaling[Any], clock: IReactorTime, timeout: float) -> None:
        self.core = core
        self.clock = clock
        self.timeout = timeout
        # Fires with why the drain ended: "lobbies closed", "timeout" or "ended early".
        self.ended: Deferred[str] = Deferred()
        self._deadline: IDelayedCall | None = None
        self._ticker: IDelayedCall | None = None
        self._reported = 0
        self._started = 0.0

    @property
    def lobbies_left(self) -> int:
        return len(self.core.lobbies)

    def start(self) -> Deferred[str]:
        clock = self.clock
        self._started = clock.seconds()
        self._reported = left = self.lobbies_left
        _log.info(
            "draining: {lobbies} lobbies open, {peers} peers connected; no new connections "
            "or lobbies; stopping when the lobbies are gone, or in {timeout} s",
            event_kind="drain started",
            lobbies=left,
            peers=len(self.core.peers),
            timeout=self.timeout,
        )
        if left == 0:
            self._end("lobbies closed")
        else:
            self._deadline = clock.callLater(self.timeout, self._end, "timeout")
            self._ticker = clock.callLater(PROGRESS_INTERVAL, self._tick)
        return self.ended

    def check(self) -> None:
        """A connection is gone: the last lobby ends with its members'
        connections."""
        if not self.core.lobbies:
            self._end("lobbies closed")

    def end_now(self) -> None:
        """Stop waiting for the open lobbies (they are then closed with 1001)."""
        self._end("ended early")

    def _tick(self) -> None:
        self._ticker = None
        left = self.lobbies_left
        if left == 0:
            self._end("lobbies closed")
            return
        if left != self._reported:
            self._reported = left
            _log.info(
                "draining: {lobbies} lobbies left, {remaining:.0f} s to go",
                event_kind="drain progress",
                lobbies=left,
                remaining=max(0.0, self._started + self.timeout - self.clock.seconds()),
            )
        self._ticker = self.clock.callLater(PROGRESS_INTERVAL, self._tick)

    def _end(self, why: str) -> None:
        if self.ended.called:
            return
        for call in (self._deadline, self._ticker):
            if call is not None and call.active():
                call.cancel()
        self._deadline = self._ticker = None
        _log.info(
            "drain ended ({why}) after {elapsed:.1f} s: {lobbies} lobbies left to close",
            event_kind="drain ended",
            why=why,
            elapsed=self.clock.seconds() - self._started,
            lobbies=self.lobbies_left,
        )
        self.ended.callback(why)
