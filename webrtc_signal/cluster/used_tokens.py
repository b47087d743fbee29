"""Single-use tokens used up across the cluster: a `UsedTokens` store in Redis.

A node admits a token with a ``jti`` only if its ``SET webrtc-signal:jti:<jti>
1 NX PX <ms until the token expires>`` succeeds: the first node to show the
token sets the key, every later one (this node or another) finds it, and
Redis forgets the key when the token could not pass anyway. Nothing here
keeps a list, so memory is Redis's, bounded by the tokens' lifetimes
(``--token-max-ttl``).

Fail closed: while Redis is unreachable, or does not answer within
`REPLY_TIMEOUT`, a single-use token is refused with 503 (tokens without a
``jti`` need no Redis and go on being admitted). The refusals are logged
once per ten seconds at most.

It has its own Redis connection, kept up by Twisted's ClientService like the
cluster bus's, and is a Twisted service: add it to the server's service
collection (or call ``startService``/``stopService``) next to the
``SignalingService`` whose `TokenAuth` uses it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import txredisapi
from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..server.tokens import RefusalLog, UsedTokensUnavailable
from .config import parse_redis_url
from .redis_bus import PREFIX, reconnecting

_log = Logger(namespace="webrtc_signal.cluster")

KEY_PREFIX = PREFIX + "jti:"


class RedisUsedTokens(Service):
    """`UsedTokens` shared by every node on the Redis server at ``url``
    (``redis://[:password@]host[:port][/db]`` or ``rediss://``). ``clock``
    gives the time a token's remaining lifetime is counted from (default: the
    system clock); ``reactor`` runs the connection (default: the global one)."""

    def __init__(self, url: str, clock: IReactorTime | None = None, reactor: Any = None) -> None:
        self.settings = parse_redis_url(url)
        self._now = time.time if clock is None else clock.seconds
        self._reactor = reactor
        self._commands: Any = None
        self._connection: ClientService | None = None
        self._refusals = RefusalLog(self._now)

    @property
    def up(self) -> bool:
        """Whether a connection to Redis is open now."""
        return self._commands is not None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        self._connection = reconnecting(
            self.settings, txredisapi.RedisProtocol, self._ready, self._lost, reactor
        )
        self._connection.startService()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        connection, self._connection = self._connection, None
        self._commands = None
        if connection is None:
            return succeed(None)
        stopped: Deferred[None] = connection.stopService()
        return stopped

    def _ready(self, proto: Any) -> None:
        if self._connection is None:
            return
        self._commands = proto
        _log.info(
            "single-use tokens: redis reachable at {host}:{port}",
            host=self.settings["host"],
            port=self.settings["port"],
        )

    def _lost(self, proto: Any) -> None:
        if proto is self._commands:
            self._commands = None
            _log.warn("single-use tokens: connection to redis lost")

    def claim(self, token_id: str, expires_at: float) -> Deferred[bool]:
        commands = self._commands
        if commands is None:
            return self._unavailable("redis unreachable")
        remaining = math.ceil((expires_at - self._now()) * 1000)
        if remaining <= 0:
            # Expired already: no later use can pass the expiry check.
            return succeed(True)
        setting: Deferred[Any] = commands.set(
            KEY_PREFIX + token_id, "1", pexpire=remaining, only_if_not_exists=True
        )

        def failed(failure: Failure) -> Deferred[bool]:
            why = failure.getErrorMessage()
            if failure.check(txredisapi.ConnectionError) and commands is self._commands:
                # txredisapi drops a connection whose reply timed out; until
                # the next one is ready, refuse at once rather than queue
                # commands on a connection on its way out.
                self._commands = None
                _log.warn("single-use tokens: redis failed ({why}); reconnecting", why=why[:200])
            return self._unavailable(f"redis failed: {why}")

        # SET NX answers OK when it set the key, nil when the key was there.
        return setting.addCallbacks(lambda reply: reply == "OK", failed)

    def _unavailable(self, why: str) -> Deferred[bool]:
        self._refusals.refused(
            "single-use tokens refused (503): {why} ({refused} refused)", why=why[:200]
        )
        return fail(UsedTokensUnavailable(why))
