"""Quick match and the open-lobbies panel of the browser demo, end to end in
real headless Chromium: two pages meeting through quick-match while a third
sees their listed lobby leave its list when it seals, and a page joining a
listed lobby (with an HTML title, shown as text) with its Join button.

The browser steps are tests/e2e/lobbies.e2e.mjs; skipped without Chromium,
node or playwright-core unless WEBRTC_SIGNAL_REQUIRE_BROWSER=1 (see
test_demo_browser).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest_twisted
from twisted.internet import endpoints

from webrtc_signal import SignalingConfig, SignalingService

from ..conftest import _reactor
from ..support.wsclient import with_timeout
from .test_demo_browser import ARTIFACTS, loopback_pairs, require_browser, run_node


@pytest_twisted.async_yield_fixture
async def lobby_demo() -> AsyncIterator[str]:
    """The demo on real timers. A quick-match lobby seals the moment it
    fills, before its players have traded offers: the seal timeout leaves
    them time to (15 s; the default is 10)."""
    require_browser()
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    service = SignalingService(SignalingConfig(seal_timeout=15.0), endpoint)
    service.startService()
    try:
        port = (await with_timeout(service.listening, 5)).getHost().port
        yield f"http://127.0.0.1:{port}/"
    finally:
        await with_timeout(service.stopService(), 10)


@pytest_twisted.ensureDeferred
async def test_quick_match_and_the_open_lobbies_panel(lobby_demo: str) -> None:
    artifacts = ARTIFACTS / "lobbies"
    shutil.rmtree(artifacts, ignore_errors=True)
    run = run_node("lobbies.e2e.mjs", lobby_demo, str(artifacts))
    assert await run.finished(150) == 0, run.output
    assert "[lobbies] all scenarios passed" in run.output
    assert "observer no longer lists" in run.output
    assert "list-observer no longer lists" in run.output
    # Two links (a quick match, a join from the list), seen from both ends.
    loopback_pairs(run.output, at_least=4)
    for shot in ("quick-1-observer-lists", "quick-2-observer-unlisted", "list-2-observer-narrow"):
        assert (artifacts / f"{shot}.png").stat().st_size > 10_000
