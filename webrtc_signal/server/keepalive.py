"""Keepalive: one ticker pings every connection each ``interval`` seconds; a
connection that has not answered the previous ping by then is dropped, and
its peer leaves like any other. Pings carry 8 random bytes: only the pong
that echoes them counts, so unsolicited pongs cannot keep alive a client
that reads nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .logs import QuietLogger

_log = QuietLogger(namespace="webrtc_signal")


class Pingable(Protocol):
    def ping(self, payload: bytes) -> None: ...

    def drop(self) -> None: ...


P = TypeVar("P", bound=Pingable)


class Keepalive(Generic[P]):
    __slots__ = ("_awaiting", "_call", "_clock", "_connections", "interval")

    def __init__(self, clock: IReactorTime, interval: float, connections: Mapping[P, Any]) -> None:
        self._clock = clock
        self.interval = interval
        # The connections to keep alive, and what each stands for (its peer,
        # for the log line of a drop).
        self._connections = connections
        # Connections pinged and not answered yet: the payload each owes.
        self._awaiting: dict[P, bytes] = {}
        self._call: IDelayedCall | None = None

    def start(self) -> None:
        """Make sure the ticker runs (a connection has opened)."""
        if self._call is None and self.interval > 0:
            self._call = self._clock.callLater(self.interval, self._tick)

    def awaiting(self, connection: P) -> bool:
        """Whether ``connection`` owes the answer to a ping."""
        return connection in self._awaiting

    def pong(self, connection: P, payload: bytes) -> None:
        if self._awaiting.get(connection) == payload:
            del self._awaiting[connection]

    def forget(self, connection: P) -> None:
        """``connection`` is gone."""
        self._awaiting.pop(connection, None)
        if not self._connections:
            self.stop()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        awaiting = self._awaiting
        for connection, peer in list(self._connections.items()):
            if connection in awaiting:
                _log.info(
                    "peer {peer_id} did not answer a ping within {interval}s: dropping it",
                    peer_id=getattr(peer, "peer_id", 0),
                    interval=self.interval,
                )
                del awaiting[connection]
                connection.drop()
            else:
                payload = awaiting[connection] = os.urandom(8)
                connection.ping(payload)
        if self._connections:
            self.start()
