"""Who may connect, and as whom: the Origin allow-list, X-Forwarded-For from
trusted proxies only, and Twisted's ``haproxy:`` endpoint (PROXY protocol v1
and v2, headers written here by hand), all over real sockets."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import endpoints, reactor
from twisted.logger import globalLogPublisher

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import raw_cleanup, raw_connect

__all__ = ["raw_cleanup"]  # a fixture: aborts raw clients after each test

JOIN, ID = 0, 1
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def addresses(server: RunningServer) -> list[str]:
    return sorted(c.client_address() for c in server.engine.connections)


@pytest.fixture
def connected_from() -> Iterator[list[str]]:
    """The address of every "peer N connected from ADDRESS" log line."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("event_kind") == "connected":
            seen.append(event["address"])

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


# -- Origin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin_header", "status"),
    [
        ("", 101),  # native clients send none: always allowed
        ("Origin: https://game.example.com\r\n", 101),
        ("Origin: https://eu.play.example.com\r\n", 101),
        ("Origin: http://localhost:8080\r\n", 101),
        ("Origin: https://example.com\r\n", 403),
        ("Origin: https://evil.test\r\n", 403),
        ("Origin: http://game.example.com\r\n", 403),
        ("Origin: null\r\n", 403),
    ],
)
@pytest_twisted.ensureDeferred
async def test_the_origin_allow_list(
    make_server: ServerMaker, origin_header: str, status: int
) -> None:
    server = await make_server(
        SignalingConfig(allowed_origins=("https://*.example.com", "http://localhost:8080"))
    )
    client = await raw_connect(port_of(server), headers=origin_header)
    assert client.status == status
    if status == 403:
        assert "Origin not allowed" in client.response_head
        await client.wait_lost()
        assert server.engine.connections == {}


@pytest_twisted.ensureDeferred
async def test_without_an_allow_list_any_origin_connects(server: RunningServer) -> None:
    client = await raw_connect(port_of(server), headers="Origin: https://anyone.test\r\n")
    assert client.status == 101


# -- X-Forwarded-For ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_forwarded_for_counts_only_from_trusted_proxies(
    make_server: ServerMaker, connected_from: list[str]
) -> None:
    server = await make_server(
        SignalingConfig(trust_forwarded_for=("127.0.0.2/32",), max_peers_per_address=2)
    )
    port = port_of(server)

    async def via_proxy(client_address: str) -> int | None:
        header = f"X-Forwarded-For: 203.0.113.66, {client_address}\r\n"
        client = await raw_connect(port, source="127.0.0.2", headers=header)
        if client.status == 101:
            client.send_json(JOIN, 0, "")
            await client.next_json()
        return client.status

    # Behind the proxy, each real client has its own allowance...
    assert [await via_proxy("198.51.100.1") for _ in range(3)] == [101, 101, 429]
    assert await via_proxy("198.51.100.2") == 101
    # ...and its real address in the logs.
    assert connected_from == ["198.51.100.1", "198.51.100.1", "198.51.100.2"]
    assert addresses(server) == ["198.51.100.1", "198.51.100.1", "198.51.100.2"]
    # From anyone else the header is ignored: 127.0.0.1 is who it is.
    forged = "X-Forwarded-For: 198.51.100.9\r\n"
    statuses = [(await raw_connect(port, headers=forged)).status for _ in range(3)]
    assert statuses == [101, 101, 429]


# -- the haproxy: endpoint (PROXY protocol) ---------------------------------------------------


def proxy_v1(source: str, source_port: int) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {source_port} 9080\r\n".encode()


def proxy_v2(source: str, source_port: int) -> bytes:
    addresses = socket.inet_aton(source) + socket.inet_aton("127.0.0.1")
    addresses += struct.pack("!HH", source_port, 9080)
    # Version 2, PROXY command; TCP over IPv4; the address block's length.
    return PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 12) + addresses


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2], ids=["v1", "v2"])
@pytest_twisted.ensureDeferred
async def test_behind_a_haproxy_endpoint_limits_and_logs_use_the_proxied_address(
    make_server: ServerMaker, connected_from: list[str], header: Any
) -> None:
    endpoint = endpoints.serverFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
    server = await make_server(SignalingConfig(max_peers_per_address=1), endpoint=endpoint)
    port = port_of(server)
    first = await raw_connect(port, proxy_header=header("198.51.100.7", 40000))
    assert first.status == 101
    first.send_json(JOIN, 0, "")
    assert (await first.next_json())["type"] == ID
    assert connected_from == ["198.51.100.7"]
    second = await raw_connect(port, proxy_header=header("198.51.100.7", 40001))
    assert second.status == 429
    third = await raw_connect(port, proxy_header=header("198.51.100.8", 40002))
    assert third.status == 101
    assert addresses(server) == ["198.51.100.7", "198.51.100.8"]
