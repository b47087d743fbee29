"""aiortc's ICE pinned to 127.0.0.1 in the tests, and the proof that it was.

- In the test process, `install()` patches aioice (see
  webrtc_signal_loopback_ice for how and why).
- In child processes (``webrtc-signal-peer``, the documentation's programs),
  `child_environment()` puts this directory first on PYTHONPATH and sets
  WEBRTC_SIGNAL_TEST_LOOPBACK_ICE=1: the ``sitecustomize`` here patches
  aioice in the child when it imports it.
- Every ICE agent, in either, records what it gathered, the remote
  candidates it was given and the pairs it nominated in the log file named
  by WEBRTC_SIGNAL_TEST_ICE_LOG; `IceLog` reads a test's share of it and
  asserts that all of it is on 127.0.0.1.

tests/conftest.py wires this up for the whole suite (plugin.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .webrtc_signal_loopback_ice import (
    ENABLE,
    LOG,
    LOOPBACK,
    ContractError,
    contract_problems,
    install,
    loopback_host_addresses,
)

__all__ = [
    "DIRECTORY",
    "ENABLE",
    "LOG",
    "LOOPBACK",
    "ContractError",
    "IceLog",
    "child_environment",
    "contract_problems",
    "install",
    "loopback_host_addresses",
]

DIRECTORY = Path(__file__).resolve().parent


def child_environment(log: Path | str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that pin aiortc to 127.0.0.1 in a child process (to add
    to its environment) and make it record into ``log``."""
    inherited = (os.environ if base is None else base).get("PYTHONPATH", "")
    entries = [str(DIRECTORY), *(e for e in inherited.split(os.pathsep) if e != str(DIRECTORY))]
    return {ENABLE: "1", LOG: str(log), "PYTHONPATH": os.pathsep.join(filter(None, entries))}


@dataclass
class IceLog:
    """What ICE agents recorded in ``path`` from byte ``start`` on."""

    path: Path
    start: int = 0
    _entries: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_now(cls, path: Path) -> IceLog:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.start)
            return [json.loads(line) for line in log.read().decode().splitlines() if line]

    def nominated(self) -> list[dict[str, Any]]:
        return [entry for entry in self.entries() if entry["event"] == "nominated"]

    def problems(self) -> list[str]:
        """Every recorded address that is not 127.0.0.1 (gathered, given as a
        remote candidate, or nominated), and every error."""
        found = []
        for entry in self.entries():
            if entry["event"] == "error":
                found.append(f"process {entry['pid']}: {entry['problem']}")
            elif entry["event"] == "gathered" and entry["address"][0] != LOOPBACK:
                found.append(f"process {entry['pid']} gathered {entry['type']} {entry['address']}")
            elif entry["event"] == "remote" and entry["address"][0] != LOOPBACK:
                found.append(
                    f"process {entry['pid']} was given remote candidate "
                    f"{entry['type']} {entry['address']}"
                )
            elif entry["event"] == "nominated" and {entry["local"][0], entry["remote"][0]} != {
                LOOPBACK
            }:
                found.append(
                    f"process {entry['pid']} nominated {entry['local']} -> {entry['remote']}"
                )
        return found

    def assert_loopback(self, at_least: int = 1) -> list[dict[str, Any]]:
        """Asserts that at least ``at_least`` pairs were nominated since
        ``start``, every one with 127.0.0.1 on both ends, and that every
        candidate gathered or given was on 127.0.0.1. Returns the nominated pairs."""
        nominated = self.nominated()
        problems = self.problems()
        if len(nominated) < at_least:
            problems.append(f"{len(nominated)} pair(s) nominated, expected at least {at_least}")
        assert not problems, (
            "aiortc's ICE left 127.0.0.1:\n  "
            + "\n  ".join(problems)
            + f"\nrecorded in {self.path}:\n"
            + "\n".join(json.dumps(entry) for entry in self.entries())
        )
        return nominated
