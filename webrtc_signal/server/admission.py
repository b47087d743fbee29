"""Who may open a WebSocket: the checks of an upgrade request, before the
game server's ``authenticate`` hook is asked.

In order: a draining server refuses newcomers (503); a browser Origin must be
on the allow-list (403); the open-file budget must have room (503); one
address may hold only so many connections (429). Each refusal is counted for
the metrics, logged through the server's `LogLimits` (one line per kind,
then a summary per interval: a refusal storm is a trickle of log) and
raises `UpgradeRefused`, which the WebSocket adapter answers as HTTP. The
client's address is the transport's, or the one a trusted proxy's
``X-Forwarded-For`` names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from ..protocol.access import (
    check_origin_pattern,
    is_trusted,
    limit_key,
    normalize_address,
    origin_allowed,
    parse_networks,
    real_client_address,
)
from ..protocol.events import ConnectionRefused
from ..protocol.hooks import ConnectionRequest, Refused
from ..protocol.limits import AddressCounter
from ..protocol.reasons import UpgradeRefusal
from ..protocol.state import Output
from . import game_hooks
from .config import ServerConfig
from .log_limits import LogLimits
from .traffic import TrafficCounts


class UpgradeRefused(Exception):
    """An upgrade answered with HTTP ``status`` and ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class Admission:
    def __init__(
        self,
        config: ServerConfig,
        ipv6_prefix: int,
        traffic: TrafficCounts,
        run: Callable[[Iterable[Output[Any]]], None],
        hooks: game_hooks.Hooks | None = None,
        *,
        log_limits: LogLimits,
    ) -> None:
        self._config = config
        self._ipv6_prefix = ipv6_prefix
        self._traffic = traffic
        self._run = run
        self._log_limits = log_limits
        self.allowed_origins = tuple(check_origin_pattern(p) for p in config.allowed_origins)
        self.trusted_proxies = parse_networks(config.trust_forwarded_for)
        self.peers_per_address = AddressCounter(config.max_peers_per_address)
        # Most connections (handshaking or open) before newcomers get 503;
        # 0 = no limit. The standalone server sets it from RLIMIT_NOFILE.
        self.max_connections = 0
        self.authenticate_hook: Callable[[ConnectionRequest], Any] | None = getattr(
            hooks, "authenticate", None
        )

    def client_address(self, peer_host: str, forwarded_for: str | None) -> str:
        """The client a connection from ``peer_host`` stands for."""
        return real_client_address(peer_host, forwarded_for, self.trusted_proxies)

    def admit(self, address: str, origin: str | None, connections: int, draining: bool) -> str:
        """Check an upgrade from ``address`` (``connections`` is how many the
        server holds now); the key it is counted under, to `release` when it
        is gone. Raises `UpgradeRefused`."""
        if draining:
            raise self.refuse(UpgradeRefusal.DRAINING, address)
        if not origin_allowed(origin, self.allowed_origins):
            raise self.refuse(UpgradeRefusal.ORIGIN_NOT_ALLOWED, address, origin=origin)
        if self.max_connections and connections > self.max_connections:
            # The operator's to fix (the open-file limit): a warning.
            raise self.refuse(
                UpgradeRefusal.SERVER_FULL, address, LogLevel.warn, connections=connections
            )
        key = limit_key(address, self._ipv6_prefix)
        if not self.peers_per_address.acquire(key):
            raise self.refuse(
                UpgradeRefusal.TOO_MANY_CONNECTIONS, address, limit=self.peers_per_address.limit
            )
        return key

    def release(self, key: str) -> None:
        """A connection counted under ``key`` is gone."""
        self.peers_per_address.release(key)

    def refuse(
        self,
        refusal: UpgradeRefusal,
        address: str = "",
        level: LogLevel = LogLevel.info,
        **fields: object,
    ) -> UpgradeRefused:
        """The server's own refusal of ``address``, counted for the metrics
        and logged (one line per kind, see `LogLimits`), to raise."""
        self._traffic.refused(refusal.status, refusal.text)
        log_refusal(self._log_limits, refusal, address, level=level, **fields)
        return UpgradeRefused(refusal.status, refusal.text)

    def authenticate(self, request: ConnectionRequest) -> Deferred[Any] | None:
        """The game server's ``authenticate`` hook on ``request``: None when
        there is none (the upgrade goes on at once), else a Deferred of the
        identity that fails with `UpgradeRefused`."""
        method = self.authenticate_hook
        if method is None:
            return None
        return game_hooks.authenticate(method, request).addErrback(self._refused, request)

    def _refused(self, failure: Failure, request: ConnectionRequest) -> Failure:
        if not failure.check(Refused):
            return failure  # cancelled: the client left
        refusal: Refused = failure.value  # type: ignore[assignment]
        self._run([ConnectionRefused(request.address, refusal.status, refusal.reason)])
        return Failure(UpgradeRefused(refusal.status, refusal.reason))


class HandshakeLimits:
    """Connections that have not finished their upgrade, per address, counted
    from the TCP accept: a client that never completes its request still
    holds a socket and a parser. Connections from a trusted proxy are not
    counted here (the proxy stands for many clients; it bounds slow clients
    itself)."""

    def __init__(
        self,
        config: ServerConfig,
        ipv6_prefix: int,
        traffic: TrafficCounts,
        log_limits: LogLimits,
    ) -> None:
        self._ipv6_prefix = ipv6_prefix
        self._traffic = traffic
        self._log_limits = log_limits
        self._trusted = parse_networks(config.trust_forwarded_for)
        self.unfinished = AddressCounter(config.max_handshakes_per_address)
        # Seconds from the accept to a complete upgrade; 0 = no limit.
        self.timeout = config.handshake_timeout

    def accept(self, peer_host: str) -> str | None:
        """A TCP connection from ``peer_host``: the key it is counted under
        ("" = not counted), or None when its address has too many unfinished
        handshakes already (close it at once)."""
        if not self.unfinished.limit:
            return ""
        address = normalize_address(peer_host)
        if is_trusted(address, self._trusted):
            return ""
        key = limit_key(address, self._ipv6_prefix)
        if self.unfinished.acquire(key):
            return key
        self.refused(UpgradeRefusal.TOO_MANY_HANDSHAKES, address, limit=self.unfinished.limit)
        return None

    def finished(self, key: str) -> None:
        """The connection counted under ``key`` completed its upgrade, or is gone."""
        if key:
            self.unfinished.release(key)

    def refused(self, refusal: UpgradeRefusal, peer_host: str, **fields: Any) -> None:
        """A connection from ``peer_host`` refused before its upgrade: counted
        for the metrics and logged (one line per kind, see `LogLimits`)."""
        self._traffic.refused(refusal.status, refusal.text)
        log_refusal(self._log_limits, refusal, normalize_address(peer_host), **fields)


def log_refusal(
    limits: LogLimits,
    refusal: UpgradeRefusal,
    address: str,
    *,
    level: LogLevel = LogLevel.info,
    **fields: object,
) -> None:
    """The one line a refused connection gets (if its kind is not held
    back): with the HTTP status, or "closed" when there is no HTTP answer."""
    if refusal.status:
        text = "refused a connection from {address}: {close_code} {reason}"
    else:
        text = "closed a connection from {address}: {reason}"
    limits.emit(
        level,
        refusal.text,
        address,
        text,
        event_kind="refused",
        address=address,
        close_code=refusal.status or None,
        reason=refusal.text,
        **fields,
    )
