"""The core's settings: the limits and timers of the lobby rules.

Each is declared once (see `settings`): the twistd options, the README's
table and the validation come from these declarations. What the core does
not decide (keepalive, message sizes and rates per connection, ICE servers,
the cluster) is declared by the layer that does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import check_settings, setting


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Limits and timers of the lobby rules. Invalid values raise
    `InvalidSetting` naming the field. For every per-address limit, 0 turns
    it off."""

    max_peers: int = setting(
        4096,
        "Most connections at once; more are closed.",
        minimum=1,
        doc="Most connections at once; the next one is closed with 4000 `Too many peers "
        "connected`.",
    )
    max_lobbies: int = setting(
        1024,
        "Most open lobbies; creating more is refused.",
        minimum=1,
        doc="Most open lobbies; creating one more is closed with 4000 `Too many lobbies open, "
        "disconnecting`.",
    )
    join_timeout: float = setting(
        1.0,
        "Seconds a connection may stay without joining a lobby.",
        above=0,
        doc="Seconds a connection may stay without joining a lobby (then 4000 `Have not joined "
        "lobby yet`). Fractions work.",
        unit="seconds",
    )
    seal_timeout: float = setting(
        10.0,
        "Seconds between a seal and closing the lobby's connections.",
        above=0,
        doc="Seconds between a seal and closing the lobby's connections with 1000 `Seal complete`.",
        unit="seconds",
    )
    # Each newcomer costs a PEER_CONNECT to and from every member, so a
    # lobby's setup traffic grows with the square of its size.
    max_lobby_size: int = setting(
        0,
        "Most members in one lobby, host included; one more JOIN is closed (4000 Lobby is "
        "full). 0 = no limit.",
        minimum=0,
        doc="Most members in one lobby, host included; one more JOIN is closed with 4000 `Lobby "
        "is full`. 0 = no limit, as the reference, but set it: each newcomer means a "
        "PEER_CONNECT to and from every member and every pair then trades offers and "
        "candidates, so a lobby's signaling grows with the square of its size.",
    )
    max_lobbies_per_address: int = setting(
        64,
        "Open lobbies one address may have created; more are refused (4000).",
        minimum=0,
        doc="Open lobbies one address created; one more is closed with 4000 `Too many lobbies "
        "from your address`.",
    )
    max_lobby_rate: float = setting(
        1.0,
        "Lobbies one address may create per second, after a burst of 10.",
        minimum=0,
        doc="Lobbies one address may create per second, after a burst of 10; past it, the same "
        "close.",
    )
    max_lobby_age: float = setting(
        0.0,
        "Seconds an unsealed lobby may stay open; then it is closed (4000). 0 = no limit.",
        minimum=0,
        doc="Seconds an unsealed lobby may stay open before it is closed with 4000 `Lobby "
        "expired`; 0 = no limit.",
        unit="seconds",
    )
    # One subscriber usually gets a whole /56 (or a /48) of IPv6 addresses:
    # counting smaller networks would let one household rotate through
    # thousands of budgets.
    ipv6_prefix: int = setting(
        56,
        "Prefix length under which IPv6 addresses share the per-address limits.",
        minimum=48,
        maximum=128,
        doc="Prefix length (48-128) under which IPv6 addresses share the per-address limits: "
        "providers hand a subscriber a /56 or a /48, so a longer prefix lets one subscriber "
        "rotate through many budgets; a shorter one makes neighbours share one "
        "([docs/security.md](docs/security.md#ipv6)).",
    )

    def __post_init__(self) -> None:
        check_settings(self)
