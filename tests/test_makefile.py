"""The two commands of a fresh clone, `make serve` and `make test`: what they
install, and `make serve` stopped with Ctrl-C from a terminal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from .support.processes import spawn
from .support.wsclient import connect

ROOT = Path(__file__).parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def dry_run(target: str, venv: Path) -> str:
    """The commands `make <target>` would run for a clone without a venv."""
    result = subprocess.run(
        [str(MAKE), "-C", str(ROOT), "-n", target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_make_serve_installs_only_what_serving_needs(tmp_path: Path) -> None:
    commands = dry_run("serve", tmp_path / "venv")
    assert "pip install --quiet -e .\n" in commands
    assert "[test" not in commands and "rtc]" not in commands
    assert "twistd --pidfile= -n webrtc-signal" in commands


def test_make_test_installs_the_test_tools_too(tmp_path: Path) -> None:
    commands = dry_run("test", tmp_path / "venv")
    assert "pip install --quiet -e '.[test,rtc]'" in commands


@pytest_twisted.ensureDeferred
async def test_ctrl_c_stops_make_serve_without_an_interrupt_message() -> None:
    """Ctrl-C in the terminal reaches make and the server; the server shuts
    down cleanly and make says nothing about an interrupt."""
    venv = Path(sys.executable).parent.parent
    process = spawn(
        [
            str(MAKE), "-C", str(ROOT), "--no-print-directory",
            # This checkout's venv is installed already: do not touch it.
            "-o", f"{venv}/.installed-serve", f"VENV={venv}", "serve",
            "ARGS=--port tcp:0:interface=127.0.0.1",
        ],
        terminal=True,
    )  # fmt: skip
    try:
        listening = await process.wait_for_match(r"listening on 127\.0\.0\.1 port (\d+)")
        client = await connect(f"ws://127.0.0.1:{listening.group(1)}")
    except BaseException:
        process.transport.signalProcess("KILL")
        raise
    process.transport.write(b"\x03")  # Ctrl-C
    assert await client.wait_closed(10) == (1001, "Server shutting down")
    # make, too, ends by the SIGINT, as a shell expects of an interrupted command.
    assert await process.finished(15) == "signal 2", process.output
    assert "Server Shut Down." in process.output
    assert "Interrupt" not in process.output
    assert "make: ***" not in process.output
