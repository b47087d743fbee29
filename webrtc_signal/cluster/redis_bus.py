"""`Bus` on Redis with txredisapi: pub/sub for messages, Lua for claims.

Two connections, each kept up by Twisted's ClientService: one for commands
(publishes included, so everything this node sends goes out in order) and
one subscribed to this incarnation's channel. Commands are never queued while
Redis is away: the bridge asks `up` first and refuses what needs Redis.

Keys (prefix ``webrtc-signal:``):

- ``alive:<node>`` = epoch, expiring after ``expiry`` unless refreshed;
- ``incarnations``: the set of "<node>/<epoch>" that registered;
- ``lobbies:<node>/<epoch>``: the lobbies an incarnation owns;
- ``lobby:<name>`` = "<node>/<epoch>", the owner, claimed with SET NX;
- ``peers:<node>/<epoch>``: the peer ids an incarnation claimed;
- ``peer:<id>`` = "<node>/<epoch>", the peer id's holder (see ids.py);
- the pools and the lobby list: see `redis_shared`.

A dead incarnation's keys are removed by whichever node next counts lobbies.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import endpoints, ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .bus import BusListener, decode, encode
from .config import parse_redis_url
from .redis_shared import CLAIMING, IS_LIVE, SPLIT, SharedOnRedis

_log = Logger(namespace="webrtc_signal.cluster")

PREFIX = "webrtc-signal:"
# A command Redis does not answer within this many seconds fails (and the
# connection with it): a hung Redis counts as a lost one.
REPLY_TIMEOUT = 2

# ARGV: prefix, me, name, max. Counts the lobbies of live incarnations (and
# forgets dead ones), then claims the name with SET NX.
CLAIM = "local P = ARGV[1]\n" + CLAIMING + "return claim(ARGV[2], ARGV[3], ARGV[4])\n"

# ARGV: prefix, me, names...: this incarnation's lobbies again, after a reconnection.
RECLAIM = """
local P = ARGV[1]
for i = 3, #ARGV do
  if redis.call('SET', P..'lobby:'..ARGV[i], ARGV[2], 'NX') then
    redis.call('SADD', P..'lobbies:'..ARGV[2], ARGV[i])
  end
end
return 1
"""

# ARGV: prefix, me, name.
RELEASE = """
local P = ARGV[1]
redis.call('SREM', P..'lobbies:'..ARGV[2], ARGV[3])
local key = P..'lobby:'..ARGV[3]
if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
return 1
"""

# ARGV: prefix, name. The owner, if alive.
FIND = (
    "local P = ARGV[1]\n"
    + SPLIT
    + IS_LIVE
    + """
local owner = redis.call('GET', P..'lobby:'..ARGV[2])
if owner and live(owner) then return owner end
return false
"""
)

# ARGV: prefix, incarnations...: the live ones.
LIVE = (
    "local P = ARGV[1]\n"
    + SPLIT
    + IS_LIVE
    + """
local found = {}
for i = 2, #ARGV do if live(ARGV[i]) then found[#found + 1] = ARGV[i] end end
return found
"""
)

# ARGV: prefix, me, ids...: the ids now ours. An id held by a dead
# incarnation is taken over (its holder's set is swept later, by CLAIM).
CLAIM_IDS = (
    "local P = ARGV[1]\n"
    + SPLIT
    + IS_LIVE
    + """
local got = {}
for i = 3, #ARGV do
  local key = P..'peer:'..ARGV[i]
  local current = redis.call('GET', key)
  if current ~= ARGV[2] and (not current or not live(current)) then
    redis.call('SET', key, ARGV[2])
    redis.call('SADD', P..'peers:'..ARGV[2], ARGV[i])
    current = ARGV[2]
  end
  if current == ARGV[2] then got[#got + 1] = ARGV[i] end
end
return got
"""
)

# ARGV: prefix, me, ids...
RELEASE_IDS = """
local P = ARGV[1]
for i = 3, #ARGV do
  local key = P..'peer:'..ARGV[i]
  if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
  redis.call('SREM', P..'peers:'..ARGV[2], ARGV[i])
end
return 1
"""

# ARGV: prefix, node, epoch, expiry ms, first ("1" registers). Refreshes this
# incarnation's key; 0 if it had expired (or another process took the node id
# over): then others have seen this incarnation die, and it must not revive.
HEARTBEAT = """
local P = ARGV[1]
local key = P..'alive:'..ARGV[2]
if ARGV[5] == '1' then
  redis.call('SET', key, ARGV[3], 'PX', ARGV[4])
  redis.call('SADD', P..'incarnations', ARGV[2]..'/'..ARGV[3])
  return 1
end
if redis.call('GET', key) ~= ARGV[3] then return 0 end
redis.call('PEXPIRE', key, ARGV[4])
return 1
"""


class _Factory(txredisapi.RedisFactory):  # type: ignore[misc]
    """Builds txredisapi protocols for a ClientService (which reconnects)."""

    def __init__(self, protocol: type, settings: dict[str, Any], ready: Any, lost: Any) -> None:
        self.protocol = protocol
        self.settings = settings
        self.ready = ready
        self.lost = lost

    def buildProtocol(self, addr: object) -> Any:
        settings = self.settings
        proto = self.protocol(
            "utf-8",
            replyTimeout=REPLY_TIMEOUT,
            password=settings["password"],
            dbid=settings["db"] or None,
            username=settings["username"],
        )
        proto.factory = self
        proto.whenConnected().addCallback(self.ready)
        made = proto.connectionMade

        def connection_made() -> Any:
            # Without TCP_NODELAY a small publish that follows one Redis has
            # not acknowledged yet waits for its delayed ACK (40 ms): every
            # relay between nodes is such a write.
            no_delay = getattr(proto.transport, "setTcpNoDelay", None)
            if no_delay is not None:
                no_delay(True)
            return made()

        proto.connectionMade = connection_made
        lost = proto.connectionLost

        def connection_lost(reason: Failure) -> None:
            try:
                lost(reason)
            finally:
                self.lost(proto)

        proto.connectionLost = connection_lost
        return proto

    # What txredisapi's protocol calls when AUTH or SELECT fails.
    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        _log.error("redis: {why}", why=why)


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    bus: RedisBus

    def messageReceived(self, pattern: object, channel: object, message: object) -> None:
        self.bus._received(message)


def reconnecting(
    settings: dict[str, Any],
    protocol: type,
    ready: Callable[[Any], None],
    lost: Callable[[Any], None],
    reactor: Any,
    period: float = 1.0,
) -> ClientService:
    """A connection to the Redis of ``settings`` (see `parse_redis_url`)
    that reconnects after a loss, quickly at first (0.1 s, doubling), then
    at least every three quarters of ``period`` (half of it plus up to a
    quarter of jitter, so that nodes do not all knock at once): a node is
    back within one ``--cluster-period`` of Redis coming back, and a Redis
    that is down sees about one attempt per period from each connection.
    ``ready`` is called with each new protocol, ``lost`` with each lost one."""
    endpoint: Any = endpoints.TCP4ClientEndpoint(
        reactor, settings["host"], settings["port"], timeout=REPLY_TIMEOUT
    )
    if settings["tls"]:
        endpoint = endpoints.wrapClientTLS(ssl.optionsForClientTLS(settings["host"]), endpoint)
    factory = _Factory(protocol, settings, ready, lost)
    most = max(0.1, period / 2)
    policy = backoffPolicy(
        initialDelay=min(0.1, most),
        maxDelay=most,
        factor=2.0,
        jitter=lambda: random.random() * period / 4,
    )
    return ClientService(endpoint, factory, retryPolicy=policy, clock=reactor)


class RedisBus(SharedOnRedis):
    """A `Bus` on one Redis server (its shared lobby state: `SharedOnRedis`)."""

    def __init__(
        self,
        url: str,
        node_id: str,
        clock: IReactorTime,
        period: float = 1.0,
        expiry: float = 3.0,
    ) -> None:
        self.settings = parse_redis_url(url)
        self.node_id = node_id
        self.clock = clock
        self.period = period
        self.expiry = expiry
        self.incarnation = ""
        self.listener: BusListener | None = None
        self._commands: Any = None
        self._subscriber: Any = None
        self._services: list[ClientService] = []
        self._heartbeat: Any = None
        self._registering = False
        # Whether the last transition logged was "up" (for the log lines only).
        self._logged_up: bool | None = None

    @property
    def up(self) -> bool:
        return bool(self.incarnation)

    # -- connections ---------------------------------------------------------

    def start(self, listener: BusListener) -> None:
        from twisted.internet import reactor

        self.listener = listener
        settings = self.settings
        for protocol, ready in (
            (txredisapi.RedisProtocol, self._commands_ready),
            (_Subscriber, self._subscriber_ready),
        ):
            service = reconnecting(settings, protocol, ready, self._lost, reactor, self.period)
            service.startService()
            self._services.append(service)
        _log.info(
            "cluster node {node} connecting to redis at {host}:{port}",
            node=self.node_id,
            host=settings["host"],
            port=settings["port"],
        )

    def stop(self) -> Deferred[None]:
        self._stop_heartbeat()
        commands, incarnation = self._commands, self.incarnation
        self.incarnation = ""
        waits: list[Deferred[Any]] = []
        if commands is not None and incarnation:
            # Leave at once rather than after the expiry: edges and owners
            # see this node gone on their next check.
            node = self.node_id
            epoch = incarnation.rsplit("/", 1)[1]
            script = (
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end "
                "return 1"
            )
            left = commands.eval(script, [f"{PREFIX}alive:{node}"], [epoch])
            left.addErrback(lambda _: None)
            waits.append(left)
        done: Deferred[Any] = Deferred()

        def stop_services(_: object) -> None:
            stops = [service.stopService() for service in self._services]
            self._services = []
            for stopping in stops:
                stopping.addErrback(lambda _: None)
            done.callback(None)

        if waits:
            waits[0].addBoth(stop_services)
        else:
            stop_services(None)
        return done

    def _commands_ready(self, proto: Any) -> None:
        self._commands = proto
        self._maybe_register()

    def _subscriber_ready(self, proto: Any) -> None:
        proto.bus = self
        self._subscriber = proto
        self._maybe_register()

    def _lost(self, proto: Any) -> None:
        if proto is self._commands:
            self._commands = None
        elif proto is self._subscriber:
            self._subscriber = None
        else:
            return
        self._went_down("connection to redis lost")

    def _went_down(self, why: str) -> None:
        self._stop_heartbeat()
        was_up = self.up
        self.incarnation = ""
        self._registering = False
        if was_up or self._logged_up is not False:
            _log.warn("cluster node {node}: redis unreachable ({why})", node=self.node_id, why=why)
            self._logged_up = False
        if was_up and self.listener is not None:
            self.listener.bus_down()
        # Start again from both connections: drop the one still open.
        for proto in (self._commands, self._subscriber):
            if proto is not None and proto.transport is not None:
                proto.transport.loseConnection()

    def _maybe_register(self) -> None:
        commands, subscriber = self._commands, self._subscriber
        if commands is None or subscriber is None or self.up or self._registering:
            return
        self._registering = True
        epoch = secrets.token_hex(8)
        incarnation = f"{self.node_id}/{epoch}"

        def registered(_: object) -> None:
            if not self._registering or commands is not self._commands:
                return
            self._registering = False
            self.incarnation = incarnation
            _log.info(
                "cluster node {node}: redis reachable, incarnation {incarnation}",
                node=self.node_id,
                incarnation=incarnation,
            )
            self._logged_up = True
            self._heartbeat = self.clock.callLater(self.period, self._beat)
            if self.listener is not None:
                self.listener.bus_up()

        def failed(failure: Failure) -> None:
            if commands is self._commands:
                self._went_down(f"registering failed: {failure.getErrorMessage()}")

        subscribed = subscriber.subscribe(_channel(incarnation))
        subscribed.addCallback(
            lambda _: commands.eval(
                HEARTBEAT, [], [PREFIX, self.node_id, epoch, self._expiry_ms(), "1"]
            )
        )
        subscribed.addCallbacks(registered, failed)

    def _expiry_ms(self) -> int:
        return max(1, round(self.expiry * 1000))

    def _beat(self) -> None:
        self._heartbeat = None
        commands, incarnation = self._commands, self.incarnation
        if commands is None or not incarnation:
            return
        epoch = incarnation.rsplit("/", 1)[1]
        beat = commands.eval(HEARTBEAT, [], [PREFIX, self.node_id, epoch, self._expiry_ms(), "0"])

        def answered(alive: object) -> None:
            if incarnation != self.incarnation:
                return
            if alive != 1:
                # Our key expired (a stall longer than the expiry) or another
                # process took our node id: others have seen us die.
                self._went_down("this node's liveness key expired")
                return
            self._heartbeat = self.clock.callLater(self.period, self._beat)

        def failed(failure: Failure) -> None:
            if incarnation == self.incarnation:
                self._went_down(failure.getErrorMessage())

        beat.addCallbacks(answered, failed)

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = None

    # -- messages ------------------------------------------------------------

    def publish(self, incarnation: str, frames: list[Any]) -> None:
        commands = self._commands
        if commands is None or not self.up:
            return
        sent = commands.publish(_channel(incarnation), encode([self.incarnation, frames]))
        sent.addErrback(self._command_failed)

    def _received(self, message: object) -> None:
        if self.listener is None or not self.up:
            return
        try:
            sender, frames = decode(message)
        except (TypeError, ValueError):
            _log.warn("cluster: ignored a malformed bus message")
            return
        self.listener.bus_message(str(sender), frames)

    def _command_failed(self, failure: Failure) -> None:
        if self.up:
            self._went_down(failure.getErrorMessage())

    # -- claims ----------------------------------------------------------------

    def evaluate(self, script: str, args: list[Any]) -> Deferred[Any]:
        commands = self._commands
        if commands is None or not self.up:
            return _failed("redis unreachable")
        result: Deferred[Any] = commands.eval(script, [], [PREFIX, *args])
        return result

    def claim_lobby(self, name: str, max_lobbies: int) -> Deferred[str]:
        return self.evaluate(CLAIM, [self.incarnation, name, max_lobbies])

    def release_lobby(self, name: str) -> None:
        if self.up:
            self.evaluate(RELEASE, [self.incarnation, name]).addErrback(lambda _: None)

    def reclaim_lobbies(self, names: Iterable[str]) -> None:
        names = list(names)
        if names and self.up:
            self.evaluate(RECLAIM, [self.incarnation, *names]).addErrback(lambda _: None)

    def find_owner(self, name: str) -> Deferred[str | None]:
        return self.evaluate(FIND, [name]).addCallback(lambda owner: owner or None)

    def live(self, incarnations: Iterable[str]) -> Deferred[set[str]]:
        incarnations = list(incarnations)
        if not incarnations:
            return succeed(set())
        return self.evaluate(LIVE, incarnations).addCallback(lambda found: set(found or ()))

    def claim_peer_ids(self, ids: list[int]) -> Deferred[list[int]]:
        if not ids:
            return succeed([])
        claimed = self.evaluate(CLAIM_IDS, [self.incarnation, *ids])
        return claimed.addCallback(lambda got: [int(found) for found in got or ()])

    def release_peer_ids(self, ids: list[int]) -> None:
        if ids and self.up:
            self.evaluate(RELEASE_IDS, [self.incarnation, *ids]).addErrback(lambda _: None)


def _channel(incarnation: str) -> str:
    return f"{PREFIX}to:{incarnation}"


def _failed(why: str) -> Deferred[Any]:
    failed: Deferred[Any] = Deferred()
    failed.errback(ConnectionError(why))
    return failed
