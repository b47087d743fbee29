"""Server settings: one validated dataclass shared by twistd options and embedders."""

import math
from dataclasses import dataclass

from .access import check_origin_pattern, parse_networks


class InvalidSetting(ValueError):
    """A setting's value is out of range; ``setting`` names the field."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SignalingConfig:
    """Limits and timers of a signaling server. Invalid values raise
    `InvalidSetting` (a ``ValueError``) naming the setting, so both the command line and an
    embedding program get a clear message instead of a misbehaving server."""

    max_peers: int = 4096
    max_lobbies: int = 1024
    join_timeout: float = 1.0
    seal_timeout: float = 10.0
    # 0 turns keepalive pings off.
    ping_interval: float = 10.0
    max_message_size: int = 64 * 1024
    # Answer plain HTTP GETs (no WebSocket upgrade) with the browser demo;
    # off, they get 426 Upgrade Required. Not a rule of the core.
    serve_demo: bool = True
    # -- issue 11: limits against abuse on the open internet (docs/security.md).
    # For every per-address and per-connection limit, 0 turns it off.
    # Unsent bytes a connection may hold on the server before it is dropped.
    max_send_buffer: int = 1024 * 1024
    # Connections one address may hold; more get HTTP 429 at the upgrade.
    max_peers_per_address: int = 256
    # Open lobbies one address may have created.
    max_lobbies_per_address: int = 64
    # Lobbies one address may create per second, after a burst (limits.LOBBY_BURST).
    max_lobby_rate: float = 1.0
    # Messages per second per connection, and the burst allowed above that rate.
    max_message_rate: float = 50.0
    max_message_burst: int = 200
    # Seconds an unsealed lobby may stay open (0 = no limit).
    max_lobby_age: float = 0.0
    # Browser origins allowed to connect (empty = any); see access.check_origin_pattern.
    allowed_origins: tuple[str, ...] = ()
    # Proxies (CIDR texts) whose X-Forwarded-For header names the real client.
    trust_forwarded_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if type(self.serve_demo) is not bool:
            raise InvalidSetting("serve_demo", f"must be True or False, not {self.serve_demo!r}")
        for name in ("max_peers", "max_lobbies", "max_message_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidSetting(name, f"must be a whole number of at least 1, not {value!r}")
        for name in ("join_timeout", "seal_timeout", "ping_interval"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                raise InvalidSetting(
                    name, f"must be a finite number of seconds >= 0, not {value!r}"
                )
            if value == 0 and name != "ping_interval":
                raise InvalidSetting(name, "must be more than 0 seconds")
        self._check_abuse_limits()

    def _check_abuse_limits(self) -> None:
        for name in (
            "max_send_buffer",
            "max_peers_per_address",
            "max_lobbies_per_address",
            "max_message_burst",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidSetting(name, f"must be a whole number >= 0, not {value!r}")
        for name in ("max_lobby_rate", "max_message_rate", "max_lobby_age"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                raise InvalidSetting(name, f"must be a finite number >= 0, not {value!r}")
        if self.max_message_rate and self.max_message_burst < 1:
            raise InvalidSetting(
                "max_message_burst", "must be at least 1 while the message rate limit is on"
            )
        for name in ("allowed_origins", "trust_forwarded_for"):
            if type(getattr(self, name)) is not tuple:
                raise InvalidSetting(name, "must be a tuple of strings")
        for pattern in self.allowed_origins:
            try:
                check_origin_pattern(pattern)
            except ValueError as error:
                raise InvalidSetting("allowed_origins", str(error)) from None
        try:
            parse_networks(self.trust_forwarded_for)
        except ValueError as error:
            raise InvalidSetting("trust_forwarded_for", str(error)) from None
