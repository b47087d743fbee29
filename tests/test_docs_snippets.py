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
gets LISTEN, an endpoint description (the programs read it, defaulting to a
fixed port): Twisted's systemd: endpoint, adopting a listening socket on
127.0.0.1 that the test opened and hands over. Each runs in a subprocess of
the venv's Python with a bounded time. Shell blocks are checked more cheaply:
the options each documented command uses must be in that command's --help.
And every documented ``twistd`` server command runs, each in a fresh shell,
all at once from one folder, on port 0 of 127.0.0.1.

Only public things are used here (the documented commands, subprocesses and
files), so that moving modules inside the package does not touch this test.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from .support.certs import make_localhost_certificate
from .support.http import http_get
from .support.loopback_ice import LOG, IceLog, child_environment
from .support.processes import Spawned, poll, spawn
from .support.redis import RedisServer, redis_fixture
from .support.twistd import read_port_file, start_twistd

__all__ = ["redis_fixture"]  # the fixture redis

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


def environment(**extra: str) -> dict[str, str]:
    # aiortc's ICE pinned to 127.0.0.1, recording into the suite's ICE log
    # (tests/support/loopback_ice), and the checkout's package, whichever way
    # the venv installed it.
    pinned = child_environment(os.environ.get(LOG, os.devnull))
    path = os.pathsep.join(filter(None, [str(ROOT), pinned["PYTHONPATH"]]))
    return {**os.environ, **pinned, "PYTHONPATH": path, **extra}


@pytest_twisted.async_yield_fixture(scope="module")
async def server_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """``twistd -n webrtc-signal`` on 127.0.0.1 with a 1 s seal timeout, so that
    programs that seal a lobby finish quickly. Its output goes to a file: the
    programs run while the reactor does not, so nothing would read a pipe."""
    work = tmp_path_factory.mktemp("server")
    log = work / "server.log"
    server, (port,) = await start_twistd(
        "--seal-timeout", "1", "--no-demo",
        env=environment(), path=str(work), directory=work, output=log,
    )  # fmt: skip
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        if not server.ended.called:
            server.transport.signalProcess(signal.SIGTERM)
    # twistd ends itself with the signal it got, as its parent should see.
    assert await server.finished(STOP_TIMEOUT) == f"signal {signal.SIGTERM}", log.read_text()


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


# The listening socket a server program gets, the way systemd hands one over
# (sd_listen_fds: descriptor 3 on, LISTEN_PID naming the process that takes
# it); the programs read LISTEN as an endpoint description, and Twisted's
# systemd: endpoint adopts the socket. The shell becomes the program, so its
# pid is the one LISTEN_PID names.
HANDED_SOCKET = {
    "LISTEN": "systemd:domain=INET:name=signaling",
    "LISTEN_FDS": "1",
    "LISTEN_FDNAMES": "signaling",
}
AS_THE_SAME_PROCESS = ["/bin/sh", "-c", 'export LISTEN_PID=$$; exec "$0" "$@"']


@pytest.mark.parametrize("block", by_place(python_blocks("server")))
@pytest_twisted.ensureDeferred
async def test_server_program_serves_a_lobby_and_stops_on_sigterm(
    block: Block, tmp_path: Path
) -> None:
    program = tmp_path / "program.py"
    program.write_text(block.text)
    # The test binds the port and hands the open socket over: nobody else
    # can take it in between.
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        served = spawn(
            [*AS_THE_SAME_PROCESS, sys.executable, str(program)],
            env=environment(**HANDED_SOCKET),
            path=str(tmp_path),
            handed={3: listening.fileno()},
        )
    client: Spawned | None = None
    try:
        url = f"ws://127.0.0.1:{port}{block.attributes.get('path', '')}"
        # The connection waits in the socket's backlog while the program starts.
        client = spawn(
            [str(BIN / "webrtc-signal-client"), url, "--no-commands",
             "--timeout", str(START_TIMEOUT)]
        )  # fmt: skip
        await client.wait_for("joined lobby", timeout=START_TIMEOUT)
        served.transport.signalProcess(signal.SIGTERM)
        assert await served.finished(STOP_TIMEOUT) == 0, served.output
        # The program started a log observer: the server's events are in its output.
        assert "[webrtc_signal#info]" in served.output, served.output
        # Stopping closed the client with 1001, as the docs promise.
        assert await client.finished(STOP_TIMEOUT) == 5, client.output
        assert "1001 Server shutting down" in client.output
    finally:
        for process in (client, served):
            if process is not None and not process.ended.called:
                process.transport.signalProcess("KILL")


# -- shell commands -------------------------------------------------------------------

# An option's line is indented a little; its description's wrapped lines
# much more (and may start with another option's name).
_OPTION_LINE = re.compile(r"^ {0,8}(?:(?P<short>-\w)(?:,\s*|\s+|=|$))?(?P<long>--[\w-]+)?")
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


# -- documented servers, run side by side -----------------------------------------

# What the documented server commands point at, made real for the test: the
# files they name exist in the folder they run from, and Redis is the test's.
DOCUMENTED_PLACES = {"/etc/webrtc-signal/": "{folder}/etc/webrtc-signal/"}
DOCUMENTED_REDIS = "redis://10.0.0.5:6379/0"
_PORT_OPTIONS = {"--port", "-p", "--metrics"}


async def _healthy(port: int) -> bool:
    status, _, _ = await http_get(port, "/healthz")
    return status == 200


def on_loopback_port_zero(description: str) -> str:
    """A documented endpoint on a port the kernel picks, on loopback only:
    the test must neither race for a fixed port nor listen beyond this host."""
    description = re.sub(r"(?<=:)port=\d+", "port=0", description)
    description = re.sub(r"^((?:haproxy:)?(?:tcp6?|ssl)):\d+", r"\1:0", description)
    loopback = r"\:\:1" if re.match(r"^(haproxy:)?tcp6:", description) else "127.0.0.1"
    description = re.sub(r"(?<=:)interface=[^:]*", "", description).replace("::", ":")
    return f"{description.rstrip(':')}:interface={loopback}"


def documented_servers() -> list[tuple[str, list[str]]]:
    """Every documented ``twistd`` command line that starts a server (not
    --help, --version), once each, with where it is documented."""
    found: dict[str, str] = {}
    for block, words in shell_commands():
        if words[:1] == ["twistd"] and not {"--help", "--version"} & set(words):
            found.setdefault(shlex.join(words), block.where)
    return [(where, shlex.split(line)) for line, where in found.items()]


def as_run_here(words: list[str], folder: Path, redis_url: str, port_file: Path) -> list[str]:
    """The command with its ports moved to port 0 on loopback, its files and
    Redis made real, and --port-file added; nothing else changed."""
    text = shlex.join(words).replace(DOCUMENTED_REDIS, redis_url)
    for documented, here in DOCUMENTED_PLACES.items():
        text = text.replace(documented, here.format(folder=folder))
    words = shlex.split(text)
    changed = []
    for word, previous in zip(words, [None, *words], strict=False):
        changed.append(on_loopback_port_zero(word) if previous in _PORT_OPTIONS else word)
    plugin = changed[changed.index("webrtc-signal") + 1 :]
    if not {"--port", "-p"} & set(plugin):
        changed += ["--port", "tcp:0:interface=127.0.0.1"]
    return [*changed, "--port-file", str(port_file)]


def test_documented_endpoints_move_to_loopback_port_zero() -> None:
    assert on_loopback_port_zero("tcp:9080") == "tcp:0:interface=127.0.0.1"
    assert on_loopback_port_zero("tcp:9100:interface=127.0.0.1") == "tcp:0:interface=127.0.0.1"
    assert on_loopback_port_zero("tcp6:9080") == r"tcp6:0:interface=\:\:1"
    assert on_loopback_port_zero("haproxy:tcp:9080:interface=127.0.0.1") == (
        "haproxy:tcp:0:interface=127.0.0.1"
    )
    assert on_loopback_port_zero("ssl:9443:privateKey=key.pem:certKey=cert.pem") == (
        "ssl:0:privateKey=key.pem:certKey=cert.pem:interface=127.0.0.1"
    )
    assert on_loopback_port_zero("tls:/etc/pems:port=9443") == (
        "tls:/etc/pems:port=0:interface=127.0.0.1"
    )


@pytest_twisted.ensureDeferred
async def test_documented_servers_run_side_by_side_from_one_folder(
    redis: RedisServer,
) -> None:
    """Every documented ``twistd`` server command, each in a fresh shell, all
    at once and from one folder, as a reader pasting them would: each starts
    and serves (none is refused because another left ./twistd.pid there) and
    stops cleanly on SIGTERM. Only the ports (to port 0 on loopback) and the
    machine-specific places (files under /etc, the Redis address) differ."""
    servers = documented_servers()
    assert len(servers) >= 10  # the documentation's commands were found
    as_root = os.geteuid() == 0
    # Under --uid the server runs as nobody, who must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="webrtc-signal-docs-"))
    os.chmod(folder, 0o777)
    make_localhost_certificate(folder)  # key.pem, cert.pem
    make_localhost_certificate(folder / "etc" / "webrtc-signal" / "pems")
    make_localhost_certificate(folder / "pems")
    etc = folder / "etc" / "webrtc-signal"
    for secret in (folder / "secret", etc / "turn-secret", etc / "admin-token", etc / "secret"):
        secret.write_text("a long random secret\n")
    # A fresh shell's: nothing of the suite's (its coverage measurement
    # included: fifteen servers starting at once are costly enough).
    shell_environment = {
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(folder),
        "LANG": "C.UTF-8",
    }
    running: list[tuple[str, Spawned, Path]] = []
    try:
        for number, (where, words) in enumerate(servers):
            if "--uid" in words and not as_root:
                continue  # switching users needs root
            port_file = folder / f"ports-{number}"
            command = as_run_here(words, folder, redis.url, port_file)
            # exec: the shell becomes the command, so its signals reach twistd.
            shell = spawn(
                ["/bin/bash", "-c", f"exec {shlex.join(command)}"],
                env=shell_environment,
                inherit_env=False,
                path=str(folder),
            )
            running.append((where, shell, port_file))
        ports = [
            await read_port_file(port_file, shell, timeout=120) for _, shell, port_file in running
        ]
        for (where, shell, _), addresses in zip(running, ports, strict=True):
            plain = "haproxy:" not in shell.argv[-1] and not re.search(
                r" (ssl|tls):", shell.argv[-1]
            )
            if plain:
                # A cluster node is healthy once its bus reaches Redis (503
                # "degraded" until then).
                await poll(
                    functools.partial(_healthy, addresses[0][1]),
                    f"{where}: /healthz answering 200",
                    timeout=60,
                    process=shell,
                    interval=0.1,
                )
    finally:
        daemon_pidfile = folder / "twistd.pid"
        if daemon_pidfile.exists():
            os.kill(int(daemon_pidfile.read_text()), signal.SIGTERM)
        for _, shell, _ in running:
            if not shell.ended.called:
                shell.transport.signalProcess(signal.SIGTERM)
    for where, shell, _ in running:
        daemonized = "-n" not in shell.argv[-1].split() and "--nodaemon" not in shell.argv[-1]
        ended = await shell.finished(STOP_TIMEOUT)
        # A daemon's launcher exits 0; a foreground twistd ends with the signal.
        assert ended == (0 if daemonized else f"signal {signal.SIGTERM}"), (where, shell.output)
        assert "Another twistd server is running" not in shell.output, where
        assert "Traceback" not in shell.output, (where, shell.output)
    # The daemon removes its pidfile as it stops.
    await poll(lambda: not (folder / "twistd.pid").exists(), "the daemon gone", timeout=30)
    shutil.rmtree(folder)
