"""Abuse limits as pure rules: token buckets and per-address counters.

Nothing here reads a clock or touches a socket. Time enters as a number of
seconds (``now``) that the adapter reads from its injected ``IReactorTime``,
so every rule can be tested by handing it numbers. A limit of 0 means "off"
throughout (see docs/security.md): a load generator on one address stands in
for thousands of players, and an operator behind a single NAT may want that.
"""

from __future__ import annotations

import math
from collections import Counter

# Lobbies one address may create at once before --max-lobby-rate applies.
# Ten covers a LAN party's players all hosting at the same moment behind one
# NAT; the rate then refills the bucket.
LOBBY_BURST = 10
# Keepalive answers are cheap, but each still costs a frame parse and a write:
# a client may send this many pings in a burst, then PING_RATE per second.
# Browsers never send pings; Godot and libraries send one per interval.
PING_RATE = 10.0
PING_BURST = 20
# Fragments one message may arrive in. Browsers and Godot send a message in
# one frame; libraries fragment at 4 KiB or more, so a 64 KiB message needs 16.
MAX_FRAGMENTS = 64


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full.

    A rate of 0 turns the bucket off: `take` always succeeds."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens if there are as many; False when there are
        not (and nothing is spent)."""
        # Every relayed message passes two of these (messages and bytes):
        # plain arithmetic, no call, half the cost of min().
        rate = self.rate
        if rate <= 0:
            return True
        tokens = self._tokens
        elapsed = now - self._last
        if elapsed > 0:
            # A clock that goes backwards (it should not) refills nothing,
            # then or later.
            tokens += elapsed * rate
            if tokens > self.burst:
                tokens = self.burst
            self._last = now
        if tokens >= amount:
            self._tokens = tokens - amount
            return True
        self._tokens = tokens
        return False

    def full(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (it can be forgotten)."""
        return self._tokens + max(0.0, now - self._last) * self.rate >= self.burst


class MessageRate:
    """A connection's messages and their bytes: two token buckets (``message_rate``
    messages and ``byte_rate`` bytes per second, holding at most their
    burst), refilled from one clock reading. A rate of 0 turns its bucket
    off. Every message a client sends passes here: one call and a few
    additions, where two buckets cost twice that."""

    __slots__ = (
        "_bytes",
        "_last",
        "_messages",
        "byte_burst",
        "byte_rate",
        "message_burst",
        "message_rate",
    )

    def __init__(
        self,
        message_rate: float,
        message_burst: float,
        byte_rate: float,
        byte_burst: float,
        now: float = 0.0,
    ) -> None:
        # A bucket that is off is bottomless: no branch on every message.
        self.message_rate = float(message_rate) if message_rate > 0 else 0.0
        self.message_burst = float(message_burst) if message_rate > 0 else math.inf
        self.byte_rate = float(byte_rate) if byte_rate > 0 else 0.0
        self.byte_burst = float(byte_burst) if byte_rate > 0 else math.inf
        self._messages = self.message_burst
        self._bytes = self.byte_burst
        self._last = now

    def take(self, now: float, size: int) -> bool:
        """Spend one message and ``size`` bytes if both buckets hold as much;
        False when either does not (and nothing is spent)."""
        messages = self._messages
        stock = self._bytes
        elapsed = now - self._last
        if elapsed > 0:
            # A clock that goes backwards (it should not) refills nothing.
            self._last = now
            messages += elapsed * self.message_rate
            if messages > self.message_burst:
                messages = self.message_burst
            stock += elapsed * self.byte_rate
            if stock > self.byte_burst:
                stock = self.byte_burst
        if messages >= 1 and stock >= size:
            self._messages = messages - 1
            self._bytes = stock - size
            return True
        self._messages = messages
        self._bytes = stock
        return False


class AddressCounter:
    """How many of something (connections, lobbies) each address holds,
    against a per-address ``limit`` (0 = no limit)."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: Counter[str] = Counter()

    def acquire(self, address: str) -> bool:
        """Count one more for ``address``, unless it is at the limit."""
        count = self._counts[address]
        if self.limit and count >= self.limit:
            return False
        self._counts[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._counts.get(address, 0)
        if count <= 1:
            self._counts.pop(address, None)
        else:
            self._counts[address] = count - 1

    def __getitem__(self, address: str) -> int:
        return self._counts.get(address, 0)

    def __len__(self) -> int:
        """How many addresses hold at least one (memory stays bounded by use)."""
        return len(self._counts)


class LobbyLimits:
    """Per-address lobby rules: how many open lobbies (``max_open``) and how
    fast new ones (``rate`` per second after a burst of `LOBBY_BURST`)."""

    __slots__ = ("_buckets", "_sweep_at", "open", "rate")

    # Seconds between sweeps of buckets that have refilled (and so hold no
    # state worth keeping): memory stays bounded by recently active addresses.
    SWEEP_INTERVAL = 60.0

    def __init__(self, max_open: int, rate: float) -> None:
        self.open = AddressCounter(max_open)
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = 0.0

    def may_create(self, address: str, now: float) -> bool:
        """Whether ``address`` may open one more lobby now; if so, it is counted.
        An unknown address ("") is not limited: it is no one address."""
        if not address:
            return True
        if self.open.limit and self.open[address] >= self.open.limit:
            return False
        if self.rate > 0:
            self._sweep(now)
            bucket = self._buckets.get(address)
            if bucket is None:
                bucket = self._buckets[address] = TokenBucket(self.rate, LOBBY_BURST, now)
            if not bucket.take(now):
                return False
        return self.open.acquire(address)

    def closed(self, address: str) -> None:
        """A lobby ``address`` created is gone."""
        if address:
            self.open.release(address)

    def _sweep(self, now: float) -> None:
        if now < self._sweep_at:
            return
        self._sweep_at = now + self.SWEEP_INTERVAL
        for address in [a for a, b in self._buckets.items() if b.full(now)]:
            del self._buckets[address]


# Requests of the lobby list one address may make at once before
# --max-list-rate applies: a page that loads the list and a few more pages
# of it, or several players behind one NAT opening the browser together.
LIST_BURST = 20
# Addresses whose request rate is remembered at once; a new one past it is
# refused until the sweep forgets some (a flood from many addresses cannot
# grow the map without end).
MAX_RATE_ADDRESSES = 65536


class AddressRates:
    """A `TokenBucket` per address: ``rate`` requests per second after a
    burst of ``burst``; a rate of 0 turns it off.

    Memory is bounded twice: buckets that have refilled hold nothing worth
    keeping and are forgotten at each sweep (every ``sweep_interval``
    seconds, or at once when the map is full, at most once a second), and
    at most ``max_addresses`` are held: a new address past that is refused."""

    __slots__ = ("_buckets", "_sweep_at", "_swept_at", "burst", "max_addresses", "rate")

    SWEEP_INTERVAL = 10.0

    def __init__(self, rate: float, burst: float, max_addresses: int = MAX_RATE_ADDRESSES) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = 0.0
        self._swept_at = float("-inf")

    def allow(self, address: str, now: float) -> bool:
        """Whether ``address`` may make one more request now (if so, it is counted)."""
        if self.rate <= 0:
            return True
        if now >= self._sweep_at:
            self._sweep(now)
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses and now - self._swept_at >= 1.0:
                self._sweep(now)
            if len(self._buckets) >= self.max_addresses:
                return False
            bucket = self._buckets[address] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self, now: float) -> None:
        self._sweep_at = now + self.SWEEP_INTERVAL
        self._swept_at = now
        for address in [a for a, b in self._buckets.items() if b.full(now)]:
            del self._buckets[address]
