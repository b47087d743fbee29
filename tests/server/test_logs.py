"""Log output: the text lines are twistd's own, the JSON lines carry every
field, the level filter drops what it should; and the new options' usage
errors."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import (
    Logger,
    LogLevel,
    LogPublisher,
    formatEventAsClassicLogText,
)
from twisted.python import usage
from twisted.python.failure import Failure

from webrtc_signal import InvalidSetting, SignalingConfig
from webrtc_signal.app import Options
from webrtc_signal.server import logs
from webrtc_signal.server.tokens import make_token

from ..support.http import http_get, http_request
from ..support.processes import spawn
from ..support.wsclient import connect

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def events_of(emit: Any) -> list[dict[str, Any]]:
    """The events ``emit(log)`` makes through a real `Logger`."""
    publisher = LogPublisher()
    seen: list[dict[str, Any]] = []
    publisher.addObserver(seen.append)
    emit(Logger(namespace="webrtc_signal", observer=publisher))
    return seen


def _failure() -> Failure:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        return Failure()
    raise AssertionError


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


SAMPLES = [
    lambda log: log.info("peer {peer_id} joined lobby {lobby} (members: {members})",
                         peer_id=7, lobby="AbC", members=2),
    lambda log: log.debug("peer {peer_id} connected from {address}", peer_id=7, address="::1:5"),
    lambda log: log.warn("{value!r:>12} and {value.real}", value=3),
    lambda log: log.info("two\nlines {x}", x="and\na third"),
    lambda log: log.info("called: {f()}", f=lambda: "yes"),
    lambda log: log.info("missing {nothing}"),
    lambda log: log.info("positional {}"),
    lambda log: log.info("with a system", log_system="my-system"),
    lambda log: log.info("bad system", log_system=Unprintable()),
    lambda log: log.failure("it broke: {why}", _failure(), why="division"),
    lambda log: log.info(""),
    lambda log: log.emit(LogLevel.error, "unicode {name}", name="żółw 🐢"),
]  # fmt: skip


@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_text_lines_are_exactly_twistds(sample: int) -> None:
    (event,) = events_of(SAMPLES[sample])
    assert logs._text_line(event) == formatEventAsClassicLogText(event)


def test_text_lines_of_events_without_level_or_namespace_are_twistds() -> None:
    for event in ({"log_format": "bare {x}", "x": 1}, {"log_format": "t", "log_time": 0.5}, {}):
        assert logs._text_line(event) == formatEventAsClassicLogText(event)


@pytest.mark.parametrize("sample", range(len(SAMPLES)))
def test_json_lines_carry_every_field(sample: int) -> None:
    (event,) = events_of(SAMPLES[sample])
    line = logs.event_as_json(event)
    assert line.endswith("\n") and "\n" not in line[:-1]
    record = json.loads(line)
    assert ISO_UTC.match(record["time"])
    assert record["level"] == event["log_level"].name
    assert record["namespace"] == "webrtc_signal"
    assert record["message"] == logs.message(event)
    for key, value in event.items():
        if not key.startswith("log_") and key not in logs._RESERVED:
            assert key in record
            if isinstance(value, str | int | float | bool | type(None)):
                assert record[key] == value
    assert ("traceback" in record) == ("log_failure" in event)


def test_json_time_is_utc_iso_8601_with_microseconds() -> None:
    record = json.loads(logs.event_as_json({"log_time": 1.5, "log_format": "x"}))
    assert record["time"] == "1970-01-01T00:00:01.500000Z"


def test_json_keeps_a_field_named_like_a_standard_key() -> None:
    (event,) = events_of(lambda log: log.info("{message} at {time}", message="hi", time=3))
    record = json.loads(logs.event_as_json(event))
    assert record["message"] == "hi at 3"
    assert (record["message_"], record["time_"]) == ("hi", 3)


def test_json_writes_what_json_cannot_hold_as_text() -> None:
    (event,) = events_of(
        lambda log: log.info("x", thing=Unprintable, big=2**70, raw=b"\x00", keyed={1: "a"})
    )
    record = json.loads(logs.event_as_json(event))
    assert record["thing"].startswith("<class ")
    assert record["big"] == str(2**70)
    assert record["keyed"] == {"1": "a"}


def test_level_filter_passes_its_level_and_above() -> None:
    seen: list[dict[str, Any]] = []
    keep = logs.LevelFilter(seen.append, LogLevel.warn)
    for level in LogLevel.iterconstants():
        keep({"log_level": level, "log_format": level.name})
    keep({"log_format": "no level"})
    assert [event["log_format"] for event in seen] == ["warn", "error", "critical", "no level"]


def test_file_observer_writes_one_line_per_event() -> None:
    out = io.StringIO()
    observer = logs.make_observer("json", LogLevel.info, None)
    assert observer.observer._outFile is sys.stdout  # no twistd options: stdout
    observer = logs.LevelFilter(logs.file_observer(out, "json"), LogLevel.info)
    now = time.time()
    observer({"log_format": "a", "log_level": LogLevel.info, "log_time": now})
    observer({"log_format": "b", "log_level": LogLevel.debug, "log_time": now})
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["a"]


def test_a_legacy_line_without_a_system_gets_the_handled_socket_s_prefix() -> None:
    seen: list[dict[str, Any]] = []
    handled: list[str | None] = [None]
    observer = logs.HandledSocketPrefix(seen.append, lambda: handled[0])
    legacy = {"log_system": "-", "system": "-", "log_format": "Unhandled Error"}
    observer(legacy)  # outside a read or write: as it came
    handled[0] = "SignalingServerProtocol,7,127.0.0.1"
    observer(legacy)
    observer({"log_system": "twistd", "log_format": "x"})  # it has one
    observer({"log_namespace": "webrtc_signal", "log_format": "y"})  # twisted.logger's
    assert seen == [
        legacy,
        {**legacy, "log_system": handled[0], "system": handled[0]},
        {"log_system": "twistd", "log_format": "x"},
        {"log_namespace": "webrtc_signal", "log_format": "y"},
    ]
    assert legacy["system"] == "-"  # the event itself is left alone


def test_the_log_goes_where_twistd_would_put_it(tmp_path: Any) -> None:
    assert logs.twistd_log_file({"nodaemon": True, "logfile": None}) is sys.stdout
    assert logs.twistd_log_file({"nodaemon": True, "logfile": "-"}) is sys.stdout
    path = tmp_path / "server.log"
    observer = logs.make_observer("text", LogLevel.info, {"nodaemon": True, "logfile": str(path)})
    observer({"log_format": "to the file", "log_level": LogLevel.info, "log_time": 0.0})
    observer.observer._outFile.close()
    assert path.read_text().endswith("to the file\n")


# -- options -------------------------------------------------------------------


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_new_options_defaults() -> None:
    options = parse()
    assert options["config"].drain_timeout == 0
    assert (options["log_format"], options["log_level"]) == ("text", LogLevel.info)


def test_new_options_reach_their_settings() -> None:
    options = parse("--drain-timeout", "12.5", "--log-format", "json", "--log-level", "WARN")
    assert options["config"].drain_timeout == 12.5
    assert (options["log_format"], options["log_level"]) == ("json", LogLevel.warn)
    assert parse("--log-level", "warning")["log_level"] == LogLevel.warn


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--drain-timeout", "soon"], "--drain-timeout must be a number of seconds, not 'soon'"),
        (["--drain-timeout", "-1"], "--drain-timeout must be a number of seconds >= 0"),
        (["--drain-timeout", "inf"], "--drain-timeout must be a finite number of seconds"),
        (["--drain-timeout", "nan"], "--drain-timeout must be a finite number of seconds"),
        (["--log-format", "xml"], "--log-format must be text or json, not 'xml'"),
        (["--log-format", ""], "--log-format must be text or json, not ''"),
        (
            ["--log-level", "loud"],
            "--log-level must be one of debug, info, warn, error, critical, not 'loud'",
        ),
    ],
)
def test_bad_values_of_new_options_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert str(raised.value).startswith(message)


def test_json_logs_cannot_go_to_syslog() -> None:
    from .test_usage import twistd

    result = twistd("--syslog", "-n", "webrtc-signal", "--log-format", "json")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "webrtc-signal: --log-format json writes lines to stdout or twistd's --logfile, "
        "not to --syslog\n"
    )


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), "5", True])
def test_invalid_drain_timeout_names_the_field(value: object) -> None:
    with pytest.raises(InvalidSetting) as raised:
        SignalingConfig(drain_timeout=value)  # type: ignore[arg-type]
    assert raised.value.setting == "drain_timeout"


def test_quiet_logger_does_not_make_events_below_the_level() -> None:
    publisher = LogPublisher()
    seen: list[dict[str, Any]] = []
    publisher.addObserver(seen.append)
    log = logs.QuietLogger(namespace="webrtc_signal", observer=publisher)
    try:
        logs.set_level(LogLevel.info)
        log.debug("hidden {x}", x=1)
        log.info("shown {x}", x=2)
        log.emit(LogLevel.warn, "shown too")
        assert [event["log_format"] for event in seen] == ["shown {x}", "shown too"]
    finally:
        logs.set_level(LogLevel.debug)
    log.debug("everything again")
    assert seen[-1]["log_format"] == "everything again"


# -- tokens never reach the log -------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        (f"GET /signal?token={JWT} HTTP/1.1", "GET /signal?token=<redacted> HTTP/1.1"),
        (f"/?token={JWT}&lobby=x", "/?token=<redacted>&lobby=x"),
        (f"/?lobby=x&token={JWT}", "/?lobby=x&token=<redacted>"),
        (f"status line \"GET /?token={JWT}\"')", "status line \"GET /?token=<redacted>\"')"),
        (f"('GET /?token={JWT}')", "('GET /?token=<redacted>')"),
        (f"a=1 token={JWT}\tb=2", "a=1 token=<redacted>\tb=2"),
        (f"token={JWT}\n\tnext line", "token=<redacted>\n\tnext line"),
        (f"token={JWT} access_token={JWT}", "token=<redacted> access_token=<redacted>"),
        ("empty: ?token=&x=1", "empty: ?token=&x=1"),
        ("already token=<redacted>", "already token=<redacted>"),
    ],
)  # fmt: skip
def test_token_values_are_redacted_to_their_end(line: str, redacted: str) -> None:
    assert logs.redact_tokens(line) == redacted


def test_a_line_without_a_token_is_passed_on_as_it_is() -> None:
    line = "peer 7 joined lobby AbC (members: 2)\n"
    assert logs.redact_tokens(line) is line
    assert logs.redact_tokens(None) is None


class ShowsAToken:
    def __str__(self) -> str:
        return f"<Request uri=/signal?token={JWT}>"


TOKEN_EVENTS = [
    # Twisted.web's access log: LoggingFile makes one "{log_io}" event a line.
    lambda log: log.info("{log_io}",
                         log_io=f'127.0.0.1 - - "GET /ice-servers?token={JWT} HTTP/1.1" 200'),
    # Autobahn's refusal of a bad request line quotes it in a field.
    lambda log: log.info("failing WebSocket opening handshake ('{reason}')",
                         reason=f'Bad HTTP request status line "GET /?token={JWT}"'),
    # Autobahn's debug dump of a request: bytes.
    lambda log: log.debug("received HTTP request:\n\n{data}\n\n",
                          data=f"GET /?token={JWT} HTTP/1.1\r\nHost: h\r\n\r\n".encode()),
    lambda log: log.info("url {url}", url=f"ws://h/?token={JWT}",
                         nested={"query": [f"token={JWT}"]}),
    lambda log: log.info("request {request}", request=ShowsAToken()),
    lambda log: log.info(f"baked into the format: token={JWT} {{x}}", x=1),
    lambda log: log.failure(f"failed for /?token={JWT}", _failure()),
]  # fmt: skip


@pytest.mark.parametrize("log_format", logs.LOG_FORMATS)
@pytest.mark.parametrize("sample", range(len(TOKEN_EVENTS)))
def test_no_token_reaches_either_output(log_format: str, sample: int) -> None:
    (event,) = events_of(TOKEN_EVENTS[sample])
    out = io.StringIO()
    logs.file_observer(out, log_format)(event)
    written = out.getvalue()
    assert JWT not in written
    assert "token=<redacted>" in written
    if log_format == "json":
        (line,) = written.splitlines()
        record = json.loads(line)  # still one valid object
        assert "token=<redacted>" in record["message"] + json.dumps(record)


def test_syslogs_text_is_redacted_too() -> None:
    from twisted.logger import LegacyLogObserverWrapper
    from twisted.python import log as legacy_log

    texts: list[str | None] = []
    observer = logs.RedactTokensInText(
        LegacyLogObserverWrapper(lambda event: texts.append(legacy_log.textFromEventDict(event)))
    )
    for emit in TOKEN_EVENTS:
        for event in events_of(emit):
            observer(event)
    # An event from the legacy API (twisted.python.log.msg), as Twisted's own code logs.
    publisher = LogPublisher()
    publisher.addObserver(observer)
    legacy_log.LogPublisher(publisher, publisher).msg(f"legacy GET /?token={JWT}")
    plain = {
        "log_format": "no {what} here",
        "what": "token",
        "log_level": LogLevel.info,
        "log_time": 0.0,
    }
    observer(plain)
    assert len(texts) == len(TOKEN_EVENTS) + 2
    assert all(text is not None and JWT not in text for text in texts), texts
    assert all("token=<redacted>" in str(text) for text in texts[:-1])
    assert texts[-1] == "no token here"


UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@pytest.mark.parametrize("log_format", logs.LOG_FORMATS)
@pytest_twisted.ensureDeferred
async def test_twistd_logs_no_token_in_either_format(log_format: str, tmp_path: Any) -> None:
    """A real server with token auth, logging everything: a player connects
    with its token, fetches /ice-servers with it, and a broken request line
    quoting it is refused (one line of ours, none of Autobahn's). The token
    shows up nowhere in the output, redacted where it would have."""
    from .test_usage import TWISTD

    secret = tmp_path / "secret"
    secret.write_text("a-secret-for-the-redaction-test-32-bytes\n")
    token = make_token(secret.read_text().strip(), subject="player")
    process = spawn(
        [
            TWISTD, "-n", "--pidfile=", "webrtc-signal", "--port", "tcp:0:interface=127.0.0.1",
            "--token-secret-file", str(secret), "--log-format", log_format, "--log-level", "debug",
        ],
        path=str(tmp_path),
    )  # fmt: skip
    try:
        listening = await process.wait_for_match(r"listening on 127\.0\.0\.1 port (\d+)")
        port = int(listening.group(1))
        player = await connect(f"ws://127.0.0.1:{port}/?token={token}")
        player.send(0, 0, "")
        await player.expect(1, 1, "true")
        status, _, _ = await http_get(port, f"/ice-servers?token={token}")
        assert status == 200
        answer = await http_request(port, "GET", f"/?token={token} x", UPGRADE)
        assert answer.startswith(b"HTTP/1.1 400 Bad HTTP request status line")
        await process.wait_for("refused an upgrade")
    finally:
        if not process.ended.called:
            process.transport.signalProcess("TERM")
    await process.finished(15)
    output = process.output
    assert token not in output
    assert "failing WebSocket opening handshake" not in output  # Autobahn's noise is gone
    refusals = [line for line in output.splitlines() if "Bad HTTP request status line" in line]
    assert len(refusals) == 1 and "token=<redacted>" in refusals[0]
    if log_format == "json":
        assert all(json.loads(line) for line in output.splitlines())


def documented_lobby_life() -> list[str]:
    """The log lines docs/running.md shows for a lobby's life."""
    from ..test_docs_links import lines_of

    running = Path(__file__).parents[2] / "docs" / "running.md"
    return [line for _, line, in_code in lines_of(running) if in_code and "[webrtc_signal#" in line]


def shape(lines: list[str]) -> list[str]:
    """Log lines without what changes from run to run: the time, and each
    peer id and lobby name as the nth one seen."""
    names: dict[str, str] = {}

    def stand_in(match: re.Match[str]) -> str:
        kind = "lobby" if match.group(0).isalnum() and not match.group(0).isdigit() else "peer"
        return names.setdefault(match.group(0), f"<{kind} {len(names) + 1}>")

    shaped = []
    for line in lines:
        line = re.sub(r"^\d{4}-\d\d-\d\dT\S+ ", "", line)  # the time stamp
        shaped.append(re.sub(r"\b(?:\d{5,}|[A-Za-z0-9]{16,})\b", stand_in, line))
    return shaped


@pytest_twisted.ensureDeferred
async def test_the_documented_lobby_life_is_what_the_server_logs(tmp_path: Any) -> None:
    """docs/running.md's example, played against a real server at
    --log-level debug: the same lines, in the same order."""
    from .test_usage import TWISTD

    process = spawn(
        [
            TWISTD, "-n", "--pidfile=", "webrtc-signal", "--port", "tcp:0:interface=127.0.0.1",
            "--log-level", "debug",
        ],
        path=str(tmp_path),
    )  # fmt: skip
    try:
        port = int((await process.wait_for_match(r"listening on \S+ port (\d+)")).group(1))
        host = await connect(f"ws://127.0.0.1:{port}")
        host.send(0, 0, "")  # JOIN, create a mesh lobby
        await host.expect(1, 1, "true")
        lobby = (await host.expect(0, 0))["data"]
        guest = await connect(f"ws://127.0.0.1:{port}")
        guest.send(0, 0, lobby)
        await guest.expect(1)
        await host.expect(2)  # PEER_CONNECT: the guest is in
        guest.send(7)  # SEAL, from a non-host
        assert await guest.wait_closed() == (4000, "Only host can seal the lobby")
        host.sendClose(1000)
        await host.wait_closed()
        await process.wait_for(f"lobby {lobby} deleted")
    finally:
        if not process.ended.called:
            process.transport.signalProcess("TERM")
    await process.finished(15)
    lines = [line for line in process.output.splitlines() if "[webrtc_signal#" in line]
    first = next(i for i, line in enumerate(lines) if " connected from " in line)
    last = next(i for i, line in enumerate(lines) if " deleted: " in line)
    assert shape(lines[first : last + 1]) == shape(documented_lobby_life())
