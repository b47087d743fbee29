"""The browser demo end to end in real headless Chromium: three pages in a
mesh lobby, the seal, chat after signaling is gone, a client-server lobby;
and a page sharing a lobby with a Python WebRTC peer, either one hosting.

The browser steps live in tests/e2e/*.mjs (playwright-core); these tests start
a real server on a free port in this process and run those scripts against
it. Screenshots go to test-artifacts/e2e/. Without Chromium, node or
playwright-core the tests are skipped, unless WEBRTC_SIGNAL_REQUIRE_BROWSER=1
(CI sets it) makes that a failure.

WebRTC stays on 127.0.0.1: the scripts pin the pages' candidates to it
(tests/e2e/loopback.mjs) and print each connection's selected pair from
getStats() as "LOOPBACK <local> <remote>", checked here too; the Python peer
is pinned by the suite (tests/support/loopback_ice) and its nominated pairs
are checked as well.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, endpoints

from webrtc_signal import SignalingConfig, SignalingService

from ..conftest import _reactor
from ..support.certs import make_localhost_certificate
from ..support.loopback_ice import IceLog
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


def run_node(script: str, *argv: str, env: dict[str, str] | None = None) -> Spawned:
    node = shutil.which("node") or "node"
    return spawn(
        [node, str(E2E / script), *argv],
        env={"CHROMIUM": CHROMIUM, **(env or {})},
        path=str(ROOT),
    )


def loopback_pairs(output: str, at_least: int) -> list[tuple[str, str]]:
    """The browser's selected pairs, "address:port/type" per end, from a
    script's LOOPBACK lines; asserts that each end is on 127.0.0.1."""
    pairs = re.findall(r"^LOOPBACK (\S+) (\S+)$", output, re.M)
    assert len(pairs) >= at_least, output
    for ends in pairs:
        assert all(end.startswith("127.0.0.1:") for end in ends), output
    return pairs


def spki_hash(cert_pem: bytes) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: the
    base64 SHA-256 of the certificate's public key, trusting that key alone."""
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass(frozen=True)
class DemoServer:
    url: str  # the page's URL, http:// or https://
    # For https://, the SPKI hash the browser is told to trust.
    spki: str = ""


async def serve_demo(endpoint: object) -> AsyncIterator[int]:
    """A real server with real timers: the scripts wait for the seal's close
    as a user would (a second after the seal: every data channel is open by
    then, since the host seals only once it sees them all). Yields the port."""
    service = SignalingService(SignalingConfig(seal_timeout=1.0), endpoint)  # type: ignore[arg-type]
    service.startService()
    try:
        yield (await with_timeout(service.listening, 5)).getHost().port
    finally:
        await with_timeout(service.stopService(), 10)


@pytest_twisted.async_yield_fixture
async def demo_server() -> AsyncIterator[str]:
    """The demo over plain HTTP and ws://. Yields the page's URL."""
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    async for port in serve_demo(endpoint):
        yield f"http://127.0.0.1:{port}/"


@pytest_twisted.async_yield_fixture(params=["ws", "wss"])
async def any_demo_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DemoServer]:
    """The demo over ws:// and, with a certificate made for the test, over
    wss://, as browsers connect: offering ALPN h2 and http/1.1."""
    if request.param == "ws":
        endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
        async for port in serve_demo(endpoint):
            yield DemoServer(f"http://127.0.0.1:{port}/")
        return
    files = make_localhost_certificate(tmp_path / "pems")
    endpoint = endpoints.serverFromString(
        _reactor(), f"tls:{tmp_path / 'pems'}:port=0:interface=127.0.0.1"
    )
    async for port in serve_demo(endpoint):
        yield DemoServer(f"https://127.0.0.1:{port}/", spki_hash(files.cert_pem))


@pytest_twisted.ensureDeferred
async def test_demo_pages_connect_chat_seal_and_survive_signaling(
    any_demo_server: DemoServer,
) -> None:
    """Both scenarios and the layout over ws://; over wss://, where only the
    page's and the signaling's TLS differ, the mesh scenario alone."""
    scheme = any_demo_server.url.partition(":")[0]
    everything = scheme == "http"
    artifacts = ARTIFACTS / scheme
    shutil.rmtree(artifacts, ignore_errors=True)
    run = run_node(
        "demo.e2e.mjs",
        any_demo_server.url,
        str(artifacts),
        env={
            "E2E_TRUST_SPKI": any_demo_server.spki,
            "E2E_SCENARIOS": "all" if everything else "mesh",
        },
    )
    assert await run.finished(150) == 0, run.output
    assert "[e2e] all scenarios passed" in run.output
    assert "mesh: a chat message crossed the data channels after signaling closed" in run.output
    if not everything:
        loopback_pairs(run.output, at_least=6)  # three mesh links, seen from both ends
        for shot in ("1-idle", "2-mesh-host-in-lobby", "4-mesh-host-sealed"):
            assert (artifacts / f"{shot}.png").stat().st_size > 10_000
        return
    # Three mesh links and two client-server links, seen from both ends.
    loopback_pairs(run.output, at_least=10)
    assert "client-server: the host left and the others were told why" in run.output
    for shot in ("1-idle", "2-mesh-host-in-lobby", "4-mesh-host-sealed", "6-client-server-host"):
        assert (artifacts / f"{shot}.png").stat().st_size > 10_000
    # A phone and a laptop: no sideways scrolling, no peer label over two lines.
    for page in ("host", "peer"):
        for width in (360, 1280):
            assert f"layout-mesh-{page}: layout fine at {width}px wide" in run.output
            assert (artifacts / f"layout-mesh-{page}-{width}.png").stat().st_size > 10_000


@pytest.mark.parametrize("browser_role", ["joins", "hosts"])
@pytest_twisted.ensureDeferred
async def test_a_browser_page_and_a_python_peer_share_a_lobby(
    demo_server: str, browser_role: str, ice_log: IceLog
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
        loopback_pairs(run.output, at_least=1)  # the page's end
        ice_log.assert_loopback(at_least=1)  # the Python peer's end
    finally:
        await with_timeout(defer.Deferred.fromFuture(asyncio.ensure_future(peer.close())), 20)
