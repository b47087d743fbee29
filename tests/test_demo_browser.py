"""The browser demo end to end in real headless Chromium: three pages in a
mesh lobby, the seal, chat after signaling is gone, a client-server lobby.

The steps live in tests/e2e/demo.e2e.mjs (playwright-core); this test starts a
real server on a free port in this process and runs that script against it.
Screenshots go to test-artifacts/e2e/. Without Chromium, node or
playwright-core the test is skipped, unless WEBRTC_SIGNAL_REQUIRE_BROWSER=1
(CI sets it) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol, reactor

from webrtc_signal import SignalingConfig, SignalingService

from .wsclient import with_timeout

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "tests" / "e2e" / "demo.e2e.mjs"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (npm ci)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


class NodeRun(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.output = ""
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode(errors="replace")

    errReceived = outReceived

    def processEnded(self, reason) -> None:  # type: ignore[no-untyped-def]
        self.ended.callback(reason.value.exitCode)


@pytest_twisted.ensureDeferred
async def test_demo_pages_connect_chat_seal_and_survive_signaling() -> None:
    reason = missing()
    if reason is not None:
        if os.environ.get("WEBRTC_SIGNAL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {reason}")
        pytest.skip(reason)

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    # Real timers here: the script waits for the seal's close like a user would.
    config = SignalingConfig(seal_timeout=2.0)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    service = SignalingService(config, endpoint)
    service.startService()
    try:
        port = (await with_timeout(service.listening, 5)).getHost().port
        run = NodeRun()
        process = reactor.spawnProcess(
            run,
            shutil.which("node") or "node",
            ["node", str(SCRIPT), f"http://127.0.0.1:{port}/", str(ARTIFACTS)],
            env={**os.environ, "CHROMIUM": CHROMIUM},
            path=str(ROOT),
        )
        try:
            code = await with_timeout(run.ended, 150)
        except defer.TimeoutError:
            process.signalProcess("KILL")
            pytest.fail(f"the browser script did not finish in 150 s:\n{run.output}")
        assert code == 0, run.output
        assert "[e2e] all scenarios passed" in run.output
        for shot in (
            "1-idle",
            "2-mesh-host-in-lobby",
            "4-mesh-host-sealed",
            "6-client-server-host",
        ):
            assert (ARTIFACTS / f"{shot}.png").stat().st_size > 10_000
    finally:
        await with_timeout(service.stopService(), 10)
