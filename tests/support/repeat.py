"""``make test-repeat N=10``: run a command (the suite) N times in a row with
two busy loops beside it, one pinned to each of the first two cores, as a
loaded CI machine or a colleague's build would; stop at the first failure.

Prints a line per run, then "N of N green", or the failing run's summary
(its whole output is in test-artifacts/repeat/run-K.log). Exits 0 only if
every run was green."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "test-artifacts" / "repeat"
BUSY_LOOP = ["sh", "-c", "while :; do :; done"]
SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed|error).*) in ([\d.]+)s.*=+$", re.M)


def busy_loops(cores: int = 2) -> list[subprocess.Popen[bytes]]:
    """One busy loop pinned to each of the first ``cores`` cores (unpinned
    where taskset is missing)."""
    taskset = shutil.which("taskset")
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    loops = []
    for index in range(cores):
        pin = [taskset, "-c", str(available[index])] if taskset and index < len(available) else []
        loops.append(subprocess.Popen([*pin, *BUSY_LOOP]))
    return loops


def failing_part(output: str) -> str:
    """What to show of a failed run: pytest's short summary (or its end)."""
    start = output.rfind("short test summary info")
    if start >= 0:
        return output[output.rfind("\n", 0, start) + 1 :]
    return "\n".join(output.splitlines()[-40:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="how many runs (default 10)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    arguments = parser.parse_args(argv)
    command = [word for word in arguments.command if word != "--"] or ["make", "suite"]
    if arguments.runs < 1:
        parser.error("--runs must be at least 1")
    LOGS.mkdir(parents=True, exist_ok=True)
    loops = busy_loops()
    try:
        for run in range(1, arguments.runs + 1):
            started = time.monotonic()
            log = LOGS / f"run-{run}.log"
            with log.open("w") as output:
                status = subprocess.run(
                    command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False
                ).returncode
            text = log.read_text(errors="replace")
            found = SUMMARY.findall(text)
            summary = f"{found[-1][0]}, pytest {found[-1][1]} s" if found else "no pytest summary"
            took = time.monotonic() - started
            if status != 0:
                print(f"run {run} of {arguments.runs}: FAILED (exit {status}) after {took:.0f} s")
                print(failing_part(text))
                print(f"whole output: {log.relative_to(ROOT)}")
                print(f"{run - 1} of {arguments.runs} green before the failure")
                return 1
            print(f"run {run} of {arguments.runs}: green in {took:.0f} s ({summary})", flush=True)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    print(f"{arguments.runs} of {arguments.runs} green")
    return 0


if __name__ == "__main__":
    sys.exit(main())
