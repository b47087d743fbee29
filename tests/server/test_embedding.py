"""The embedding example: a twisted.web Site with a page at / and signaling at
/signal, in the game's own service tree, sharing the reactor."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.application.service import MultiService
from twisted.internet import defer, endpoints, reactor
from twisted.internet.error import CannotListenError
from twisted.web.client import Agent, readBody

from webrtc_signal import SignalingService

from ..support.wsclient import connect, with_timeout

EXAMPLE = Path(__file__).parents[2] / "examples" / "embed_in_site.py"
JOIN, ID, PEER_CONNECT, OFFER = 0, 1, 2, 4


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("embed_in_site", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingEndpoint:
    """Listens like the wrapped endpoint and remembers the port it got."""

    def __init__(self) -> None:
        self.inner = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        self.port: defer.Deferred[int] = defer.Deferred()

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        listening = self.inner.listen(factory)
        listening.addCallback(self._got)
        return listening

    def _got(self, port: Any) -> Any:
        self.port.callback(port.getHost().port)
        return port


# Twisted's own Agent response transport triggers this inside readBody.
@pytest.mark.filterwarnings("ignore:Using readBody with a transport")
@pytest_twisted.ensureDeferred
async def test_site_serves_its_page_and_signaling_side_by_side() -> None:
    example = load_example()
    endpoint = RecordingEndpoint()
    game = example.make_game_server(endpoint)
    game.startService()
    try:
        port = await with_timeout(endpoint.port, 5)

        response = await with_timeout(
            Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}/".encode()), 5
        )
        assert response.code == 200
        assert await readBody(response) == example.GAME_PAGE

        host = await connect(f"ws://127.0.0.1:{port}/signal")
        host.send(JOIN, 0, "")
        await host.expect(ID, 1, "true")
        lobby = (await host.expect(JOIN, 0))["data"]
        guest = await connect(f"ws://127.0.0.1:{port}/signal")
        guest.send(JOIN, 0, lobby)
        guest_id = (await guest.expect(ID))["id"]
        await guest.expect(PEER_CONNECT, 1)
        await guest.expect(JOIN, 0, lobby)
        await host.expect(PEER_CONNECT, guest_id)
        guest.send(OFFER, 1, "sdp through the game's site")
        await host.expect(OFFER, guest_id, "sdp through the game's site")

        signaling = game.getServiceNamed("webrtc-signal")
        assert signaling.config.seal_timeout == 30.0
    finally:
        stopped = game.stopService()
    # Stopping the game's tree closes the signaling clients with 1001.
    assert await host.wait_closed() == (1001, "Server shutting down")
    assert await guest.wait_closed() == (1001, "Server shutting down")
    await with_timeout(stopped, 5)


class CountingEndpoint:
    """Listens on a fresh port of 127.0.0.1 each time, and counts."""

    def __init__(self) -> None:
        self.listens = 0

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        self.listens += 1
        inner = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        return inner.listen(factory)


@pytest_twisted.ensureDeferred
async def test_the_port_opens_in_privileged_start_and_only_once() -> None:
    """twistd calls privilegedStartService (as root) before startService: the
    port opens in the first, once; `listening` may be taken before either."""
    endpoint = CountingEndpoint()
    tree = MultiService()
    signaling = SignalingService(endpoint=endpoint)
    signaling.setServiceParent(tree)
    listening = signaling.listening
    tree.privilegedStartService()
    assert endpoint.listens == 1
    port = await with_timeout(listening, 5)
    assert port is signaling.port
    tree.startService()
    assert endpoint.listens == 1
    await with_timeout(tree.stopService(), 5)
    # Started again (startService alone, as an embedder may): a new port.
    signaling.startService()
    assert endpoint.listens == 2
    assert await with_timeout(signaling.listening, 5) is signaling.port is not port
    await with_timeout(signaling.stopService(), 5)


@pytest_twisted.ensureDeferred
async def test_a_port_in_use_is_raised_from_start() -> None:
    first = SignalingService(
        endpoint=endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    )
    first.startService()
    port = (await with_timeout(first.listening, 5)).getHost().port
    try:
        second = SignalingService(
            endpoint=endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
        )
        with pytest.raises(CannotListenError):
            second.privilegedStartService()
        assert not second.running
    finally:
        await with_timeout(first.stopService(), 5)
