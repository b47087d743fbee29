"""``--ipv6-prefix`` over real sockets: IPv6 players reach the server through
a trusted proxy's ``X-Forwarded-For`` (from 127.0.0.1), and the per-address
limits count them by their network of that many bits (56 by default)."""

from __future__ import annotations

import pytest
import pytest_twisted

from webrtc_signal import SignalingConfig

from ..conftest import RunningServer, ServerMaker
from ..support.rawws import RawWebSocket, raw_cleanup, raw_connect

__all__ = ["raw_cleanup"]

JOIN, ID = 0, 1
# Three addresses in one /56 (2001:db8:0:100::/56), each in a /64 of its own.
SAME_56 = ("2001:db8:0:100::1", "2001:db8:0:1ff::2", "2001:db8:0:1ab::3")
# The next /56.
OTHER_56 = "2001:db8:0:200::1"
# Two more addresses in the first one's /64.
SAME_64 = ("2001:db8:0:100::ffff", "2001:db8:0:100:1:2:3:4")


def port_of(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def upgrade_as(server: RunningServer, address: str) -> RawWebSocket:
    """An upgrade the trusted proxy at 127.0.0.1 forwards for ``address``."""
    return await raw_connect(port_of(server), headers=f"X-Forwarded-For: {address}\r\n")


async def limited_server(make_server: ServerMaker, **settings: object) -> RunningServer:
    return await make_server(
        SignalingConfig(trust_forwarded_for=("127.0.0.1",), max_peers_per_address=2, **settings)
    )


@pytest_twisted.ensureDeferred
async def test_two_addresses_in_one_56_share_a_budget(make_server: ServerMaker) -> None:
    server = await limited_server(make_server)
    first, second, third = SAME_56
    assert (await upgrade_as(server, first)).status == 101
    assert (await upgrade_as(server, second)).status == 101
    # Another /64 of the same /56: the budget of two is spent.
    assert (await upgrade_as(server, third)).status == 429
    # Another /56 has a budget of its own.
    assert (await upgrade_as(server, OTHER_56)).status == 101
    assert sorted(c.client_address() for c in server.engine.connections) == sorted(
        [first, second, OTHER_56]
    )


@pytest_twisted.ensureDeferred
async def test_with_ipv6_prefix_64_each_64_has_its_own_budget(make_server: ServerMaker) -> None:
    server = await limited_server(make_server, ipv6_prefix=64)
    for address in SAME_56:
        assert (await upgrade_as(server, address)).status == 101
    # The first /64 holds one already: one more fits, then it is full.
    assert (await upgrade_as(server, SAME_64[0])).status == 101
    assert (await upgrade_as(server, SAME_64[1])).status == 429


@pytest.mark.parametrize(("prefix", "second_lobby"), [(56, "refused"), (64, "created")])
@pytest_twisted.ensureDeferred
async def test_the_lobby_limits_count_by_the_same_prefix(
    make_server: ServerMaker, prefix: int, second_lobby: str
) -> None:
    server = await limited_server(make_server, ipv6_prefix=prefix, max_lobbies_per_address=1)
    first = await upgrade_as(server, SAME_56[0])
    first.send_json(JOIN, 0, "")
    assert (await first.next_json())["type"] == ID
    second = await upgrade_as(server, SAME_56[1])
    second.send_json(JOIN, 0, "")
    if second_lobby == "refused":
        assert await second.wait_close() == (4000, "Too many lobbies from your address")
    else:
        assert (await second.next_json())["type"] == ID
