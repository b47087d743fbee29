"""Where an RtcPeer gets its ICE servers: the signaling server's
/ice-servers by default, the given list otherwise; a failed fetch is said
clearly and the peer goes on without."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from webrtc_signal import SignalingConfig
from webrtc_signal.server.ice_servers import Unauthorized

from ..conftest import ServerMaker
from ..support.wsclient import with_timeout

pytest.importorskip("aiortc", reason="aiortc is not installed: pip install 'webrtc-signal[rtc]'")

from aiortc import RTCIceServer

from webrtc_signal.rtc import RtcPeer
from webrtc_signal.rtc.peer import ice_servers_url

from .test_rtc import aio

NOW = 1_800_000_000
CONFIG = SignalingConfig(
    stun_urls=("stun:127.0.0.1:3478",),
    turn_urls=("turn:127.0.0.1:3478?transport=udp",),
    turn_secret="s3cret",
)


@pytest.mark.parametrize(
    ("signaling", "ice"),
    [
        ("ws://127.0.0.1:9080", "http://127.0.0.1:9080/ice-servers"),
        ("ws://127.0.0.1:9080/", "http://127.0.0.1:9080/ice-servers"),
        ("wss://example.org/signal?x=1", "https://example.org/ice-servers"),
        ("ws://[::1]:9/any?token=abc&x=1", "http://[::1]:9/ice-servers?token=abc"),
    ],
)
def test_the_ice_servers_url_sits_beside_the_signaling_url(signaling: str, ice: str) -> None:
    assert ice_servers_url(signaling) == ice


async def joined_peer(url: str, **kwargs: Any) -> RtcPeer:
    peer = RtcPeer(url, **kwargs)
    await peer.join()
    return peer


@pytest_twisted.ensureDeferred
async def test_by_default_the_peer_uses_the_servers_ice_servers(make_server: ServerMaker) -> None:
    server = await make_server(CONFIG)
    server.clock.advance(NOW)
    peer = await with_timeout(aio(joined_peer(server.url)), 10)
    try:
        assert peer.ice_problem is None
        stun, turn = peer.ice_servers
        assert stun.urls == ["stun:127.0.0.1:3478"]
        assert turn.urls == ["turn:127.0.0.1:3478?transport=udp"]
        assert turn.username is not None and turn.username.startswith(f"{NOW + 3600}:")
        assert turn.credential
    finally:
        await with_timeout(aio(peer.close()), 10)


@pytest_twisted.ensureDeferred
async def test_a_given_list_is_used_and_nothing_is_fetched(make_server: ServerMaker) -> None:
    server = await make_server(CONFIG)
    asked: list[object] = []
    server.service.ice.authenticate = lambda query: asked.append(query)
    given = [
        "stun:127.0.0.1:1",
        {"urls": ["turn:127.0.0.1:2"], "username": "u", "credential": "c"},
        # aiortc cannot parse IPv6 literals: skipped, not fatal.
        {"urls": "stun:[::1]:3"},
    ]
    peer = await with_timeout(aio(joined_peer(server.url, ice_servers=given)), 10)
    none = await with_timeout(aio(joined_peer(server.url, ice_servers=[])), 10)
    try:
        assert peer.ice_servers == [
            RTCIceServer(["stun:127.0.0.1:1"]),
            RTCIceServer(["turn:127.0.0.1:2"], "u", "c"),
        ]
        assert none.ice_servers == []
        assert asked == []
    finally:
        await with_timeout(aio(peer.close()), 10)
        await with_timeout(aio(none.close()), 10)


@pytest_twisted.ensureDeferred
async def test_a_refused_fetch_is_reported_and_the_peer_goes_on(make_server: ServerMaker) -> None:
    server = await make_server(CONFIG)

    def refuse(query: object) -> object:
        raise Unauthorized("a valid ?token= is required")

    server.service.ice.authenticate = refuse
    peer = await with_timeout(aio(joined_peer(server.url + "/?token=wrong")), 10)
    try:
        assert peer.peer_id == 1
        assert peer.ice_servers == []
        assert peer.ice_problem is not None
        assert "could not fetch ICE servers from http://127.0.0.1:" in peer.ice_problem
        assert "HTTP 401" in peer.ice_problem
        assert "a valid ?token= is required" in peer.ice_problem
        assert "wrong" not in peer.ice_problem
    finally:
        await with_timeout(aio(peer.close()), 10)


@pytest_twisted.ensureDeferred
async def test_peer_command_line_says_which_ice_servers_or_why_none(
    make_server: ServerMaker,
) -> None:
    from ..client.test_client import run_cli_module

    server = await make_server(SignalingConfig(stun_urls=("stun:127.0.0.1:3478",)))

    def authenticate(query: Any) -> object:
        if query.get("token") != ["good"]:
            raise Unauthorized("no token")
        return "someone"

    server.service.ice.authenticate = authenticate
    quick = ("--exit-after", "0.2", "--no-input")
    fetched = run_cli_module("webrtc_signal.rtc.cli", server.url + "/?token=good", *quick)
    refused = run_cli_module("webrtc_signal.rtc.cli", server.url + "/?token=bad", *quick)
    assert await fetched.finished(20) == 0, fetched.output
    assert "ICE servers: stun:127.0.0.1:3478" in fetched.output
    assert await refused.finished(20) == 0, refused.output
    assert "could not fetch ICE servers from http://127.0.0.1:" in refused.output
    assert "HTTP 401" in refused.output and "going on without ICE servers" in refused.output
    assert "joined mesh lobby" in refused.output
    assert "bad" not in refused.output.split("joined")[0]
