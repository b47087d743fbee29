"""The default --port takes IPv4 and IPv6 clients on one socket where the
host allows it (tcp6: on ::), and falls back to IPv4 alone where it does not."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import endpoints

from webrtc_signal import SignalingService
from webrtc_signal.app import Options
from webrtc_signal.server.standalone import default_port_description

from ..conftest import _reactor
from ..support.wsclient import RecordingClient, RecordingClientFactory, with_timeout

JOIN, ID = 0, 1


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def join_over(family: type[Any], host: str, port: int) -> RecordingClient:
    """Open a WebSocket to ``host`` (an IPv4 or IPv6 literal) and JOIN."""
    bracketed = f"[{host}]" if ":" in host else host
    factory = RecordingClientFactory(f"ws://{bracketed}:{port}/")
    connecting = family(_reactor(), host, port, timeout=5).connect(factory)
    connecting.addErrback(lambda failure: factory.opened.called or factory.opened.errback(failure))
    client: RecordingClient = await with_timeout(factory.opened, 5)
    client.send(JOIN, 0, "")
    assert (await client.expect(ID))["data"] == "true"
    await client.expect(JOIN, 0)
    return client


def test_the_default_port_is_dual_stack_where_the_host_is() -> None:
    expected = "tcp6:9080" if has_ipv6_loopback() else "tcp:9080"
    assert default_port_description() == expected
    options = Options()
    options.parseOptions([])
    assert options["port"] == expected
    assert "tcp:9080 is IPv4 only" in " ".join(str(options).split())


@pytest_twisted.ensureDeferred
async def test_the_default_port_takes_ipv4_and_ipv6_clients() -> None:
    # The default on an ephemeral port. It listens on every interface, as the
    # default does; the clients connect to loopback only.
    description = default_port_description(0)
    service = SignalingService(endpoint=endpoints.serverFromString(_reactor(), description))
    service.startService()
    clients = []
    try:
        port = (await with_timeout(service.listening, 5)).getHost().port
        clients.append(await join_over(endpoints.TCP4ClientEndpoint, "127.0.0.1", port))
        if not has_ipv6_loopback():
            pytest.skip("this host has no IPv6 loopback")
        assert description.startswith("tcp6:")
        clients.append(await join_over(endpoints.TCP6ClientEndpoint, "::1", port))
    finally:
        for client in clients:
            client.dropConnection(abort=True)
        await with_timeout(service.stopService(), 5)
