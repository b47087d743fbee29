"""``--port-file PATH``: where the server listens, for whoever started it.

With ``--port tcp:0`` the kernel picks a free port, so nothing outside the
process knows it; a test, an orchestrator or a supervisor that started the
server reads this file instead. Once every listening port of the process is
open, the file holds one line per port, ``host:port``, in a fixed order: the
signaling port first, then the metrics port (``--metrics``). An IPv6 host is
bracketed (``[::]:9080``); an address without a port (a UNIX socket) is
written as Twisted names it.

The file is written atomically (a temporary file in the same directory,
renamed over it), so a reader never sees half of it, and it appears only when
it is complete: a reader waits for it to exist. A clean exit removes it,
unless another process has written its own there since.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger(namespace="webrtc_signal")


def address_line(address: Any) -> str:
    """One line of the file: ``host:port``, ``[host]:port`` for IPv6."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_writable(path: str) -> str | None:
    """Why ``path`` cannot be written, or None: checked at start, so that a
    mistyped directory is a usage error rather than a file nobody finds."""
    directory = Path(path).parent
    if not directory.is_dir():
        return f"{path!r}: the directory {str(directory)!r} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{path!r}: the directory {str(directory)!r} is not writable"
    if Path(path).is_dir():
        return f"{path!r} is a directory"
    return None


class PortFileError(Exception):
    """The file could not be written while the server started."""


class PortFile:
    """Writes ``path`` once all of the ports are open; `remove` takes it away
    again if it still holds what was written."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.written: str | None = None

    def start(self, ports: Sequence[Deferred[Any]]) -> None:
        """Write the file once ``ports`` (Deferreds that fire with an
        `IListeningPort`, in the order of the file's lines) are open; their
        results pass on unchanged to their other callbacks.

        A failure to write at once (TCP ports are open by the time a service
        starts) raises `PortFileError`; a later one is logged and stops the
        process, since whoever waits for the file would wait forever."""
        copies: list[Deferred[Any]] = []
        for waiting in ports:
            copy: Deferred[Any] = Deferred()
            waiting.addCallback(_pass_to, copy)
            copies.append(copy)
        failures: list[Failure] = []
        starting = True

        def failed(failure: Failure) -> None:
            if starting:
                failures.append(failure)
                return
            from twisted.internet import reactor

            _log.critical("{problem}; stopping", problem=self._problem(failure))
            reactor.stop()

        gatherResults(copies, consumeErrors=True).addCallback(self._write).addErrback(failed)
        starting = False
        if failures:
            raise PortFileError(self._problem(failures[0]))

    def _problem(self, failure: Failure) -> str:
        error = failure.value
        if isinstance(error, OSError) and error.strerror:
            return f"cannot write --port-file {str(self.path)!r}: {error.strerror}"
        return f"cannot write --port-file {str(self.path)!r}: {error}"

    def _write(self, ports: list[IListeningPort]) -> None:
        text = "".join(address_line(port.getHost()) + "\n" for port in ports)
        handle, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as output:
                output.write(text.encode())
            # mkstemp makes it private; port numbers are no secret.
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self.written = text

    def remove(self) -> None:
        """Remove the file, unless it is gone or holds another process's
        ports (a successor started with the same ``--port-file``)."""
        if self.written is None:
            return
        try:
            current = self.path.read_bytes()
        except OSError:
            return
        if current == self.written.encode():
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.written = None


def _pass_to(result: Any, copy: Deferred[Any]) -> Any:
    copy.callback(result)
    return result
