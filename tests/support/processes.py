"""Child processes a test talks to through the reactor (never blocking it):
their output read as it comes, every wait bounded."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import shutil
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet import defer, protocol, task

from .wsclient import with_timeout


class Spawned(protocol.ProcessProtocol):
    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.output = ""
        self.lines: defer.DeferredQueue[str] = defer.DeferredQueue()
        # The exit status, or "signal N" for a process a signal ended.
        self.ended: defer.Deferred[int | str] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        text = data.decode(errors="replace")
        self.output += text
        for line in text.splitlines():
            self.lines.put(line)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        ended = reason.value
        self.ended.callback(
            ended.exitCode if ended.exitCode is not None else f"signal {ended.signal}"
        )

    async def wait_for(self, text: str, timeout: float = 10) -> str:
        """The next line (from now on) that contains ``text``."""
        while text not in (line := await self._next_line(text, timeout)):
            pass
        return line

    async def wait_for_match(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of ``pattern`` in a line from now on."""
        while (found := re.search(pattern, await self._next_line(pattern, timeout))) is None:
            pass
        return found

    async def finished(self, timeout: float) -> int | str:
        """The exit status; kills the process and fails the test after ``timeout``."""
        try:
            return await with_timeout(self.ended, timeout)
        except defer.TimeoutError:
            self.transport.signalProcess("KILL")
            pytest.fail(f"{self.argv[:3]} did not finish in {timeout} s:\n{self.output}")

    async def _next_line(self, wanted: str, timeout: float) -> str:
        try:
            return await with_timeout(self.lines.get(), timeout)
        except defer.TimeoutError:
            pytest.fail(
                f"no line with {wanted!r} within {timeout} s; output so far:\n{self.output}"
            )


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    inherit_env: bool = True,
    path: str | None = None,
    terminal: bool = False,
    output: Path | None = None,
    handed: dict[int, int] | None = None,
) -> Spawned:
    """Start ``argv`` (``argv[0]`` is the executable's path). ``env`` adds to
    this process's environment, or replaces it with ``inherit_env=False``.
    With ``terminal``, the child runs in a session of its own on a new
    pseudo-terminal, as from a shell: ``Spawned.transport.write(b"\\x03")``
    is then a Ctrl-C that reaches its whole foreground process group.

    ``output``: the child writes stdout and stderr straight to this file
    instead of a pipe (`Spawned.output` stays empty), for a child that
    outlives tests that do not run the reactor, where a full pipe would
    block it. ``handed``: descriptors of this process the child gets, as
    ``{child's number: ours}`` (e.g. a listening socket as 3)."""
    from twisted.internet import reactor

    child = Spawned(argv)
    environment = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    descriptors: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
    with contextlib.ExitStack() as opened:
        if output is not None:
            log = opened.enter_context(output.open("ab"))
            descriptors.update({1: log.fileno(), 2: log.fileno()})
        descriptors.update(handed or {})
        reactor.spawnProcess(
            child,
            argv[0],
            list(argv),
            env=environment,
            path=path,
            usePTY=terminal,
            childFDs=None if terminal else descriptors,
        )
    return child


@dataclass(frozen=True)
class Ran:
    """What a command's ``main()`` printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def run_main(
    main: Callable[[list[str]], object], argv: Sequence[str], capsys: pytest.CaptureFixture[str]
) -> Ran:
    """A command's ``main()`` in this process, for what it says before its
    reactor would start (usage errors, --version): the same parser and the
    same exit status as the process, without a Python start-up each. Each
    command is also run as a process by at least one test."""
    capsys.readouterr()
    try:
        main(list(argv))
        status = 0
    except SystemExit as leaving:
        status = leaving.code if isinstance(leaving.code, int) else 1
    printed = capsys.readouterr()
    return Ran(status, printed.out, printed.err)


def unmeasured_environment() -> dict[str, str]:
    """This environment without coverage's settings, its start-up hook
    included, for children whose measuring would only take CPU from the tests
    beside them: the third-party tools (build, pip, twine), which run none of
    the package's code, and the benchmark's processes, which repeat code paths
    the rest of the suite measures."""
    return {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE")}


def require_program(name: str, install: str, required_by: str, what: str) -> str:
    """The path of the Debian program ``name``, or skip the test (fail it when
    the environment variable ``required_by`` is "1", as CI sets it)."""
    path = f"/usr/bin/{name}"
    found = shutil.which(name) or (path if os.access(path, os.X_OK) else None)
    if found is not None:
        return found
    missing = f"{name} is missing ({install})"
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{what} required but {missing}")
    pytest.skip(missing)


async def poll(
    ready: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    timeout: float = 20,
    process: Spawned | None = None,
    interval: float = 0.02,
) -> None:
    """Wait until ``ready()`` is true, asking every ``interval`` seconds
    through the reactor (never blocking it). Fails the test after
    ``timeout`` seconds, or as soon as ``process`` ends, naming ``what``."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while not await _value(ready()):
        if process is not None and process.ended.called:
            pytest.fail(f"{process.argv[0]} ended before {what}:\n{process.output}")
        if reactor.seconds() > deadline:
            output = f"; output so far:\n{process.output}" if process is not None else ""
            pytest.fail(f"not {what} within {timeout} s{output}")
        await task.deferLater(reactor, interval)


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


class HeldPort:
    """A port on 127.0.0.1 that this process holds open (a listening TCP
    socket, and a UDP one on the same number with ``udp``), so that nobody
    else takes it before the program meant to serve on it starts. Release
    it right before starting that program; if the program still finds it
    taken (someone bound it in that instant), start again on a new one
    (`start_on_a_held_port`)."""

    def __init__(self, udp: bool = False, numbers: Sequence[int] = ()) -> None:
        """Any free port, or with ``numbers`` the first of them that is free."""
        self.sockets: list[socket.socket] = []
        for number in numbers or [0] * 50:
            first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            try:
                first.bind(("127.0.0.1", number))
            except OSError:
                first.close()
                continue
            self.port: int = first.getsockname()[1]
            self.sockets = [first]
            if not udp:
                first.listen()
                return
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", self.port))
            except OSError:
                tcp.close()
                first.close()
                continue
            tcp.listen()
            self.sockets.append(tcp)
            return
        raise PortUnavailable(f"no port {'for UDP and TCP ' if udp else ''}free on 127.0.0.1")

    def release(self) -> int:
        """Close the holding sockets; the port number, to hand on at once."""
        for held in self.sockets:
            held.close()
        self.sockets = []
        return self.port


class PortUnavailable(Exception):
    """No port to hold: none of the numbers asked for is free."""


class PortTaken(Exception):
    """The program found its port taken: start again on another one."""


T = TypeVar("T")


async def start_on_a_held_port(
    start: Callable[[HeldPort], Awaitable[T]],
    what: str,
    udp: bool = False,
    numbers: Sequence[int] = (),
    attempts: int = 5,
) -> T:
    """``start(held)`` with a fresh `HeldPort` (see there for ``udp`` and
    ``numbers``) until it does not raise `PortTaken` (``attempts`` at most)."""
    for _ in range(attempts):
        held = HeldPort(udp=udp, numbers=numbers)
        try:
            return await start(held)
        except PortTaken:
            continue
        finally:
            held.release()
    pytest.fail(f"{what} found its port taken {attempts} times in a row")
