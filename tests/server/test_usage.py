"""Usage errors of ``twistd webrtc-signal``, run as a user runs it: one line
on stderr naming the option and the problem (with a hint for the usual
slips), nothing on stdout, exit status 1; ``--help`` still complete."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.python import usage

from webrtc_signal.app import Options

from ..support.twistd import parse_as_twistd

ROOT = Path(__file__).parents[2]
TWISTD = str(Path(sys.executable).parent / "twistd")


# Given first, so that a regression that let a bad command line through
# would listen on loopback only (a later --port still wins).
LOOPBACK = ("--port", "tcp:0:interface=127.0.0.1")


def twistd(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TWISTD, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--max-peer", "5"],
            "webrtc-signal: unknown option --max-peer (did you mean --max-peers?)",
        ),
        (
            ["--seal-timout", "5"],
            "webrtc-signal: unknown option --seal-timout (did you mean --seal-timeout?)",
        ),
        (["--frobnicate"], "webrtc-signal: unknown option --frobnicate"),
        (["-x"], "webrtc-signal: unknown option -x"),
        (
            ["--port", "9999"],
            "webrtc-signal: --port '9999' is not usable: Unknown endpoint type: '9999' "
            "(try --port tcp:9999)",
        ),
        (
            ["--metrics", "9100"],
            "webrtc-signal: --metrics '9100' is not usable: Unknown endpoint type: '9100' "
            "(try --metrics tcp:9100)",
        ),
        (["--max-peers", "x"], "webrtc-signal: --max-peers must be a whole number, not 'x'"),
        (["--max-peers"], "webrtc-signal: --max-peers needs a value"),
        (["--no-demo=yes"], "webrtc-signal: --no-demo takes no value"),
        (["9999"], "webrtc-signal: unexpected argument '9999' (try --port tcp:9999)"),
        (
            ["serve"],
            "webrtc-signal: unexpected argument 'serve': every setting is an option (see --help)",
        ),
        (
            ["-n"],
            "webrtc-signal: unknown option -n (an option of twistd's: put it before webrtc-signal)",
        ),
        (
            ["--logfile", "x.log"],
            "webrtc-signal: unknown option --logfile (an option of twistd's: put it before "
            "webrtc-signal)",
        ),
    ],
)
def test_a_usage_error_is_one_line_on_stderr(argv: list[str], line: str) -> None:
    assert parse_as_twistd([*LOOPBACK, *argv]) == (1, line + "\n")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--max-peer", "5"],
            "webrtc-signal: unknown option --max-peer (did you mean --max-peers?)",
        ),
        (
            ["--port", "9999"],
            "webrtc-signal: --port '9999' is not usable: Unknown endpoint type: '9999' "
            "(try --port tcp:9999)",
        ),
    ],
)
def test_a_real_twistd_prints_the_line_on_stderr_alone(argv: list[str], line: str) -> None:
    """The same through the twistd command, nothing on stdout, status 1."""
    result = twistd("-n", "--pidfile=", "webrtc-signal", *LOOPBACK, *argv)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", line + "\n")


def test_a_daemon_start_reports_the_same_line_before_forking(tmp_path: Path) -> None:
    pidfile = tmp_path / "twistd.pid"
    result = twistd(
        "--pidfile", str(pidfile), "--logfile", str(tmp_path / "twistd.log"),
        "webrtc-signal", *LOOPBACK, "--max-peer", "5",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "webrtc-signal: unknown option --max-peer (did you mean --max-peers?)\n"
    assert not pidfile.exists()


def test_help_still_lists_every_option_and_exits_0() -> None:
    result = twistd("-n", "--pidfile=", "webrtc-signal", "--help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^\s+(?:-\w, )?--([\w-]+)", result.stdout, re.M))
    ours = {name.rstrip("=") for name in Options().longOpt}
    assert ours <= listed, ours - listed
    assert len(result.stdout.splitlines()) > 60  # the whole help, descriptions included


def test_twistds_own_options_keep_twistds_answer() -> None:
    """Before the plugin's name an option is twistd's: its usage error is
    twistd's own (its help, then the problem), not ours."""
    result = twistd("--nodemon", "webrtc-signal")
    assert result.returncode == 1
    assert "Usage: twistd [options]" in result.stdout
    assert "option --nodemon not recognized" in result.stdout
    assert "webrtc-signal:" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-peer", "5"], "unknown option --max-peer (did you mean --max-peers?)"),
        (
            ["--port", "80"],
            "--port '80' is not usable: Unknown endpoint type: '80' (try --port tcp:80)",
        ),
        (["--max-lobbies", "many"], "--max-lobbies must be a whole number, not 'many'"),
    ],
)
def test_parsed_on_its_own_the_options_raise_the_same_line(argv: list[str], message: str) -> None:
    """Outside twistd (tests, an embedding program) the line comes as a
    UsageError, as from any usage.Options, and nothing exits."""
    with pytest.raises(usage.UsageError) as raised:
        Options().parseOptions(argv)
    assert str(raised.value) == message


def documented_mistakes() -> list[tuple[list[str], str]]:
    """docs/running.md's usage errors: each ``$ twistd ...`` line and the
    line it shows printed."""
    from ..test_docs_links import lines_of

    lines = [line for _, line, in_code in lines_of(ROOT / "docs" / "running.md") if in_code]
    shown = []
    for command, printed in itertools.pairwise(lines):
        if command.startswith("$ twistd") and printed.startswith("webrtc-signal: "):
            shown.append((shlex.split(command[2:]), printed))
    return shown


def test_the_documented_usage_errors_are_what_twistd_prints() -> None:
    """Parsed as twistd parses them (the real command prints the same line:
    see the tests above that run it)."""
    mistakes = documented_mistakes()
    assert len(mistakes) >= 3
    for argv, printed in mistakes:
        plugin = argv.index("webrtc-signal")
        # Before the plugin's name only what does not change the parse: -n
        # decides whether to fork, after the command line was accepted.
        assert set(argv[1:plugin]) <= {"-n"}, argv
        assert parse_as_twistd([*LOOPBACK, *argv[plugin + 1 :]]) == (1, printed + "\n"), argv
