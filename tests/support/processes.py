"""Child processes a test talks to through the reactor (never blocking it):
their output read as it comes, every wait bounded."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from typing import Any

import pytest
from twisted.internet import defer, protocol

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
) -> Spawned:
    """Start ``argv`` (``argv[0]`` is the executable's path). ``env`` adds to
    this process's environment, or replaces it with ``inherit_env=False``.
    With ``terminal``, the child runs in a session of its own on a new
    pseudo-terminal, as from a shell: ``Spawned.transport.write(b"\\x03")``
    is then a Ctrl-C that reaches its whole foreground process group."""
    from twisted.internet import reactor

    child = Spawned(argv)
    environment = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    reactor.spawnProcess(child, argv[0], list(argv), env=environment, path=path, usePTY=terminal)
    return child


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


async def until_listening(port: int, process: Spawned, name: str) -> None:
    """Wait (5 s at most) until ``process`` accepts TCP on 127.0.0.1:``port``."""
    from twisted.internet import endpoints, reactor, task

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1)
    for _ in range(100):
        if process.ended.called:
            pytest.fail(f"{name} exited at once:\n{process.output}")
        try:
            connection = await endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        except Exception:
            await task.deferLater(reactor, 0.05)
        else:
            connection.transport.loseConnection()
            return
    pytest.fail(f"{name} did not listen on 127.0.0.1:{port} within 5 s")
