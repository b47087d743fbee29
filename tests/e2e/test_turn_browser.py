"""WebRTC through a real coturn with credentials from GET /ice-servers: two
Chromium pages that may use relay candidates only open a data channel and
chat, every selected pair is relay (getStats), and coturn's log shows the
allocations; then a page and a relay-only Python peer (aiortc) do the same.
The browser steps are in tests/e2e/turn.e2e.mjs. Every pair is on 127.0.0.1,
coturn's relay address (tests/e2e/loopback.mjs, tests/support/loopback_ice)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints

from webrtc_signal import SignalingConfig, SignalingService

from ..conftest import _reactor
from ..support.coturn import Coturn, coturn_fixture  # noqa: F401 (the fixture coturn)
from ..support.loopback_ice import IceLog
from ..support.wsclient import with_timeout
from .test_demo_browser import ARTIFACTS, loopback_pairs, run_node

ALLOCATED = re.compile(r"user <(\d+):([^>]+)>: incoming packet ALLOCATE processed, success")


@pytest_twisted.async_yield_fixture
async def turn_server(coturn: Coturn) -> AsyncIterator[str]:
    """A signaling server (real clock: coturn checks the expiry against
    the wall clock) handing out coturn's credentials. Yields the page URL."""
    config = SignalingConfig(turn_urls=(coturn.url,), turn_secret=coturn.secret, turn_ttl=600)
    endpoint = endpoints.TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1")
    service = SignalingService(config, endpoint)
    service.startService()
    try:
        port = (await with_timeout(service.listening, 5)).getHost().port
        yield f"http://127.0.0.1:{port}/"
    finally:
        await with_timeout(service.stopService(), 10)


def allocations(coturn: Coturn) -> list[tuple[str, str]]:
    return ALLOCATED.findall(coturn.log())


@pytest_twisted.ensureDeferred
async def test_two_pages_chat_through_turn_only(turn_server: str, coturn: Coturn) -> None:
    run = run_node("turn.e2e.mjs", turn_server, str(ARTIFACTS), "pages")
    assert await run.finished(90) == 0, run.output
    assert "[turn] passed" in run.output
    assert re.findall(r"^PAIR (\w+) (\w+)$", run.output, re.M) == [("relay", "relay")] * 2
    loopback_pairs(run.output, at_least=2)
    # One allocation per page at least, each with its own minted username.
    users = {user for _, user in allocations(coturn)}
    assert len(users) >= 2, coturn.log()[-2000:]


@pytest_twisted.ensureDeferred
async def test_a_page_and_a_relay_only_python_peer_chat_through_turn(
    turn_server: str, coturn: Coturn, ice_log: IceLog
) -> None:
    pytest.importorskip(
        "aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'"
    )
    from webrtc_signal.rtc import RtcPeer

    received: asyncio.Queue[str] = asyncio.Queue()
    pairs: list[tuple[str, str]] = []

    def opened(peer_id: int) -> None:
        # aiortc's side: the pair its ICE agent nominated, read while it is up.
        pairs.append(_nominated_types(peer._links[peer_id].connection))
        peer.send(peer_id, "hello through TURN from python")

    peer = RtcPeer(
        turn_server.replace("http://", "ws://"),
        ice_transport_policy="relay",
        on_message=lambda sender, data: received.put_nowait(str(data)),
        on_peer_open=opened,
    )
    try:
        joined = await defer.Deferred.fromFuture(asyncio.ensure_future(peer.join()))
        assert peer.ice_problem is None
        assert [server.urls for server in peer.ice_servers] == [[coturn.url]]
        run = run_node("turn.e2e.mjs", turn_server, str(ARTIFACTS), "python", joined.lobby)
        text = await with_timeout(
            defer.Deferred.fromFuture(asyncio.ensure_future(received.get())), 60
        )
        assert text == "hello through TURN from the browser"
        assert await run.finished(60) == 0, run.output
        assert re.findall(r"^PAIR (\w+) (\w+)$", run.output, re.M) == [("relay", "relay")]
        assert pairs == [("relay", "relay")]
        loopback_pairs(run.output, at_least=1)
        assert [entry["types"] for entry in ice_log.assert_loopback(at_least=1)] == [
            ["relay", "relay"]
        ]
        # The Python peer's own allocation, under the username it fetched.
        python_user = peer.ice_servers[0].username
        assert python_user is not None
        assert tuple(python_user.split(":", 1)) in allocations(coturn)
    finally:
        await with_timeout(defer.Deferred.fromFuture(asyncio.ensure_future(peer.close())), 20)


def _nominated_types(connection: Any) -> tuple[str, str]:
    # aiortc does not report the selected pair; aioice's agent holds it.
    agent = connection.sctp.transport.transport.iceGatherer._connection
    (pair,) = agent._nominated.values()
    return pair.local_candidate.type, pair.remote_candidate.type
