"""The observers of a server's events: its log, its metrics, a game
server's own (``service.add_observer``), the cluster. Each hears every event,
in order; one that raises is logged and the others go on."""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from ..protocol.events import Event

Observer = Callable[[Event], object]

_log = Logger(namespace="webrtc_signal")


class Observers:
    __slots__ = ("_observers",)

    def __init__(self) -> None:
        # A tuple, replaced on change: observers may come and go while called.
        self._observers: tuple[Observer, ...] = ()

    def add(self, observer: Observer) -> None:
        self._observers = (*self._observers, observer)

    def remove(self, observer: Observer) -> None:
        observers = list(self._observers)
        observers.remove(observer)
        self._observers = tuple(observers)

    def tell(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                _log.failure(
                    "observer {observer!r} failed on {event!r}", observer=observer, event=event
                )
