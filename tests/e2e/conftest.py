"""Every browser test needs node, playwright-core and Chromium: without them
the test is skipped, saying what is missing (a failure with
WEBRTC_SIGNAL_REQUIRE_BROWSER=1, as CI sets it). The check is a plain
fixture that runs before any other, so that a skip happens before a
coturn, a Redis or a server has started, and never from inside an async
fixture, where pytest-twisted turns it into an error."""

from __future__ import annotations

import pytest

from .test_demo_browser import require_browser


@pytest.fixture(autouse=True)
def _browser_present() -> None:
    require_browser()
