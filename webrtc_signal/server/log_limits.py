"""Log lines a client can cause, kept to a trickle whatever it does.

A refusal storm (one address opening connections as fast as it can) made
one warning per refusal: 6,683 lines in 12 s, 2.5 GB of log an hour. Here a
*kind* of line is a reason and where it came from (an address, a Redis
node; "" for none). The first line of a kind is written whole; more of the
same kind within `LOG_INTERVAL` seconds are only counted, and one summary
line per kind says how many there were::

    suppressed 6,682 more "Too many connections from your address" from 127.0.0.2 in the last 10 s

Summaries are written by a timer on the injected clock, which runs only
while something is suppressed: a kind that goes quiet still gets its
summary, and an idle server has no timer. A kind with nothing suppressed is
forgotten once its interval is over, so its next line is written whole
again.

An IPv6 source is counted by its network of ``ipv6_prefix`` bits, as the
per-address limits count it: a client rotating through the addresses of
its /56 is one source here too.

The table of kinds is bounded: past `MAX_KINDS`, a new source is counted
under one shared "other addresses" kind of its reason (written whole once
too), and past that, under one kind for everything else. Memory and log
volume stay bounded by the number of reasons, never by the number of
addresses a client can use. Metrics count every refusal whatever is logged.

`LogLimits.allow` serves callers that write a line of their own (backend
failures): it says whether a line may be written now, and how many were held
back since the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from zope.interface import implementer

from ..protocol.access import limit_key
from .logs import QuietLogger

# Seconds between two lines of one kind: the first line, then one summary
# per interval while the kind keeps coming.
LOG_INTERVAL = 10.0
# Kinds (reason, source) remembered at once; beyond them, one kind per reason
# for every other source (`OTHER_SOURCES`), then one for everything.
MAX_KINDS = 1024
# Reasons that may each have an "other addresses" kind of their own once the
# table is full; the server's reasons are a few dozen.
MAX_OTHER_KINDS = 64
OTHER_SOURCES = "other addresses"
OTHER_REASONS = "other reasons"
# The summary timer never fires more often than this, however the kinds'
# intervals are staggered: a summary is at most this late, never early. A
# full table is searched for quiet kinds at most this often too.
MIN_TIMER_GAP = 1.0

_log = QuietLogger(namespace="webrtc_signal")


@dataclass(slots=True)
class _Kind:
    # When this kind's last line (whole or summary) was written.
    written: float
    # Lines of this kind held back since.
    suppressed: int
    level: LogLevel
    # Whether this module writes the summary (`emit`), or the caller reports
    # the count in its next line (`allow`).
    summarised: bool


Key = tuple[str, str]


class LogLimits:
    """The throttle of one server (see the module's docstring): ``clock``
    times the intervals and the summary timer."""

    def __init__(
        self,
        clock: IReactorTime,
        interval: float = LOG_INTERVAL,
        max_kinds: int = MAX_KINDS,
        ipv6_prefix: int = 128,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, not {interval!r}")
        if max_kinds < 1:
            raise ValueError(f"max_kinds must be 1 or more, not {max_kinds!r}")
        self.clock = clock
        self.interval = interval
        self.max_kinds = max_kinds
        self.ipv6_prefix = ipv6_prefix
        self._kinds: dict[Key, _Kind] = {}
        self._timer: IDelayedCall | None = None
        # When a full table was last searched for quiet kinds: at most once
        # per MIN_TIMER_GAP, or a client with thousands of addresses would
        # make every refusal walk the whole table.
        self._swept_at: float | None = None

    def __len__(self) -> int:
        """How many kinds are remembered now."""
        return len(self._kinds)

    def emit(
        self, level: LogLevel, reason: str, source: str, text: str, /, **fields: object
    ) -> bool:
        """Write the line ``text`` (a `twisted.logger` format; ``fields`` fill
        it), of the kind ``reason`` from ``source``, unless a line of that
        kind was written in the last interval: then it is counted for the
        kind's summary. True if the line was written. ``reason`` and
        ``source`` are data, never formats: a client's text is safe in them."""
        if level in QuietLogger._skipped:
            return False
        now = self.clock.seconds()
        key = self._key(reason, source, now)
        kind = self._kinds.get(key)
        if kind is not None and (kind.suppressed or now - kind.written < self.interval):
            kind.suppressed += 1
            self._start_timer(kind, now)
            return False
        self._kinds[key] = _Kind(now, 0, level, summarised=True)
        _log.emit(level, text, **fields)
        return True

    def allow(self, reason: str, source: str = "") -> int | None:
        """For a caller that writes its own line of kind ``reason`` from
        ``source``: None while that kind is held back (counted), else how
        many were held back since its last line (0 the first time)."""
        now = self.clock.seconds()
        key = self._key(reason, source, now)
        kind = self._kinds.get(key)
        if kind is None:
            self._kinds[key] = _Kind(now, 0, LogLevel.info, summarised=False)
            return 0
        if now - kind.written < self.interval:
            kind.suppressed += 1
            return None
        held, kind.written, kind.suppressed = kind.suppressed, now, 0
        return held

    # -- the table ---------------------------------------------------------------

    def _key(self, reason: str, source: str, now: float) -> Key:
        """The kind ``reason`` from ``source`` is counted under: its own while
        the table has room."""
        kinds = self._kinds
        if ":" in source:
            source = limit_key(source, self.ipv6_prefix)
        key = (reason, source)
        if key in kinds or len(kinds) < self.max_kinds:
            return key
        swept_at = self._swept_at
        if swept_at is None or not 0 <= now - swept_at < MIN_TIMER_GAP:
            self._swept_at = now
            self._forget_quiet(now)
            if len(kinds) < self.max_kinds:
                return key
        key = (reason, OTHER_SOURCES)
        if key in kinds or len(kinds) < self.max_kinds + MAX_OTHER_KINDS:
            return key
        return (OTHER_REASONS, OTHER_SOURCES)

    def _forget_quiet(self, now: float) -> None:
        """Forget the kinds whose interval is over and that await no summary
        (a caller of `allow` that never comes back loses its count)."""
        interval = self.interval
        quiet = [
            key
            for key, kind in self._kinds.items()
            if now - kind.written >= interval and not (kind.suppressed and kind.summarised)
        ]
        for key in quiet:
            del self._kinds[key]

    # -- summaries ------------------------------------------------------------------

    def _start_timer(self, kind: _Kind, now: float) -> None:
        if self._timer is None and kind.summarised:
            delay = max(kind.written + self.interval - now, 0.0)
            self._timer = self.clock.callLater(delay, self._summarise)

    def _summarise(self) -> None:
        """Write the summary of every kind whose interval is over; forget
        those that went quiet; run again while anything is held back."""
        self._timer = None
        now = self.clock.seconds()
        interval = self.interval
        next_due: float | None = None
        for key, kind in list(self._kinds.items()):
            # A timer may fire a hair early in floating point.
            if now - kind.written < interval - 1e-6:
                if kind.suppressed and kind.summarised:
                    due = kind.written + interval
                    next_due = due if next_due is None else min(next_due, due)
            elif kind.suppressed and kind.summarised:
                _summary(kind, key, now)
                kind.written, kind.suppressed = now, 0
            else:
                del self._kinds[key]
        if next_due is not None:
            delay = max(next_due - now, MIN_TIMER_GAP)
            self._timer = self.clock.callLater(delay, self._summarise)


def _summary(kind: _Kind, key: Key, now: float) -> None:
    reason, source = key
    seconds = max(1, round(now - kind.written))
    text = 'suppressed {suppressed_text} more "{reason}"'
    if source:
        text += " from {address}"
    _log.emit(
        kind.level,
        text + " in the last {seconds} s",
        event_kind="suppressed",
        suppressed=kind.suppressed,
        suppressed_text=f"{kind.suppressed:,}",
        reason=reason,
        address=source,
        seconds=seconds,
    )


@implementer(IReactorTime)
class ClockReading:
    """The clock of a `LogLimits` used through `allow` alone (which sets no
    timer), for code that has only a ``now`` function."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def seconds(self) -> float:
        return self._now()

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        raise NotImplementedError("a ClockReading sets no timers: use LogLimits.allow only")

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return []
