"""The browser demo end to end in real headless Chromium: three pages in a
mesh lobby, the seal, chat after signaling is gone, a client-server lobby;
and a page sharing a lobby with a Python WebRTC peer, either one hosting.

The browser steps live in tests/e2e/*.mjs (playwright-core); these tests start
a real server on a free port in this process and run those scripts against
it. Screenshots go to test-artifacts/e2e/. Without Chromium, node or
playwright-core the tests are skipped, unless WEBRTC_SIGNAL_REQUIRE_BROWSER=1
(CI sets it) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints

from webrtc_signal import SignalingConfig, SignalingService

from ..conftest import _reactor
from ..support.processes import Spawned, spawn
from ..support.wsclient import with_timeout

ROOT = Path(__file__).parents[2]
E2E = ROOT / "tests" / "e2e"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_browser() -> None:
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (ROOT / "node_modules" / "playwright-core").is_dir():
        missing = "playwright-core is not installed (npm ci)"
    elif not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        return
    if os.environ.get("WEBRTC_SIGNAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required but {missing}")
    pytest.skip(missing)


def run_node(script: str, *argv: str) -> Spawned:
    node = shutil.which("node") or "node"
    return spawn([node, str(E2E / script), *argv], env={"CHROMIUM": CHROMIUM}, path=str(ROOT))


@pytest_twisted.async_yield_fixture
async def demo_server() -> AsyncIterator[str]:
    """A real server with real timers: the scripts wait for the seal's close
    as a user would. Yields the page's URL."""
    require_browser()
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    service = SignalingService(SignalingConfig(seal_timeout=2.0), endpoint)
    service.startService()
    try:
        port = (await with_timeout(service.listening, 5)).getHost().port
        yield f"http://127.0.0.1:{port}/"
    finally:
        await with_timeout(service.stopService(), 10)


@pytest_twisted.ensureDeferred
async def test_demo_pages_connect_chat_seal_and_survive_signaling(demo_server: str) -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    run = run_node("demo.e2e.mjs", demo_server, str(ARTIFACTS))
    assert await run.finished(150) == 0, run.output
    assert "[e2e] all scenarios passed" in run.output
    for shot in ("1-idle", "2-mesh-host-in-lobby", "4-mesh-host-sealed", "6-client-server-host"):
        assert (ARTIFACTS / f"{shot}.png").stat().st_size > 10_000


@pytest.mark.parametrize("browser_role", ["joins", "hosts"])
@pytest_twisted.ensureDeferred
async def test_a_browser_page_and_a_python_peer_share_a_lobby(
    demo_server: str, browser_role: str
) -> None:
    """The conventions line up across implementations: who offers (the larger
    id), candidates (the page trickles them, aiortc puts its own in the SDP),
    the chat channel."""
    pytest.importorskip(
        "aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'"
    )
    from webrtc_signal.rtc import RtcPeer

    received: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    peer = RtcPeer(
        demo_server.replace("http://", "ws://"),
        on_message=lambda sender, data: received.put_nowait((sender, str(data))),
        on_peer_open=lambda peer_id: peer.send(peer_id, "hello from python"),
    )
    try:
        if browser_role == "joins":
            joined = await defer.Deferred.fromFuture(asyncio.ensure_future(peer.join()))
            assert joined.peer_id == 1
            run = run_node("interop.e2e.mjs", demo_server, str(ARTIFACTS), "join", joined.lobby)
        else:
            run = run_node("interop.e2e.mjs", demo_server, str(ARTIFACTS), "host")
            lobby = (await run.wait_for_match(r"^LOBBY (\w+)$")).group(1)
            joined = await defer.Deferred.fromFuture(asyncio.ensure_future(peer.join(lobby)))
            assert joined.peer_id > 1
        sender, text = await with_timeout(
            defer.Deferred.fromFuture(asyncio.ensure_future(received.get())), 60
        )
        assert text == "hello from the browser"
        # The page's id: 1 when it hosts, else the one the server gave it.
        assert sender == 1 if browser_role == "hosts" else sender > 1
        assert await run.finished(60) == 0, run.output
    finally:
        await with_timeout(defer.Deferred.fromFuture(asyncio.ensure_future(peer.close())), 20)
