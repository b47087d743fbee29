"""TURN REST API credentials and ICE server URLs, computed without I/O: the
HMAC is recomputed here from the published formula, not from our code."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from webrtc_signal.protocol import ice

NOW = 1_800_000_000.75


def expected_password(secret: str, username: str) -> str:
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def test_username_expires_ttl_seconds_from_now() -> None:
    assert ice.turn_username("alice", NOW, 3600) == "1800003600:alice"


def test_password_is_base64_of_hmac_sha1_of_the_username() -> None:
    username = ice.turn_username("alice", NOW, 60)
    assert ice.turn_password("s3cret", username) == expected_password("s3cret", username)
    # A known answer (from `openssl dgst -sha1 -hmac s3cret -binary | base64`).
    assert ice.turn_password("s3cret", "1800000060:alice") == "LwFrCjwhT87UniVUEtFE2B1TZiI="
    assert len(base64.b64decode(ice.turn_password("s3cret", username))) == 20


@pytest.mark.parametrize(
    ("user", "part"),
    [("bob", "bob"), ("a:b c", "a_b_c"), ("", "_"), ("é", "_"), ("x" * 100, "x" * 64)],
)
def test_the_user_part_is_made_safe(user: str, part: str) -> None:
    assert ice.turn_username(user, NOW, 1) == f"1800000001:{part}"


def test_ice_servers_shape() -> None:
    servers = ice.ice_servers(
        ("stun:stun.example.org", "stun:[2001:db8::1]:3478"),
        ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"),
        "s3cret",
        600,
        "carol",
        NOW,
    )
    assert servers == [
        {"urls": ["stun:stun.example.org", "stun:[2001:db8::1]:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            "username": "1800000600:carol",
            "credential": expected_password("s3cret", "1800000600:carol"),
        },
    ]


def test_nothing_configured_is_an_empty_list() -> None:
    assert ice.ice_servers((), (), "", 3600, "x", NOW) == []


@pytest.mark.parametrize(
    "url",
    [
        "turn:turn.example.org",
        "turn:127.0.0.1:3478",
        "turn:[::1]:3478?transport=tcp",
        "turns:turn.example.org:5349?transport=tcp",
        "turn:turn.example.org?transport=udp",
    ],
)
def test_good_turn_urls(url: str) -> None:
    assert ice.url_problem(url, ice.TURN_SCHEMES) is None


@pytest.mark.parametrize(
    "url",
    [
        "turn://turn.example.org",
        "turn:",
        "turn:host:0",
        "turn:host:70000",
        "turn:host?transport=sctp",
        "turn:user@host",
        "stun:host",
        "http://host",
        "turn:host:3478/path",
        "turn:host?transport=udp&x=1",
        " turn:host",
    ],
)
def test_bad_turn_urls_are_named(url: str) -> None:
    problem = ice.url_problem(url, ice.TURN_SCHEMES)
    assert problem is not None and repr(url) in problem


@pytest.mark.parametrize("url", ["stun:host?transport=udp", "turn:host", "stun://host"])
def test_bad_stun_urls(url: str) -> None:
    assert ice.url_problem(url, ice.STUN_SCHEMES) is not None
