"""The pure abuse rules: token buckets, per-address counts, real client
addresses behind proxies, Origin patterns, and their settings."""

from __future__ import annotations

import pytest

from webrtc_signal import SignalingConfig
from webrtc_signal.protocol.access import (
    check_origin_pattern,
    limit_key,
    origin_allowed,
    parse_networks,
    real_client_address,
)
from webrtc_signal.protocol.core import Signaling
from webrtc_signal.protocol.limits import LOBBY_BURST, AddressCounter, LobbyLimits, TokenBucket
from webrtc_signal.protocol.messages import Join
from webrtc_signal.protocol.reasons import CloseReason
from webrtc_signal.protocol.settings import InvalidSetting
from webrtc_signal.protocol.topology import MESH


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.49) is False
    assert bucket.take(100.5) is True
    # Idle time refills up to the burst, never beyond.
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]
    # A clock going backwards refills nothing.
    assert bucket.take(10.0) is False


def test_a_zero_rate_bucket_is_off() -> None:
    bucket = TokenBucket(rate=0, burst=0)
    assert all(bucket.take(0.0) for _ in range(1000))


def test_an_address_counter_counts_to_its_limit_and_forgets_released_addresses() -> None:
    counter = AddressCounter(2)
    assert [counter.acquire("a") for _ in range(3)] == [True, True, False]
    assert counter.acquire("b")
    counter.release("a")
    assert counter.acquire("a")
    for _ in range(2):
        counter.release("a")
    counter.release("b")
    counter.release("b")  # one release too many is harmless
    assert len(counter) == 0
    assert all(AddressCounter(0).acquire("a") for _ in range(1000))


def test_lobby_limits_count_rate_and_forget_idle_addresses() -> None:
    limits = LobbyLimits(max_open=LOBBY_BURST + 5, rate=1)
    assert all(limits.may_create("a", 0.0) for _ in range(LOBBY_BURST))
    assert not limits.may_create("a", 0.5)
    assert limits.may_create("a", 1.0)
    assert limits.may_create("b", 1.0)
    # An unknown address is no one address: never limited.
    assert all(limits.may_create("", 0.0) for _ in range(100))
    # Buckets that have refilled are swept after a while.
    assert limits.may_create("c", 2.0)
    limits.may_create("d", 1000.0)
    assert set(limits._buckets) == {"d"}


def test_the_core_refuses_lobbies_over_the_per_address_limits() -> None:
    core = Signaling(SignalingConfig(max_lobbies_per_address=1, max_lobby_rate=0))
    first, _ = core.connect("first", "198.51.100.7")
    core.receive(first, Join("", MESH))
    second, _ = core.connect("second", "198.51.100.7")
    actions = core.receive(second, Join("", MESH))
    assert actions[0].reason is CloseReason.TOO_MANY_LOBBIES_FROM_ADDRESS  # type: ignore[union-attr]
    third, _ = core.connect("third", "198.51.100.8")
    core.receive(third, Join("", MESH))
    assert third.lobby is not None
    core.disconnect(first)
    fourth, _ = core.connect("fourth", "198.51.100.7")
    core.receive(fourth, Join("", MESH))
    assert fourth.lobby is not None


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        # Not from a trusted proxy: the header is anyone's to write.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # From the proxy: the rightmost address it did not add itself.
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7", "198.51.100.1"),
        ("10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::5]:443", "2001:db8::5"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("::ffff:203.0.113.9", None, "203.0.113.9"),
    ],
)
def test_the_real_client_address(peer: str, header: str | None, expected: str) -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert real_client_address(peer, header, trusted) == expected


def test_ipv6_clients_share_limits_per_56_by_default() -> None:
    # One subscriber's /56: its 256 /64s share one budget.
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::2")
    assert limit_key("2001:db8:1:3::1") == limit_key("2001:db8:1:ff::1") == "2001:db8:1::/56"
    assert limit_key("2001:db8:1:100::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert limit_key("192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize(
    ("prefix", "first", "second", "shared"),
    [
        (48, "2001:db8:1:ffff::1", "2001:db8:1::1", True),
        (48, "2001:db8:2::1", "2001:db8:1::1", False),
        (64, "2001:db8:1:2::1", "2001:db8:1:2:ffff::1", True),
        (64, "2001:db8:1:3::1", "2001:db8:1:2::1", False),
        (128, "2001:db8::1", "2001:db8::2", False),
    ],
)
def test_the_ipv6_prefix_decides_who_shares_a_budget(
    prefix: int, first: str, second: str, shared: bool
) -> None:
    assert (limit_key(first, prefix) == limit_key(second, prefix)) is shared


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("https://game.example.com", True),
        ("HTTPS://GAME.EXAMPLE.COM", True),
        ("https://a.b.example.com", True),
        ("https://example.com", False),
        ("http://a.example.com", False),
        ("https://evil-example.com", False),
        ("https://example.com.evil.net", False),
        ("https://a.example.com:8443", False),
        ("http://localhost:8080", True),
        ("http://localhost", False),
        ("null", False),
    ],
)
def test_origin_patterns(origin: str | None, allowed: bool) -> None:
    patterns = tuple(
        check_origin_pattern(p)
        for p in ("https://game.example.com", "https://*.example.com/", "http://localhost:8080")
    )
    assert origin_allowed(origin, patterns) is allowed
    assert origin_allowed(origin, ()) is True


@pytest.mark.parametrize(
    "pattern",
    ["example.com", "ftp://example.com", "https://", "https://a.*.com", "https://*", "https://x/y"],
)
def test_bad_origin_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidSetting) as error:
        SignalingConfig(allowed_origins=(pattern,))
    assert error.value.setting == "allowed_origins"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_send_buffer", -1),
        ("max_peers_per_address", 1.5),
        ("max_lobbies_per_address", -3),
        ("max_lobby_rate", float("inf")),
        ("max_message_rate", -1),
        ("max_message_burst", 0),
        ("max_lobby_age", float("nan")),
        ("trust_forwarded_for", ("10.0.0.0/33",)),
        ("trust_forwarded_for", "10.0.0.0/8"),
    ],
)
def test_limit_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(InvalidSetting) as error:
        SignalingConfig(**{field: value})
    assert error.value.setting == field


def test_a_list_of_networks_is_kept_as_a_tuple() -> None:
    config = SignalingConfig(trust_forwarded_for=["10.0.0.0/8"])
    assert config.trust_forwarded_for == ("10.0.0.0/8",)


def test_every_limit_can_be_turned_off() -> None:
    SignalingConfig(
        max_send_buffer=0,
        max_peers_per_address=0,
        max_lobbies_per_address=0,
        max_lobby_rate=0,
        max_message_rate=0,
        max_message_burst=0,
        max_lobby_age=0,
    )
