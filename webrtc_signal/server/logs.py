"""Log output for the twistd plugin: text or JSON lines, filtered by level.

twistd sets up logging after the plugin's ``makeService`` and before the
reactor runs; the documented way for an application to choose its log
observer is an `ILogObserver` component on the application (twistd's own
``--logger`` still wins over it). The plugin's service puts one there when
twistd adds it to the application (see ``tap.py``), writing where twistd
would have written: stdout with ``-n``, else ``--logfile`` (``twistd.log`` by
default).

JSON output is one object per line, for Loki, ELK or journald: ``time``
(ISO 8601, UTC), ``level``, ``namespace``, ``message`` (the text line), then
every structured field of the event (``event_kind``, ``peer_id``, ``lobby``,
``reason``, ...) under its own name, and ``traceback`` for failures.

Tokens never reach the output: ``?token=<JWT>`` in a request line (a
``twisted.web`` access log, an Autobahn refusal quoting the request) is a
credential anyone reading the log could reuse. Every line written, text or
JSON, has each ``token=`` value replaced by ``token=<redacted>``
(`redact_tokens`), whether it came from the message or from a field.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    LogEvent,
    Logger,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

LOG_FORMATS = ("text", "json")
# The names twisted.logger gives its levels; "warning" is a common spelling of warn.
LOG_LEVELS = {level.name: level for level in LogLevel.iterconstants()} | {"warning": LogLevel.warn}
# Keys the JSON object always has; a structured field of the same name is
# renamed with a trailing underscore rather than lost.
_RESERVED = frozenset({"time", "level", "namespace", "message", "traceback"})


def parse_level(text: str) -> LogLevel:
    try:
        level: LogLevel = LOG_LEVELS[text.lower()]
        return level
    except KeyError:
        raise ValueError("must be one of debug, info, warn, error, critical") from None


def parse_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ValueError("must be text or json")
    return text


class QuietLogger(Logger):
    """A `Logger` that does not even make the events below the process's
    log level (`set_level`; everything until then). Per-connection debug
    lines come and go with every player: building each event only for the
    observer to drop it was a measurable share of a connection's cost."""

    _skipped: frozenset[LogLevel] = frozenset()

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level not in QuietLogger._skipped:
            super().emit(level, format, **kwargs)


def logged(level: LogLevel) -> bool:
    """Whether `QuietLogger` events at ``level`` are made at all: a caller
    that builds costly fields can skip them."""
    return level not in QuietLogger._skipped


def set_level(level: LogLevel) -> None:
    """Make `QuietLogger` events below ``level`` cost (almost) nothing."""
    QuietLogger._skipped = frozenset(
        candidate for candidate in LogLevel.iterconstants() if candidate < level
    )


@implementer(ILogObserver)
class LevelFilter:
    """Pass on the events at ``level`` or above. One set lookup per event:
    twisted.logger's `LogLevelFilterPredicate` walks the namespace for each."""

    def __init__(self, observer: ILogObserver, level: LogLevel) -> None:
        self.observer = observer
        self.level = level
        self._passed = frozenset(
            candidate for candidate in LogLevel.iterconstants() if candidate >= level
        )

    def __call__(self, event: LogEvent) -> None:
        # An event without a level (only hand-made ones) is not filtered.
        if event.get("log_level", self.level) in self._passed:
            self.observer(event)


def event_as_json(event: LogEvent) -> str:
    """One log event as one line of JSON (ending in a newline)."""
    record: dict[str, Any] = {
        "time": _iso_utc(event.get("log_time")),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": message(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    legacy = event.get("log_namespace") == "log_legacy"
    for key, value in event.items():
        if key.startswith("log_"):
            continue
        if key in _RESERVED:
            if legacy:  # twisted.python.log's own copies of the time and text
                continue
            key = f"{key}_"
        record[key] = value
    try:
        line = orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson refuses e.g. integers beyond 64 bits
        line = orjson.dumps({key: _plain(value) for key, value in record.items()})
    return line.decode() + "\n"


def _plain(value: object) -> object:
    """``value`` if orjson can write it, else its text."""
    try:
        return orjson.Fragment(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        return str(value)


def _iso_utc(timestamp: float | None) -> str:
    when = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


TOKEN_MARK = "token="
REDACTED = "token=<redacted>"
# A token's value runs to the end of its query parameter (&), of the request
# line (a space), of a quoted string (' or ") or of the text. A backslash ends
# it too: in a JSON line it starts an escape, which must stay whole.
_TOKEN_VALUE = re.compile(r"token=[^&\s\"'\\]+")


def redact_tokens(line: str | None) -> str | None:
    """``line`` with every ``token=`` value replaced by ``<redacted>``. Lines
    are written for every connection: those without ``token=`` (nearly all)
    cost one substring search, no regular expression."""
    if line is None or TOKEN_MARK not in line:
        return line
    return _TOKEN_VALUE.sub(REDACTED, line)


def file_observer(out: IO[str], log_format: str, clock: Any = None) -> ILogObserver:
    """An observer writing ``log_format`` lines (``text``: twistd's own) to
    ``out``, tokens redacted. Its lines are the whole event (the JSON ones
    carry every field), so redacting the line redacts the fields too. They
    are flushed every `FLUSH_INTERVAL` on ``clock`` (the reactor by default;
    see `FlushedLater`)."""
    format_line = event_as_json if log_format == "json" else _text_line

    def redacted_line(event: LogEvent) -> str | None:
        return redact_tokens(format_line(event))

    return FlushedLater(out, redacted_line, clock)


# Seconds a written line may wait for its flush, and lines written before a
# flush is forced whatever the time.
FLUSH_INTERVAL = 0.1
MAX_UNFLUSHED_LINES = 256


@implementer(ILogObserver)
class FlushedLater(FileLogObserver):
    """`FileLogObserver`, flushing at most every `FLUSH_INTERVAL` instead of
    after every line: lobby life writes a few lines per player, and each
    flush is a system call (a third of what a line cost). Lines keep their
    order; while the reactor is not running (start-up, shutdown) every line
    is flushed at once, so is every `MAX_UNFLUSHED_LINES`-th, and what is
    left at shutdown is flushed then. Only a process killed outright can
    lose its last `FLUSH_INTERVAL` of lines."""

    unflushed = 0
    pending: Any = None

    def __init__(
        self, out: IO[Any], format_line: Callable[[LogEvent], str | None], clock: Any = None
    ) -> None:
        super().__init__(out, format_line)
        self.clock = clock

    def __call__(self, event: LogEvent) -> None:
        text = self.formatEvent(event)
        if not text:
            return
        self._outFile.write(text if self._encoding is None else text.encode(self._encoding))
        self.unflushed += 1
        if self.unflushed >= MAX_UNFLUSHED_LINES:
            self.flush()
        elif self.pending is None:
            clock = self._running_clock()
            if clock is None:
                self.flush()
            else:
                self.pending = clock.callLater(FLUSH_INTERVAL, self._flush_due)

    def _running_clock(self) -> Any:
        if self.clock is not None:
            return self.clock
        from twisted.internet import reactor

        if not getattr(reactor, "running", False):
            return None
        self.clock = reactor
        reactor.addSystemEventTrigger("after", "shutdown", self.flush)
        return reactor

    def _flush_due(self) -> None:
        self.pending = None
        self.flush()

    def flush(self) -> None:
        pending = self.pending
        if pending is not None and pending.active():
            pending.cancel()
        self.pending = None
        if self.unflushed:
            self.unflushed = 0
            self._outFile.flush()


_LEGACY_TEXT_KEYS = ("message", "format", "log_legacy", "log_flattened")


@implementer(ILogObserver)
class RedactTokensInText:
    """For an observer that writes the event's text alone (syslog): pass on
    the event with its text redacted. Only events whose text holds a token
    are copied."""

    def __init__(self, observer: ILogObserver) -> None:
        self.observer = observer

    def __call__(self, event: LogEvent) -> None:
        text = message(event)
        if TOKEN_MARK in text:
            redacted = redact_tokens(text) or ""
            event = {**event, "log_format": redacted.replace("{", "{{").replace("}", "}}")}
            # What a legacy observer would read instead of log_format.
            for key in _LEGACY_TEXT_KEYS:
                event.pop(key, None)
        self.observer(event)


def _text_line(event: LogEvent) -> str | None:
    """twistd's own line (`formatEventAsClassicLogText`), made for less: the
    time stamp once per second (working out the local time zone for it was a
    third of a line's cost) and the message with `str.format_map`."""
    text = message(event)
    if not text or "log_failure" in event:
        return formatEventAsClassicLogText(event, formatTime=_time_stamp)
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
    else:
        try:
            system = str(system)
        except Exception:
            system = "UNFORMATTABLE"
    line = f"{_time_stamp(event.get('log_time'))} [{system}] {text}"
    return line.replace("\n", "\n\t") + "\n"


def message(event: LogEvent) -> str:
    """`formatEvent(event)`: the same text, but ten times faster for the
    usual ``{name}`` fields. Twisted's own formatter (which also calls
    ``{name()}`` fields and describes events it cannot format) takes over
    for anything else."""
    text = event.get("log_format")
    if type(text) is str and "log_flattened" not in event:
        try:
            return text.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


_last_second: list[Any] = [None, ""]


def _time_stamp(when: float | None) -> str:
    if when is None:
        return "-"
    second = math.floor(when)
    last = _last_second
    if last[0] != second:
        last[0], last[1] = second, formatTime(second)
    return str(last[1])


def twistd_log_file(twistd_options: dict[str, Any] | None) -> IO[str]:
    """Where twistd would write its log for these (twistd's own) options:
    stdout in the foreground unless ``--logfile`` names a file, otherwise
    that file (``twistd.log`` by default), rotated on SIGUSR1 as twistd does."""
    options = twistd_options or {}
    name = options.get("logfile") or ""
    if name == "-" or (not name and options.get("nodaemon")) or twistd_options is None:
        return sys.stdout
    logfile = LogFile.fromFullPath(name or "twistd.log")
    _rotate_on_sigusr1(logfile)
    opened: IO[str] = logfile  # a LogFile writes text
    return opened


def _rotate_on_sigusr1(logfile: LogFile) -> None:
    import signal

    # As twistd does: only when nothing else handles SIGUSR1.
    if not signal.getsignal(signal.SIGUSR1):

        def rotate(signum: int, frame: object) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(logfile.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)


def make_observer(
    log_format: str,
    level: LogLevel,
    twistd_options: dict[str, Any] | None,
    handled_prefix: Callable[[], str | None] | None = None,
) -> ILogObserver:
    """The observer the plugin gives twistd (its options, if any, say where
    to). ``handled_prefix``: see `HandledSocketPrefix`."""
    if twistd_options is not None and twistd_options.get("syslog"):
        from twisted.python import syslog

        # The caller refuses JSON to syslog: syslog has its own record format.
        legacy = syslog.SyslogObserver(twistd_options.get("prefix") or "twisted").emit
        to_syslog = LegacyLogObserverWrapper(legacy)  # type: ignore[arg-type]
        observer: ILogObserver = RedactTokensInText(to_syslog)
    else:
        observer = file_observer(twistd_log_file(twistd_options), log_format)
    if handled_prefix is not None:
        observer = HandledSocketPrefix(observer, handled_prefix)
    return LevelFilter(observer, level)


@implementer(ILogObserver)
class HandledSocketPrefix:
    """Gives a legacy line without a system ("-") logged while the event loop
    reads or writes a socket (Twisted's "Unhandled Error" for an exception in
    a read, among them) that socket's log prefix, which Twisted's own loop put
    in the legacy log context and the server's lean loop does not.
    ``handled_prefix()`` is that prefix, or None outside a read or write."""

    def __init__(self, observer: ILogObserver, handled_prefix: Callable[[], str | None]) -> None:
        self.observer = observer
        self.handled_prefix = handled_prefix

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_system") == "-":
            prefix = self.handled_prefix()
            if prefix is not None:
                event = {**event, "log_system": prefix}
                if "system" in event:  # the legacy event's own copy
                    event["system"] = prefix
        self.observer(event)
