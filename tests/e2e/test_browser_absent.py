"""Without a browser the browser tests skip, saying why, and none errors
(checked by running pytest on them with a Chromium path that does not
exist); CI (WEBRTC_SIGNAL_REQUIRE_BROWSER=1) fails them instead."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import pytest_twisted

from ..support.processes import Spawned, spawn
from . import test_demo_browser

ROOT = Path(__file__).parents[2]
# Every module that drives Chromium (all but this one).
BROWSER_TESTS = sorted(
    str(path.relative_to(ROOT))
    for path in (ROOT / "tests" / "e2e").glob("test_*browser*.py")
    if path.name != Path(__file__).name
)


@pytest.fixture(autouse=True)
def _browser_present() -> None:
    """This module needs no browser: it replaces the package's check."""


def pytest_run(**env: str) -> Spawned:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("WEBRTC_SIGNAL_REQUIRE")}
    return spawn(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *BROWSER_TESTS],
        env={**inherited, "CHROMIUM": "/nonexistent/chromium", **env},
        inherit_env=False,
        path=str(ROOT),
    )


@pytest_twisted.ensureDeferred
async def test_missing_chromium_skips_every_browser_test_saying_why() -> None:
    skipping = pytest_run()
    assert await skipping.finished(180) == 0, skipping.output
    summary = skipping.output.strip().splitlines()[-1]
    counted = re.fullmatch(r"(\d+) skipped in .*", summary)
    assert counted is not None and int(counted[1]) >= 7, skipping.output
    assert "/nonexistent/chromium is missing (apt-get install chromium)" in skipping.output


def test_ci_fails_a_browser_test_without_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBRTC_SIGNAL_REQUIRE_BROWSER", "1")
    monkeypatch.setattr(test_demo_browser, "CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception) as failed:
        test_demo_browser.require_browser()
    assert str(failed.value) == (
        "browser test required but /nonexistent/chromium is missing (apt-get install chromium)"
    )


def test_a_missing_playwright_core_skips_saying_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A checkout without node_modules (no npm ci yet): a skip naming it."""
    monkeypatch.delenv("WEBRTC_SIGNAL_REQUIRE_BROWSER", raising=False)
    monkeypatch.setattr(test_demo_browser, "ROOT", tmp_path)
    with pytest.raises(pytest.skip.Exception) as skipped:
        test_demo_browser.require_browser()
    assert str(skipped.value) == "playwright-core is not installed (npm ci)"


def test_every_browser_module_is_in_the_check() -> None:
    assert "tests/e2e/test_lobbies_browser.py" in BROWSER_TESTS
    assert len(BROWSER_TESTS) >= 4
