"""Unexpected errors while handling a client's message: each closes only its
connection (1011) and is logged, with its traceback, at most once per kind
per `ERROR_LOG_INTERVAL`: a client that can trigger one must not be able to
flood the log."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

# An unexpected error of one kind is logged at most once per this many seconds.
ERROR_LOG_INTERVAL = 60.0
# Kinds remembered at most; a bug reachable from many places cannot grow the map.
MAX_KINDS = 256

_log = Logger(namespace="webrtc_signal")


class ErrorReports:
    __slots__ = ("_clock", "_logged")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        # Unexpected errors by kind (type, where): when last logged, and how many since.
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def report(self, error: Exception, peer_id: int, address: str) -> None:
        kind = (type(error).__qualname__, _where(error))
        now = self._clock.seconds()
        logged_at, suppressed = self._logged.get(kind, (None, 0))
        if logged_at is not None and now - logged_at < ERROR_LOG_INTERVAL:
            self._logged[kind] = (logged_at, suppressed + 1)
            return
        if len(self._logged) >= MAX_KINDS:
            self._logged.clear()
        self._logged[kind] = (now, 0)
        _log.failure(
            "unexpected error handling a message from peer {peer_id} ({address}); "
            "closing it with 1011 ({suppressed} more like it since the last report)",
            failure=Failure(error),
            peer_id=peer_id,
            address=address,
            suppressed=suppressed,
        )


def _where(error: Exception) -> str:
    """The file and line the error was raised at."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return ""
    return f"{traceback.tb_frame.f_code.co_filename}:{traceback.tb_lineno}"
