"""File descriptors under twistd: the soft limit raised to fit --max-peers,
a warning naming both limits when it cannot be, a clean 503 for connections
beyond what the limit allows, and the default port's listen backlog."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import pytest_twisted

from webrtc_signal.app import Options
from webrtc_signal.server.fdlimit import FD_MARGIN
from webrtc_signal.server.standalone import DEFAULT_BACKLOG

from ..support.processes import Spawned, spawn
from ..support.rawws import raw_cleanup, raw_connect

__all__ = ["raw_cleanup"]  # a fixture: aborts raw clients after each test

TWISTD = Path(sys.executable).parent / "twistd"
# Sets the child's open-file limits, then becomes twistd.
LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


async def start(soft: int, hard: int, *options: str) -> tuple[Spawned, int]:
    process = spawn(
        [
            sys.executable, "-c", LIMITED, str(soft), str(hard),
            str(TWISTD), "-n", "--pidfile=", "webrtc-signal",
            "--port", "tcp:0:interface=127.0.0.1", *options,
        ]
    )  # fmt: skip
    listening = await process.wait_for_match(
        r"webrtc-signal \S+ listening on 127\.0\.0\.1 port (\d+)"
    )
    return process, int(listening.group(1))


async def stop(process: Spawned) -> None:
    if not process.ended.called:
        process.transport.signalProcess(signal.SIGTERM)
    await process.finished(15)


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs Linux /proc")
@pytest_twisted.ensureDeferred
async def test_the_soft_limit_is_raised_to_fit_max_peers() -> None:
    process, _ = await start(1024, 8192)
    try:
        assert open_file_limits(process.transport.pid) == (4096 + FD_MARGIN, 8192)
    finally:
        await stop(process)
    assert "open-file limit" not in process.output


@pytest_twisted.ensureDeferred
async def test_past_the_open_file_limit_newcomers_get_503_not_silence() -> None:
    soft = hard = FD_MARGIN + 20
    process, port = await start(soft, hard, "--max-peers", "100")
    try:
        assert f"the open-file limit is {soft} (hard limit {hard}), below" in process.output
        assert f"below the {100 + FD_MARGIN} that --max-peers 100 needs" in process.output
        statuses = [(await raw_connect(port)).status for _ in range(25)]
        # Twenty connections fit; every later one is told so, in HTTP.
        assert statuses == [101] * 20 + [503] * 5
    finally:
        await stop(process)


def test_the_default_port_listens_with_a_backlog_of_1024() -> None:
    options = Options()
    options.parseOptions([])
    assert options["endpoint"]._backlog == DEFAULT_BACKLOG == 1024
    custom = Options()
    custom.parseOptions(["--port", "tcp:0:backlog=77"])
    assert custom["endpoint"]._backlog == 77
