"""``twistd -n webrtc-signal`` in a child process, as the tests start it: on
port 0 of 127.0.0.1 (the kernel picks a free port), learning the ports it got
from its ``--port-file`` (signaling first, then ``--metrics``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from .processes import PortTaken, Spawned, poll, spawn

TWISTD = str(Path(sys.executable).parent / "twistd")
ANY_LOOPBACK_PORT = "tcp:0:interface=127.0.0.1"
# A twistd process may take a while to start on a loaded machine.
START_TIMEOUT = 30.0
# How the server's one-line refusal to start ends when its port is taken.
PORT_TAKEN = "Address already in use"

_numbers = itertools.count(1)


def parse_address(line: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 host]:port`` of a port-file line."""
    host, _, port = line.strip().rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def read_port_file(
    path: Path, process: Spawned, timeout: float = START_TIMEOUT
) -> list[tuple[str, int]]:
    """The addresses in ``path`` once ``process`` has written it (a bounded
    wait through the reactor). `PortTaken` if the process ended because its
    port was taken; any other end fails the test."""

    def written() -> bool:
        if path.exists():
            return True
        if process.ended.called:
            if PORT_TAKEN in process.output:
                raise PortTaken()
            pytest.fail(f"twistd ended before writing {path.name}:\n{process.output}")
        return False

    await poll(written, f"writing {path}", timeout=timeout)
    return [parse_address(line) for line in path.read_text().splitlines()]


def twistd_argv(
    port_file: Path,
    options: Sequence[str],
    twistd: str = TWISTD,
    twistd_options: Sequence[str] = (),
) -> list[str]:
    """The command line: twistd's own ``twistd_options``, then the plugin's
    ``options`` with ``--port`` on any loopback port unless they name one,
    and ``--port-file``."""
    port = [] if "--port" in options else ["--port", ANY_LOOPBACK_PORT]
    return [
        twistd, "-n", "--pidfile=", *twistd_options, "webrtc-signal",
        *port, "--port-file", str(port_file), *options,
    ]  # fmt: skip


async def start_twistd(
    *options: str,
    directory: Path | None = None,
    twistd: str = TWISTD,
    twistd_options: Sequence[str] = (),
    env: dict[str, str] | None = None,
    inherit_env: bool = True,
    path: str | None = None,
    output: Path | None = None,
) -> tuple[Spawned, list[int]]:
    """Start the server with ``options``; returns the process and its ports
    (signaling, then metrics) once it listens on all of them. The port file
    is in ``directory``, else in a temporary one removed once it is read.
    ``output``: a file for its output, instead of `Spawned.output`."""
    with contextlib.ExitStack() as cleanup:
        if directory is None:
            directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        port_file = directory / f"twistd-{next(_numbers)}.ports"
        process = spawn(
            twistd_argv(port_file, options, twistd, twistd_options),
            env=env,
            inherit_env=inherit_env,
            path=path,
            output=output,
        )
        try:
            addresses = await read_port_file(port_file, process)
        except BaseException:
            if not process.ended.called:
                process.transport.signalProcess("KILL")
            raise
    return process, [port for _, port in addresses]


def parse_as_twistd(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """What ``twistd -n --pidfile= webrtc-signal ARGV`` ends with when its
    command line is refused: (exit status, stderr), parsed in this process
    by twistd's own ServerOptions, the plugin's options included, with
    ``env`` as the only WEBRTC_SIGNAL_* variables. A refused command line
    never gets past parsing, so this is the path a user's twistd takes,
    without the second of a Python start-up per case (the tests that run
    the real command keep it honest)."""
    from twisted.scripts.twistd import ServerOptions

    saved = dict(os.environ)
    try:
        for name in [name for name in os.environ if name.startswith("WEBRTC_SIGNAL_")]:
            del os.environ[name]
        os.environ.update(env or {})
        try:
            ServerOptions().parseOptions(["-n", "--pidfile=", "webrtc-signal", *argv])
        except SystemExit as exited:
            # sys.exit(message): the message on stderr, status 1.
            if isinstance(exited.code, str):
                return 1, exited.code + "\n"
            return int(exited.code or 0), ""
        return 0, ""
    finally:
        os.environ.clear()
        os.environ.update(saved)
