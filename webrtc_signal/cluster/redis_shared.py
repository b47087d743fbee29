"""What the nodes share in Redis beyond claims and messages, as Lua scripts:
the quick-match lobby filling per pool key, the public lobby list, and the
live nodes (for the admin API). `SharedOnRedis` is mixed into `RedisBus`,
which runs the scripts (`RedisBus.evaluate`).

Keys (prefix ``webrtc-signal:``), beside those of `redis_bus`:

- ``pool:<mode>:<size>:<pool>``: the lobbies filling for that pool key, a
  sorted set in creation order (``pool:serial``); each one's ``seats:<name>``
  (its members, as its node last said), ``pending:<name>`` (the players the
  pool sent there that its node has not seen join yet, by peer id, each
  held for `HOLD_MS`) and ``poolof:<name>`` (its pool key). Its owner
  removes it when it seals or closes; a lobby whose owner is dead is
  dropped by the next match that meets it;
- ``list``: the listed lobbies, a sorted set scored by a cluster-wide
  creation number (``list:serial``), the order and cursor of ``GET /lobbies``;
- ``listed``: each listed lobby's summary: lines of its owner, members,
  size (0: none), mesh (1 or 0) and title (casefolded), then its JSON;
- ``listed:<node>/<epoch>``: the listed lobbies an incarnation owns, so
  that a dead one's entries are swept with its other keys.

A page of the list (`LIST_PAGE`) looks at no more than its scan budget of
entries and skips those of dead owners (swept with their other keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed

from ..protocol.lobby_list import ListQuery
from ..protocol.pools import PoolKey
from .bus import PoolMatch, decode

# Split "<node>/<epoch>" at its last slash (node ids may hold any text).
SPLIT = "local function split(inc) return string.match(inc, '^(.*)/([^/]*)$') end\n"
IS_LIVE = (
    "local function live(inc) local node, epoch = split(inc)\n"
    "  return node ~= nil and redis.call('GET', P..'alive:'..node) == epoch end\n"
)

# count_lobbies(): the lobbies of live incarnations; the keys of dead ones
# are removed on the way. claim(me, name, max): a lobby name claimed with
# SET NX, unless max lobbies are open cluster-wide ('ok', 'taken', 'full').
CLAIMING = (
    SPLIT
    + IS_LIVE
    + """
local function sweep(inc)
  for _, name in ipairs(redis.call('SMEMBERS', P..'lobbies:'..inc)) do
    if redis.call('GET', P..'lobby:'..name) == inc then
      redis.call('DEL', P..'lobby:'..name)
      local key = redis.call('GET', P..'poolof:'..name)
      if key then
        redis.call('ZREM', P..'pool:'..key, name)
        redis.call('DEL', P..'seats:'..name, P..'pending:'..name, P..'poolof:'..name)
      end
    end
  end
  redis.call('DEL', P..'lobbies:'..inc)
  for _, id in ipairs(redis.call('SMEMBERS', P..'peers:'..inc)) do
    if redis.call('GET', P..'peer:'..id) == inc then redis.call('DEL', P..'peer:'..id) end
  end
  redis.call('DEL', P..'peers:'..inc)
  for _, name in ipairs(redis.call('SMEMBERS', P..'listed:'..inc)) do
    local raw = redis.call('HGET', P..'listed', name)
    if raw and string.sub(raw, 1, #inc + 1) == inc..'\\n' then
      redis.call('HDEL', P..'listed', name)
      redis.call('ZREM', P..'list', name)
    end
  end
  redis.call('DEL', P..'listed:'..inc)
  redis.call('SREM', P..'incarnations', inc)
end
local function count_lobbies()
  local total = 0
  for _, inc in ipairs(redis.call('SMEMBERS', P..'incarnations')) do
    if live(inc) then total = total + redis.call('SCARD', P..'lobbies:'..inc) else sweep(inc) end
  end
  return total
end
local function claim(me, name, max)
  if count_lobbies() >= tonumber(max) then return 'full' end
  local key = P..'lobby:'..name
  local current = redis.call('GET', key)
  if current and not live(current) then redis.call('DEL', key) end
  if not redis.call('SET', key, me, 'NX') then return 'taken' end
  redis.call('SADD', P..'lobbies:'..me, name)
  return 'ok'
end
"""
)

# Milliseconds a seat the pool promised a player stays held for it without
# the lobby's node seeing it join (a player lost between the two, say).
HOLD_MS = 10_000
# Pool lobbies one match looks at, oldest first, before it creates one: a
# lobby whose seats are all held (players on their way) is passed over,
# until it seals or a hold runs out. A burst of more than this many lobbies'
# worth of players within one round trip makes extra lobbies meanwhile.
LOOK = 64

# forget(pool, name): a pool lobby that is gone (or sealed) leaves its pool.
FORGET = """
local function forget(pool, name)
  redis.call('ZREM', pool, name)
  redis.call('DEL', P..'seats:'..name, P..'pending:'..name, P..'poolof:'..name)
end
"""

# ARGV: prefix, me, pool key, size, fresh name, max lobbies, peer id, stale
# name. The oldest lobby of the pool key with a seat left (its members, as
# its node last said, plus the seats held for players on their way), if its
# owner is alive: a seat is held for the peer, {'join', name, owner}; else
# the fresh name claimed for the caller and made the pool's: {'ok', name,
# me}; or {'full'|'taken', '', ''}. One script, so no seat is promised
# twice and two nodes never both create. ``stale``: a lobby a retry found
# sealed, which the pool forgets.
MATCH = (
    "local P = ARGV[1]\n"
    + CLAIMING
    + FORGET
    + f"local HOLD, LOOK = {HOLD_MS}, {LOOK}\n"
    + """
local key, size, peer = ARGV[3], tonumber(ARGV[4]), ARGV[7]
local pool = P..'pool:'..key
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if ARGV[8] ~= '' then forget(pool, ARGV[8]) end
for _, name in ipairs(redis.call('ZRANGE', pool, 0, LOOK - 1)) do
  local owner = redis.call('GET', P..'lobby:'..name)
  if not owner or not live(owner) then
    forget(pool, name)
  else
    local pending = P..'pending:'..name
    redis.call('ZREMRANGEBYSCORE', pending, '-inf', now - HOLD)
    local taken = tonumber(redis.call('GET', P..'seats:'..name) or '0')
    taken = taken + redis.call('ZCARD', pending)
    if taken < size or redis.call('ZSCORE', pending, peer) then
      redis.call('ZADD', pending, now, peer)
      redis.call('PEXPIRE', pending, 2 * HOLD)
      return {'join', name, owner}
    end
  end
end
local claimed = claim(ARGV[2], ARGV[5], ARGV[6])
if claimed ~= 'ok' then return {claimed, '', ''} end
redis.call('ZADD', pool, redis.call('INCR', P..'pool:serial'), ARGV[5])
redis.call('SET', P..'poolof:'..ARGV[5], key)
redis.call('ZADD', P..'pending:'..ARGV[5], now, peer)
redis.call('PEXPIRE', P..'pending:'..ARGV[5], 2 * HOLD)
return {'ok', ARGV[5], ARGV[2]}
"""
)

# ARGV: prefix, pool key, name: the lobby sealed or closed; its pool forgets it.
UNPOOL = "local P = ARGV[1]\n" + FORGET + "forget(P..'pool:'..ARGV[2], ARGV[3])\nreturn 1\n"

# ARGV: prefix, name, peer id: the seat held for that peer is not needed.
UNSEAT = "redis.call('ZREM', ARGV[1]..'pending:'..ARGV[2], ARGV[3]) return 1"

# ARGV: prefix, (name, members, count, peer ids * count)...: the members of
# pool lobbies this node runs, and the peers now seated (no longer held for).
SEATS = """
local P, i = ARGV[1], 2
while i <= #ARGV do
  local name, count = ARGV[i], tonumber(ARGV[i + 2])
  if redis.call('EXISTS', P..'poolof:'..name) == 1 then
    redis.call('SET', P..'seats:'..name, ARGV[i + 1])
    for j = i + 3, i + 2 + count do redis.call('ZREM', P..'pending:'..name, ARGV[j]) end
  end
  i = i + 3 + count
end
return 1
"""

# ARGV: prefix, (pool key, name, members)...: after a reconnection, the pool
# lobbies this node fills.
REPOOL = """
local P = ARGV[1]
for i = 2, #ARGV, 3 do
  local key, name = ARGV[i], ARGV[i + 1]
  if not redis.call('ZSCORE', P..'pool:'..key, name) then
    redis.call('ZADD', P..'pool:'..key, redis.call('INCR', P..'pool:serial'), name)
  end
  redis.call('SET', P..'poolof:'..name, key)
  redis.call('SET', P..'seats:'..name, ARGV[i + 2])
end
return 1
"""

# ARGV: prefix, me, count, (name, summary) * count, removed names... Each
# summary is kept behind its owner's line (see `LIST_PAGE`).
LIST_UPDATE = """
local P, me = ARGV[1], ARGV[2]
local last = 3 + 2 * tonumber(ARGV[3])
for i = 4, last, 2 do
  local name = ARGV[i]
  if not redis.call('ZSCORE', P..'list', name) then
    redis.call('ZADD', P..'list', redis.call('INCR', P..'list:serial'), name)
  end
  redis.call('HSET', P..'listed', name, me..'\\n'..ARGV[i + 1])
  redis.call('SADD', P..'listed:'..me, name)
end
for i = last + 1, #ARGV do
  local name = ARGV[i]
  local raw = redis.call('HGET', P..'listed', name)
  if raw and string.sub(raw, 1, #me + 1) == me..'\\n' then
    redis.call('HDEL', P..'listed', name)
    redis.call('ZREM', P..'list', name)
  end
  redis.call('SREM', P..'listed:'..me, name)
end
return 1
"""

# ARGV: prefix, cursor ('' = from the newest), limit, text (casefolded; ''
# = any), mode ('' = any, 'mesh', 'client-server'), scan budget. Answers
# {next cursor or false, JSON of each lobby shown...}, newest first, as
# `LobbyList.page` would. Each batch of entries is one HMGET, and each entry
# one pattern match (its filter fields lead its summary): Redis, which every
# node's relays go through, never decodes JSON here.
LIST_PAGE = (
    "local P = ARGV[1]\n"
    + SPLIT
    + IS_LIVE
    + """
local list, listed = P..'list', P..'listed'
local limit, budget, text, mode = tonumber(ARGV[3]), tonumber(ARGV[6]), ARGV[4], ARGV[5]
local top = '+inf'
if ARGV[2] ~= '' then top = '('..ARGV[2] end
local alive, found, shown = {}, {}, false
local function wanted(owner, members, size, mesh, title)
  if alive[owner] == nil then alive[owner] = live(owner) end
  return alive[owner] and (mode == '' or (mesh == '1') == (mode == 'mesh'))
    and (size == '0' or tonumber(members) < tonumber(size))
    and (text == '' or string.find(title, text, 1, true) ~= nil)
end
while budget > 0 do
  local batch = redis.call(
    'ZREVRANGEBYSCORE', list, top, '-inf', 'WITHSCORES', 'LIMIT', 0, math.min(budget, 200))
  if #batch == 0 then return {false, unpack(found)} end
  local names = {}
  for i = 1, #batch, 2 do names[#names + 1] = batch[i] end
  local summaries = redis.call('HMGET', listed, unpack(names))
  for j = 1, #names do
    local score, raw = batch[2 * j], summaries[j]
    budget = budget - 1
    top = '('..score
    if raw then
      local owner, members, size, mesh, title, at =
        string.match(raw, '^([^\\n]*)\\n(%d+)\\n(%d+)\\n(%d)\\n([^\\n]*)\\n()')
      if owner and wanted(owner, members, size, mesh, title) then
        if #found == limit then return {shown, unpack(found)} end
        found[#found + 1] = string.sub(raw, at)
        shown = score
      end
    end
  end
end
if #redis.call('ZREVRANGEBYSCORE', list, top, '-inf', 'LIMIT', 0, 1) == 0 then
  return {false, unpack(found)}
end
return {string.sub(top, 2), unpack(found)}
"""
)

# ARGV: prefix. Every live incarnation.
NODES = (
    "local P = ARGV[1]\n"
    + SPLIT
    + IS_LIVE
    + """
local found = {}
for _, inc in ipairs(redis.call('SMEMBERS', P..'incarnations')) do
  if live(inc) then found[#found + 1] = inc end
end
return found
"""
)


def pool_name(key: PoolKey) -> str:
    """A pool key as Redis names it (a pool holds no ':')."""
    return f"{key.mode}:{key.size}:{key.pool}"


class SharedOnRedis:
    """The `Bus` methods on shared lobby state, for `RedisBus`."""

    incarnation: str

    def evaluate(self, script: str, args: list[Any]) -> Deferred[Any]:
        """Run ``script`` with ARGV = [prefix, *args] (`RedisBus` does)."""
        raise NotImplementedError

    def match_pool(
        self, key: PoolKey, fresh: str, max_lobbies: int, peer_id: int, stale: str = ""
    ) -> Deferred[PoolMatch]:
        args = [self.incarnation, pool_name(key), key.size, fresh, max_lobbies, peer_id, stale]
        return self.evaluate(MATCH, args).addCallback(lambda found: PoolMatch(*found))

    def unseat(self, name: str, peer_id: int) -> None:
        if self.incarnation:
            self.evaluate(UNSEAT, [name, peer_id]).addErrback(lambda _: None)

    def count_seats(self, members: Mapping[str, int], seated: Mapping[str, list[int]]) -> None:
        if not members or not self.incarnation:
            return
        args: list[Any] = []
        for name, count in members.items():
            peers = seated.get(name, [])
            args += [name, count, len(peers), *peers]
        self.evaluate(SEATS, args).addErrback(lambda _: None)

    def unpool(self, key: PoolKey, name: str) -> None:
        if self.incarnation:
            self.evaluate(UNPOOL, [pool_name(key), name]).addErrback(lambda _: None)

    def repool(self, filling: Mapping[str, tuple[PoolKey, int]]) -> None:
        if filling and self.incarnation:
            args: list[Any] = []
            for name, (key, members) in filling.items():
                args += [pool_name(key), name, members]
            self.evaluate(REPOOL, args).addErrback(lambda _: None)

    def update_list(self, summaries: Mapping[str, str], removed: Iterable[str]) -> None:
        if not self.incarnation:
            return
        args: list[Any] = [self.incarnation, len(summaries)]
        for name, summary in summaries.items():
            args += [name, summary]
        args += removed
        self.evaluate(LIST_UPDATE, args).addErrback(lambda _: None)

    def list_page(self, query: ListQuery, scan: int) -> Deferred[tuple[str | None, list[Any]]]:
        cursor = "" if query.cursor is None else str(query.cursor)
        args = [cursor, query.limit, query.text.casefold(), query.mode or "", scan]
        answer = self.evaluate(LIST_PAGE, args)
        return answer.addCallback(lambda found: (found[0], [decode(raw) for raw in found[1:]]))

    def nodes(self) -> Deferred[set[str]]:
        if not self.incarnation:
            return succeed(set())
        return self.evaluate(NODES, []).addCallback(lambda found: set(found or ()))
