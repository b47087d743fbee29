"""A coverage plugin (pyproject.toml: ``[tool.coverage.run] plugins``) that
measures nothing itself: it makes a measured process that ends itself with a
signal save its coverage data first.

twistd does exactly that: after a clean shutdown on SIGTERM or Ctrl-C it
restores the signal's default action and sends itself the signal again, so
that its parent sees it ended by that signal. The process then dies without
running ``atexit``, where coverage saves; and coverage's own ``sigterm =
true`` handler never runs, because the reactor installs its own SIGTERM
handler over it. Every measured process loads the plugins of the
configuration it inherits, so every twistd the tests stop saves its data.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

_ENDING = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
_kill = os.kill


def _save_then_kill(pid: int, signum: int) -> None:
    if pid == os.getpid() and signum in _ENDING and signal.getsignal(signum) == signal.SIG_DFL:
        import coverage

        measuring = coverage.Coverage.current()
        if measuring is not None:
            # Measuring must never change how the process ends: a process
            # that cannot write the data (running as nobody) ends as it would.
            with contextlib.suppress(Exception):
                measuring.stop()
                measuring.save()
    _kill(pid, signum)


def coverage_init(registry: Any, options: dict[str, Any]) -> None:
    os.kill = _save_then_kill
