"""pytest wiring (tests/conftest.py imports these): aiortc's ICE is pinned to
127.0.0.1 in the test process and, through the environment, in every child
process the tests start; each test is checked afterwards.

- `pytest_configure` pins the test process, and exports the pinning
  variables (`child_environment`) so that every child inherits them, with
  one ICE log for the session.
- `ice_log` (a fixture) is the log from the start of the test on, for tests
  that assert what was nominated: ``ice_log.assert_loopback(at_least=2)``.
- `_ice_stays_on_loopback` (autouse) fails any test during which an ICE
  agent, in any process, gathered or nominated an address other than
  127.0.0.1, whether or not that test looks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import IceLog, child_environment, install

_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    work = Path(tempfile.mkdtemp(prefix="webrtc-signal-ice-"))
    log = work / "ice.jsonl"
    _state.update(work=work, log=log, saved={name: os.environ.get(name) for name in _names()})
    os.environ.update(child_environment(log))
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = _state.pop("saved", None)
    if isinstance(saved, dict):
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    work = _state.pop("work", None)
    if isinstance(work, Path):
        shutil.rmtree(work, ignore_errors=True)


def _names() -> list[str]:
    return list(child_environment("-"))


def session_log() -> Path:
    log = _state["log"]
    assert isinstance(log, Path)
    return log


@pytest.fixture
def ice_log() -> IceLog:
    """What ICE agents record from now on, in this process and its children."""
    return IceLog.from_now(session_log())


@pytest.fixture(autouse=True)
def _ice_stays_on_loopback() -> Iterator[None]:
    during = IceLog.from_now(session_log())
    yield
    problems = during.problems()
    if problems:
        pytest.fail("aiortc's ICE left 127.0.0.1 during this test:\n  " + "\n  ".join(problems))
