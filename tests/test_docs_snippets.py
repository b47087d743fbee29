"""The documentation's programs run as written, and its commands use options
that exist.

Every ```python block in README.md and docs/*.md is marked, on the line before
it, with an HTML comment (invisible on GitHub) saying what it is:

    <!-- snippet: run -->                a program that runs to its end
    <!-- snippet: run expect="TEXT" -->  ... and prints TEXT
    <!-- snippet: server -->             a program that serves until stopped
    <!-- snippet: server path=/signal --> ... with its WebSocket at that path
    <!-- snippet: fragment -->           part of a program; never run

A "run" program gets WEBRTC_SIGNAL_URL, the URL of a server this module starts
(the programs read it, defaulting to ws://localhost:9080); a "server" program
gets LISTEN, an endpoint description for a free port on 127.0.0.1 (the
programs read it, defaulting to a fixed port). Each runs in a subprocess of
the venv's Python with a bounded time. Shell blocks are checked more cheaply:
the options each documented command uses must be in that command's --help.

Only public things are used here (the documented commands, subprocesses and
files), so that moving modules inside the package does not touch this test.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from .support.loopback_ice import LOG, IceLog, child_environment

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 60.0  # a program's whole run; they take 1-3 s here, more on a busy machine
START_TIMEOUT = 20.0  # until a server program (or the test's server) listens
STOP_TIMEOUT = 15.0  # from SIGTERM to exit (the service gives clients 5 s)

PYTHON_INFO = {"python", "py", "python3"}
SHELL_INFO = {"sh", "shell", "bash", "console"}
KINDS = {"run", "server", "fragment"}

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
_MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<kind>[\w-]+)(?P<attributes>.*?)\s*-->\s*$")
_ATTRIBUTE = re.compile(r'(\w+)=(?:"([^"]*)"|(\S+))')


# -- finding the blocks ----------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced code block, with the snippet marker before it (if any)."""

    path: Path
    line: int  # of the opening fence, counting from 1
    info: str  # the info string's first word, lowercased
    text: str
    marker: str | None = None  # "run", "server", "fragment", or something wrong
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class StrayMarker:
    path: Path
    line: int
    problem: str


def parse(path: Path) -> tuple[list[Block], list[StrayMarker]]:
    """The fenced blocks of one Markdown file, and markers that mark nothing."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    strays: list[StrayMarker] = []
    pending: tuple[int, re.Match[str]] | None = None  # a marker waiting for its block
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE.match(line)
        if opening is None:
            marker = _MARKER.match(line.strip())
            if marker is not None:
                if pending is not None:
                    strays.append(StrayMarker(path, pending[0], "not followed by a code block"))
                pending = (index + 1, marker)
            elif line.strip() and pending is not None:
                strays.append(StrayMarker(path, pending[0], "not followed by a code block"))
                pending = None
            index += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[index])
            index += 1
        index += 1  # past the closing fence (or the end of the file)
        kind, attributes = None, {}
        if pending is not None:
            kind = pending[1]["kind"]
            attributes = {
                name: quoted or bare
                for name, quoted, bare in _ATTRIBUTE.findall(pending[1]["attributes"])
            }
        info = opening["info"].lower()
        if pending is not None and info not in PYTHON_INFO:
            strays.append(StrayMarker(path, pending[0], f"marks a {info or 'plain'} block"))
        blocks.append(
            Block(
                path,
                line=index - len(body) - 1,
                info=info,
                text="\n".join(body) + "\n",
                marker=kind,
                attributes=attributes,
            )
        )
        pending = None
    if pending is not None:
        strays.append(StrayMarker(path, pending[0], "not followed by a code block"))
    return blocks, strays


def all_blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in parse(path)[0]]


def python_blocks(kind: str) -> list[Block]:
    return [b for b in all_blocks() if b.info in PYTHON_INFO and b.marker == kind]


def by_place(blocks: list[Block]) -> list[Any]:
    """Test parameters, one per distinct program (the README's quick start is
    also in docs/embedding.md), named by where it first appears."""
    first: dict[str, Block] = {}
    for block in blocks:
        first.setdefault(block.text, block)
    return [pytest.param(block, id=block.where) for block in first.values()]


def test_every_python_block_says_what_it_is() -> None:
    problems = []
    for path in DOCUMENTS:
        blocks, strays = parse(path)
        for block in blocks:
            if block.info not in PYTHON_INFO:
                continue
            if block.marker is None:
                problems.append(
                    f"{block.where}: a python block without <!-- snippet: run|server|fragment -->"
                )
            elif block.marker not in KINDS:
                problems.append(f"{block.where}: unknown snippet kind {block.marker!r}")
        problems += [
            f"{stray.path.relative_to(ROOT)}:{stray.line}: a snippet marker {stray.problem}"
            for stray in strays
        ]
    assert problems == []
    # The parser finds what is there: the documentation has programs of both kinds.
    assert len(python_blocks("run")) >= 2 and len(python_blocks("server")) >= 2


def test_the_parser_reads_markers_fences_and_attributes(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n"
        '<!-- snippet: run expect="a b" -->\n'
        "```python\nprint('a b')\n```\n\n"
        "````python\n```\nnested\n```\n````\n\n"
        "<!-- snippet: server path=/signal -->\n\n"
        "text between\n\n"
        "```sh\nls\n```\n"
    )
    blocks, strays = parse(page)
    assert [(b.line, b.info, b.marker, b.attributes) for b in blocks] == [
        (4, "python", "run", {"expect": "a b"}),
        (8, "python", None, {}),
        (18, "sh", None, {}),
    ]
    assert blocks[0].text == "print('a b')\n"
    assert blocks[1].text == "```\nnested\n```\n"
    assert [(s.line, s.problem) for s in strays] == [(14, "not followed by a code block")]


# -- running the programs -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before listening:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"not listening on {port} after {START_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit status; a process that hangs is killed and fails the test."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {STOP_TIMEOUT} s after SIGTERM")


def environment(**extra: str) -> dict[str, str]:
    # aiortc's ICE pinned to 127.0.0.1, recording into the suite's ICE log
    # (tests/support/loopback_ice), and the checkout's package, whichever way
    # the venv installed it.
    pinned = child_environment(os.environ.get(LOG, os.devnull))
    path = os.pathsep.join(filter(None, [str(ROOT), pinned["PYTHONPATH"]]))
    return {**os.environ, **pinned, "PYTHONPATH": path, **extra}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``twistd -n webrtc-signal`` on 127.0.0.1 with a 1 s seal timeout, so that
    programs that seal a lobby finish quickly."""
    work = tmp_path_factory.mktemp("server")
    port = free_port()
    log = work / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(BIN / "twistd"), "-n", "--pidfile=", "webrtc-signal",
             "--port", f"tcp:{port}:interface=127.0.0.1", "--seal-timeout", "1", "--no-demo"],
            cwd=work, env=environment(), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_listening(port, server, log)
        yield f"ws://127.0.0.1:{port}"
    finally:
        # twistd ends itself with the signal it got, as its parent should see.
        assert stop(server) == -signal.SIGTERM, log.read_text()


def needs_what_it_imports(block: Block) -> None:
    # The same condition as the rtc tests: without aiortc, skip and say so.
    if "webrtc_signal.rtc" in block.text and importlib.util.find_spec("aiortc") is None:
        pytest.skip("aiortc is not installed: pip install 'webrtc-signal[rtc]'")


@pytest.mark.parametrize("block", by_place(python_blocks("run")))
def test_program_runs_to_its_end(
    block: Block, server_url: str, tmp_path: Path, ice_log: IceLog
) -> None:
    needs_what_it_imports(block)
    program = tmp_path / "program.py"
    program.write_text(block.text)
    try:
        ran = subprocess.run(
            [sys.executable, str(program)],
            cwd=tmp_path,
            env=environment(WEBRTC_SIGNAL_URL=server_url),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as slow:
        pytest.fail(f"{block.where} did not finish in {RUN_TIMEOUT} s; output:\n{slow.output}")
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, f"{block.where} exited with {ran.returncode}:\n{output}"
    if "expect" in block.attributes:
        assert block.attributes["expect"] in output, output
    if "RtcPeer" in block.text:  # its peers connected, on 127.0.0.1 only
        ice_log.assert_loopback(at_least=1)


class Lines:
    """A child's output lines, read on a thread so that waits can be bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail(f"no {text!r} within {timeout} s; output:\n{''.join(self.seen)}")
            self.seen.append(line)

    def rest(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


@pytest.mark.parametrize("block", by_place(python_blocks("server")))
def test_server_program_serves_a_lobby_and_stops_on_sigterm(block: Block, tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(block.text)
    port = free_port()
    log = tmp_path / "program.log"
    with log.open("wb") as output:
        served = subprocess.Popen(
            [sys.executable, str(program)],
            cwd=tmp_path,
            env=environment(LISTEN=f"tcp:{port}:interface=127.0.0.1"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    client: subprocess.Popen[str] | None = None
    try:
        wait_until_listening(port, served, log)
        url = f"ws://127.0.0.1:{port}{block.attributes.get('path', '')}"
        client = subprocess.Popen(
            [str(BIN / "webrtc-signal-client"), url, "--no-commands"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = Lines(client)
        lines.wait_for("joined lobby", START_TIMEOUT)
        assert stop(served) == 0, log.read_text()
        # The program started a log observer: the server's events are in its output.
        assert "[webrtc_signal#info]" in log.read_text(), log.read_text()
        # Stopping closed the client with 1001, as the docs promise.
        assert client.wait(STOP_TIMEOUT) == 5, lines.rest(1)
        assert "1001 Server shutting down" in lines.rest(1)
    finally:
        for process in (client, served):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


# -- shell commands -------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^\s*(?:(?P<short>-\w)(?:,\s*|\s+|=|$))?(?P<long>--[\w-]+)?")
_SHELL_OPERATORS = {"&", "&&", "|", "||", ";", ">", ">>", "<", "2>&1"}
_COMMANDS = {"twistd", "webrtc-signal-client", "webrtc-signal-peer"}


@functools.cache
def help_of(*command: str) -> str:
    shown = subprocess.run(
        [str(BIN / command[0]), *command[1:], "--help"],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return shown.stdout


@functools.cache
def options_of(*command: str) -> frozenset[str]:
    """Every option ``command --help`` lists, short and long."""
    found = set()
    for line in help_of(*command).splitlines():
        match = _OPTION_LINE.match(line)
        if match is not None:
            found |= {name for name in match.group("short", "long") if name}
    return frozenset(found)


def used_options(arguments: list[str]) -> list[str]:
    """The options in ``arguments``: ``--name`` (without ``=value``) and each
    letter of ``-abc``."""
    used = []
    for argument in arguments:
        if argument.startswith("--") and len(argument) > 2:
            used.append(argument.split("=", 1)[0])
        elif re.fullmatch(r"-[A-Za-z]+", argument):
            used += [f"-{letter}" for letter in argument[1:]]
    return used


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.M))


def shell_commands() -> Iterator[tuple[Block, list[str]]]:
    """Each command line of each shell block, split as the shell would (up to
    the first operator); in a block with ``$`` prompts, only the prompted lines."""
    for block in all_blocks():
        if block.info not in SHELL_INFO:
            continue
        # A line ending in a backslash goes on on the next one, as in the shell.
        lines = block.text.replace("\\\n", " ").splitlines()
        prompted = [line[2:] for line in lines if line.startswith("$ ")]
        for line in prompted or lines:
            words = shlex.split(line, comments=True)
            cut = next((i for i, word in enumerate(words) if word in _SHELL_OPERATORS), None)
            yield block, words[:cut]


def command_problems(words: list[str]) -> list[str]:
    """What is wrong with one documented command line (nothing if it is not one
    of ours)."""
    problems = []
    if words[:1] == ["make"]:
        arguments = [word for word in words[1:] if "=" not in word]
        for target in arguments:
            if target not in makefile_targets():
                problems.append(f"make has no target {target!r}")
        settings = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        if "serve" in arguments and "ARGS" in settings:
            words = ["twistd", "-n", "webrtc-signal", *shlex.split(settings["ARGS"])]
    for index, word in enumerate(words):
        name = Path(word).name
        if name not in _COMMANDS:
            continue
        rest = words[index + 1 :]
        if name == "twistd":
            plugin = rest.index("webrtc-signal") if "webrtc-signal" in rest else len(rest)
            checks = [
                (("twistd",), rest[:plugin]),
                (("twistd", "webrtc-signal"), rest[plugin + 1 :]),
            ]
        else:
            checks = [((name,), rest)]
        for command, arguments in checks:
            known = options_of(*command)
            problems += [
                f"{' '.join(command)} has no option {option}"
                for option in used_options(arguments)
                if option not in known
            ]
        break
    return problems


def test_documented_commands_use_options_that_exist() -> None:
    problems = []
    checked = 0
    for block, words in shell_commands():
        found = command_problems(words)
        checked += any(Path(word).name in _COMMANDS or word == "make" for word in words)
        problems += [f"{block.where}: {' '.join(words)}: {problem}" for problem in found]
    assert problems == []
    assert checked >= 10  # the check saw the documented commands


def test_the_command_check_catches_a_wrong_option() -> None:
    assert command_problems(["twistd", "-n", "webrtc-signal", "--seal-timout", "3"]) == [
        "twistd webrtc-signal has no option --seal-timout"
    ]
    assert command_problems(["twistd", "--nodemon", "webrtc-signal"]) == [
        "twistd has no option --nodemon"
    ]
    assert command_problems(["make", "serve", "ARGS=--port tcp:1 --max-peer 3"]) == [
        "twistd webrtc-signal has no option --max-peer"
    ]
    assert command_problems(["make", "serv"]) == ["make has no target 'serv'"]
    assert command_problems(["webrtc-signal-peer", "ws://h", "--sends", "x"]) == [
        "webrtc-signal-peer has no option --sends"
    ]
    assert command_problems(["ls", "--nonsense"]) == []


def test_readme_options_table_is_the_plugins_options_with_their_defaults() -> None:
    """The README lists every option of ``twistd webrtc-signal`` (beyond
    --help and --version), nothing else, each with the default --help shows."""
    table = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        row = re.match(r"^\| `(--[\w-]+)`[^|]*\| ([^|]*) \|", line)
        if row is not None:
            table[row[1]] = row[2].strip().strip("`")
    # The help text: each option's description, joined across wrapped lines.
    described: dict[str, str] = {}
    current = None
    for line in help_of("twistd", "webrtc-signal").splitlines():
        match = _OPTION_LINE.match(line)
        if match is not None and match["long"]:
            current = match["long"]
            described[current] = ""
        if current is not None:
            described[current] += " " + line.strip()
    assert set(table) == set(described) - {"--help", "--version"}
    for option, text in described.items():
        default = re.search(r"\[default: ([^\]]+)\]", " ".join(text.split()))
        if default is not None and option in table:
            assert table[option] == default[1], option
