"""`logs.FlushedLater`: log lines are flushed in order, at most
`FLUSH_INTERVAL` after they were written, never more than
`MAX_UNFLUSHED_LINES` at a time, and at shutdown."""

from __future__ import annotations

import io

from twisted.internet import task
from twisted.logger import Logger

from webrtc_signal.server import logs


class CountingFile(io.StringIO):
    """A text file that counts its flushes and what was flushed by then."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.flushed = ""

    def flush(self) -> None:
        self.flushes += 1
        self.flushed = self.getvalue()


def lines(text: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in text.splitlines()]


def test_lines_are_flushed_together_in_order_after_the_interval() -> None:
    out, clock = CountingFile(), task.Clock()
    log = Logger(observer=logs.file_observer(out, "text", clock), namespace="test")
    for n in range(3):
        log.info("line {n}", n=n)
    assert out.flushes == 0
    clock.advance(logs.FLUSH_INTERVAL / 2)
    log.info("line 3")
    assert out.flushes == 0
    clock.advance(logs.FLUSH_INTERVAL / 2)
    assert out.flushes == 1
    assert lines(out.flushed) == ["line 0", "line 1", "line 2", "line 3"]
    assert not clock.getDelayedCalls()


def test_many_lines_are_flushed_every_max_lines() -> None:
    out, clock = CountingFile(), task.Clock()
    log = Logger(observer=logs.file_observer(out, "json", clock), namespace="test")
    for n in range(logs.MAX_UNFLUSHED_LINES + 1):
        log.info("line {n}", n=n)
    assert out.flushes == 1
    assert out.flushed.count("\n") == logs.MAX_UNFLUSHED_LINES
    clock.advance(logs.FLUSH_INTERVAL)
    assert out.flushes == 2
    assert out.flushed == out.getvalue()
    assert out.getvalue().count("\n") == logs.MAX_UNFLUSHED_LINES + 1


def test_a_flush_at_shutdown_writes_what_waits_and_cancels_the_timer() -> None:
    out, clock = CountingFile(), task.Clock()
    observer = logs.file_observer(out, "text", clock)
    Logger(observer=observer, namespace="test").info("last words")
    assert isinstance(observer, logs.FlushedLater)
    observer.flush()  # what the reactor's shutdown trigger calls
    assert lines(out.flushed) == ["last words"]
    assert not clock.getDelayedCalls()
