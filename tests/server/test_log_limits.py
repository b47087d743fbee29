"""The throttle of log lines a client can cause (`LogLimits`), on a task.Clock:
one line per kind, then one summary per interval, a bounded table of kinds,
and a timer only while something is held back."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.logger import LogLevel, capturedLogs

from webrtc_signal.server.log_limits import (
    MAX_OTHER_KINDS,
    OTHER_REASONS,
    OTHER_SOURCES,
    ClockReading,
    LogLimits,
)
from webrtc_signal.server.logs import message

TOO_MANY = "Too many connections from your address"


def refuse(limits: LogLimits, address: str, reason: str = TOO_MANY) -> bool:
    return limits.emit(
        LogLevel.info,
        reason,
        address,
        "refused a connection from {address}: 429 {reason}",
        address=address,
        reason=reason,
    )


def lines(events: list[dict[str, Any]]) -> list[str]:
    return [message(event) for event in events if event.get("log_namespace") == "webrtc_signal"]


def test_one_line_per_kind_then_a_summary_per_interval() -> None:
    clock = task.Clock()
    limits = LogLimits(clock)
    with capturedLogs() as events:
        assert refuse(limits, "127.0.0.2")
        for _ in range(6_682):
            assert not refuse(limits, "127.0.0.2")
        # Another address and another reason are kinds of their own.
        assert refuse(limits, "127.0.0.3")
        assert refuse(limits, "127.0.0.2", "Server draining")
        assert lines(events) == [
            f"refused a connection from 127.0.0.2: 429 {TOO_MANY}",
            f"refused a connection from 127.0.0.3: 429 {TOO_MANY}",
            "refused a connection from 127.0.0.2: 429 Server draining",
        ]
        clock.advance(9.9)
        assert len(lines(events)) == 3
        clock.advance(0.1)
    assert lines(events)[3:] == [
        f'suppressed 6,682 more "{TOO_MANY}" from 127.0.0.2 in the last 10 s'
    ]
    summary = events[-1]
    assert summary["log_level"] is LogLevel.info
    assert (summary["event_kind"], summary["suppressed"], summary["address"]) == (
        "suppressed",
        6682,
        "127.0.0.2",
    )


def test_a_kind_that_keeps_coming_gets_one_summary_per_interval() -> None:
    clock = task.Clock()
    limits = LogLimits(clock)
    with capturedLogs() as events:
        refuse(limits, "127.0.0.2")
        for _ in range(30):  # 30 s of one refusal a second
            clock.advance(0.5)
            refuse(limits, "127.0.0.2")
            clock.advance(0.5)
    assert lines(events) == [
        f"refused a connection from 127.0.0.2: 429 {TOO_MANY}",
        f'suppressed 10 more "{TOO_MANY}" from 127.0.0.2 in the last 10 s',
        f'suppressed 10 more "{TOO_MANY}" from 127.0.0.2 in the last 10 s',
        f'suppressed 10 more "{TOO_MANY}" from 127.0.0.2 in the last 10 s',
    ]


def test_the_timer_runs_only_while_something_is_held_back() -> None:
    clock = task.Clock()
    limits = LogLimits(clock)
    with capturedLogs() as events:
        refuse(limits, "127.0.0.2")
        # One line, nothing held back: no timer.
        assert clock.getDelayedCalls() == []
        clock.advance(3)
        refuse(limits, "127.0.0.2")
        assert len(clock.getDelayedCalls()) == 1
        # The summary comes at the end of the kind's interval, not 10 s later.
        clock.advance(7)
        assert lines(events)[-1] == (
            f'suppressed 1 more "{TOO_MANY}" from 127.0.0.2 in the last 10 s'
        )
        assert clock.getDelayedCalls() == []
        # Quiet for an interval: the next one is a whole line again, and the
        # kind was forgotten on the way.
        clock.advance(10)
        refuse(limits, "127.0.0.2")
    assert lines(events)[-1] == f"refused a connection from 127.0.0.2: 429 {TOO_MANY}"
    assert len(lines(events)) == 3


def test_the_table_of_kinds_is_bounded() -> None:
    clock = task.Clock()
    limits = LogLimits(clock, max_kinds=4)
    with capturedLogs() as events:
        for n in range(1000):
            refuse(limits, f"10.0.{n // 256}.{n % 256}")
        # Four addresses of their own, then every other one shares a kind.
        assert len(limits) == 5
        assert len(lines(events)) == 5
        # Reasons get an "other addresses" kind each, up to a bound; then
        # one kind for everything.
        for n in range(MAX_OTHER_KINDS + 10):
            refuse(limits, "10.9.9.9", f"reason {n}")
        assert len(limits) == 4 + MAX_OTHER_KINDS + 1
        clock.advance(10)
    summaries = [line for line in lines(events) if line.startswith("suppressed")]
    assert summaries == [
        f'suppressed 995 more "{TOO_MANY}" from {OTHER_SOURCES} in the last 10 s',
        f'suppressed 10 more "{OTHER_REASONS}" from {OTHER_SOURCES} in the last 10 s',
    ]
    # The summary timer forgot every kind that went quiet; the two it just
    # summarised wait out their interval (then make room when needed), and
    # nothing is held back, so no timer runs.
    assert len(limits) == 2
    assert clock.getDelayedCalls() == []


def test_quiet_kinds_make_room_when_the_table_is_full() -> None:
    clock = task.Clock()
    limits = LogLimits(clock, max_kinds=2)
    with capturedLogs() as events:
        refuse(limits, "10.0.0.1")
        refuse(limits, "10.0.0.2")
        clock.advance(10)
        # Both went quiet without a timer: the table makes room for newcomers.
        assert refuse(limits, "10.0.0.3")
        assert refuse(limits, "10.0.0.4")
    assert len(lines(events)) == 4


def test_a_line_below_the_log_level_is_neither_written_nor_counted() -> None:
    from webrtc_signal.server import logs

    clock = task.Clock()
    limits = LogLimits(clock)
    saved = logs.QuietLogger._skipped
    logs.set_level(LogLevel.warn)
    try:
        with capturedLogs() as events:
            assert not refuse(limits, "127.0.0.2")
    finally:
        logs.QuietLogger._skipped = saved
    assert lines(events) == []
    assert len(limits) == 0


def test_allow_is_for_callers_that_write_their_own_line() -> None:
    now = [0.0]
    limits = LogLimits(ClockReading(lambda: now[0]))
    assert limits.allow("backend down") == 0
    assert limits.allow("backend down") is None
    assert limits.allow("backend down") is None
    assert limits.allow("bad token", "admin") == 0
    now[0] = 10.0
    assert limits.allow("backend down") == 2
    assert limits.allow("backend down") is None


def test_ipv6_sources_are_one_kind_per_network_of_the_prefix() -> None:
    clock = task.Clock()
    limits = LogLimits(clock, ipv6_prefix=56)
    with capturedLogs() as events:
        # A client rotating through the /64s of its /56: one kind.
        for n in range(256):
            refuse(limits, f"2001:db8:0:{n:x}::1")
        refuse(limits, "2001:db8:0:100::1")  # the next /56
        clock.advance(10)
    assert lines(events) == [
        f"refused a connection from 2001:db8:0:0::1: 429 {TOO_MANY}",
        f"refused a connection from 2001:db8:0:100::1: 429 {TOO_MANY}",
        f'suppressed 255 more "{TOO_MANY}" from 2001:db8::/56 in the last 10 s',
    ]


def test_a_full_table_is_searched_for_room_at_most_once_a_second() -> None:
    clock = task.Clock()
    limits = LogLimits(clock, max_kinds=1024)
    searches = []
    search = limits._forget_quiet

    def counted(now: float) -> None:
        searches.append(now)
        search(now)

    limits._forget_quiet = counted  # type: ignore[method-assign]
    with capturedLogs():
        # A client with thousands of addresses, none of them quiet yet.
        for n in range(5000):
            refuse(limits, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
            if n % 1000 == 999:
                clock.advance(0.5)
    # Full from 0.5 s on, to 2.0 s: two searches, not one per refusal.
    assert searches == [0.5, 1.5]
    assert len(limits) == 1025
