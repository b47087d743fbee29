"""Server settings: one validated dataclass shared by twistd options and embedders."""

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from .access import check_origin_pattern, parse_networks
from .ice import STUN_SCHEMES, TURN_SCHEMES, url_problem

# A TURN credential outlives its game session by up to this much; a leaked one
# relays for anyone until then, so a day is the most we hand out.
MAX_TURN_TTL = 86400

# The smallest --max-message-size accepted. A real browser's offer for a data
# channel alone is about 0.5-1 KB of SDP; with audio and video m-lines and a
# handful of candidates it is several KB. Below 4 KiB a server would close
# ordinary clients with 1009 in the middle of signaling, which no setting
# should do silently.
MIN_MESSAGE_SIZE = 4096


def parse_redis_url(url: str) -> dict[str, Any]:
    """``redis://[:password@]host[:port][/db]`` or ``rediss://`` (TLS). Errors
    never repeat the URL: it may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("must start with redis:// or rediss://")
    if not parts.hostname:
        raise ValueError("names no host")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("has a bad port") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"database must be a number, not {path!r}")
    return {
        "host": parts.hostname,
        "port": port,
        "db": int(path) if path else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "tls": parts.scheme == "rediss",
    }


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
    # ICE servers handed out at GET /ice-servers (issue 14): STUN and TURN
    # URLs, the secret shared with the TURN server (kept out of repr, so it
    # never reaches a log), and how long a TURN credential stays valid.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl: int = 3600

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

    # -- draining restarts (issue 13) --
    # Seconds a stopping server keeps its open lobbies going (no new
    # connections, no new lobbies) before closing what is left with 1001.
    # 0 stops at once. Not a rule of the core: the service times it.
    drain_timeout: float = 0.0

    # Game-server integration (issue 12): most members in one lobby, host
    # included; 0 = no limit, as the reference. Each newcomer costs a
    # PEER_CONNECT to and from every member, so a lobby's setup traffic grows
    # with the square of its size.
    max_lobby_size: int = 0

    # -- a cluster of nodes sharing lobbies through Redis (issue 15, docs/cluster.md) --
    # redis://[:password@]host[:port][/db] or rediss:// (TLS); "" = a single
    # node, and Redis is never needed. Kept out of repr: it may hold a password.
    redis_url: str = field(default="", repr=False)
    # This node's name in the cluster; "" = a random one at start.
    node_id: str = ""
    # Seconds between refreshes of this node's liveness key, and how long the
    # key lives without one: a node silent that long is dead to the others.
    cluster_period: float = 1.0
    cluster_expiry: float = 3.0

    def __post_init__(self) -> None:
        if type(self.serve_demo) is not bool:
            raise InvalidSetting("serve_demo", f"must be True or False, not {self.serve_demo!r}")
        for name, least in (
            ("max_peers", 1),
            ("max_lobbies", 1),
            ("max_message_size", MIN_MESSAGE_SIZE),
        ):
            value = getattr(self, name)
            if type(value) is not int or value < least:
                raise InvalidSetting(
                    name, f"must be a whole number of at least {least}, not {value!r}"
                )
        for name in ("join_timeout", "seal_timeout", "ping_interval"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                raise InvalidSetting(
                    name, f"must be a finite number of seconds >= 0, not {value!r}"
                )
            if value == 0 and name != "ping_interval":
                raise InvalidSetting(name, "must be more than 0 seconds")
        if type(self.max_lobby_size) is not int or self.max_lobby_size < 0:
            raise InvalidSetting(
                "max_lobby_size",
                f"must be a whole number >= 0 (0 = no limit), not {self.max_lobby_size!r}",
            )
        drain = self.drain_timeout
        if type(drain) not in (int, float) or not math.isfinite(drain) or drain < 0:
            raise InvalidSetting(
                "drain_timeout", f"must be a finite number of seconds >= 0, not {drain!r}"
            )
        self._check_ice_servers()
        self._check_abuse_limits()
        self._check_cluster()

    def _check_cluster(self) -> None:
        if type(self.redis_url) is not str:
            raise InvalidSetting("redis_url", "must be a redis:// or rediss:// URL")
        if self.redis_url:
            try:
                parse_redis_url(self.redis_url)
            except ValueError as error:
                raise InvalidSetting("redis_url", str(error)) from None
        if type(self.node_id) is not str or "/" in self.node_id or not self.node_id.isprintable():
            raise InvalidSetting(
                "node_id", f"must be printable text without '/', not {self.node_id!r}"
            )
        for name in ("cluster_period", "cluster_expiry"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
                raise InvalidSetting(name, f"must be a finite number of seconds > 0, not {value!r}")
        if self.cluster_expiry <= self.cluster_period:
            raise InvalidSetting(
                "cluster_expiry", "must be longer than the refresh period (cluster_period)"
            )

    def _check_ice_servers(self) -> None:
        for name, schemes in (("stun_urls", STUN_SCHEMES), ("turn_urls", TURN_SCHEMES)):
            urls = getattr(self, name)
            if isinstance(urls, str) or not isinstance(urls, tuple | list):
                raise InvalidSetting(name, f"must be a tuple of URLs, not {urls!r}")
            # A list is welcome too; stored as a tuple, so the config stays hashable.
            object.__setattr__(self, name, tuple(urls))
            for url in urls:
                problem = url_problem(url, schemes)
                if problem is not None:
                    raise InvalidSetting(name, problem)
        if type(self.turn_secret) is not str:
            raise InvalidSetting("turn_secret", "must be a string")
        if self.turn_urls and not self.turn_secret:
            raise InvalidSetting("turn_secret", "is needed to make credentials for the TURN URLs")
        if type(self.turn_ttl) is not int or not 1 <= self.turn_ttl <= MAX_TURN_TTL:
            raise InvalidSetting(
                "turn_ttl",
                f"must be a whole number of seconds from 1 to {MAX_TURN_TTL}, "
                f"not {self.turn_ttl!r}",
            )

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
