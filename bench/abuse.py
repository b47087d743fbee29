#!/usr/bin/env python3
"""Abuse scenarios: ours at its defaults, beside an older build of ours
(--baseline DIR: its own DIR/.venv, run from DIR) and the Node reference.

    python bench/abuse.py [--ref PATH/TO/server_node] [--baseline DIR]
                          [--scenarios handshakes,byte-flood,log-storm] [--out results.jsonl]

Every scenario starts every server afresh, pinned to one core, and the
clients of this process run on the other. Addresses: the attackers connect
from 127.0.0.2-5, the players they should not hurt from 127.0.0.3 or 127.0.0.6.

- handshakes: 5,000 TCP connections from 127.0.0.2 that never finish the
  upgrade (every other one sends half a request, the rest nothing), then 20
  upgrades one after another from 127.0.0.3, each timed: how many succeed
  (within 5 s) and the slowest.
- byte-flood: 40 connections from 127.0.0.2-5, in lobbies of 2, each
  relaying messages of the largest size the server takes, as fast as the
  server takes them but under its message-rate limit, for 7 s, while a
  canary lobby from 127.0.0.6 relays one small message every 12.5 ms (or as
  soon as the previous one arrived), host and guest taking turns (40 msg/s
  each, under the default rate): MB relayed in all and per connection, the
  canary's p50/p99/max delay.
- log-storm: for 12 s, 127.0.0.2 (holding all but one of the connections
  --max-peers-per-address allows it) opens connections past the limit as
  fast as it can, and keeps making other refusals with the one left (a JOIN
  of a lobby that does not exist, a lobby over its creation rate, a
  malformed message): the lines and bytes the server logs in those 12 s.
  Ours runs with its log on stdout, into a file of its own.
- slow-consumer, endless-upgrades, ping-burst, fragment-pile: the earlier
  scenarios (peak RSS with a guest that never reads; RSS growth from 50
  upgrade requests whose headers never end; a canary's worst delay during
  10,000 pings and during a message of 60,000 fragments).

Ours and the baseline run with their defaults: the limits are what is
measured. What a build's limits are is read from its `--help`, so a build
without an option (an older one) runs, and is reported, without it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import run
from wsraw import Client, RefusedUpgrade, frame, lobby_pair, upgrade_request

JOIN, PEER_CONNECT, OFFER, CANDIDATE = 0, 2, 4, 6
ATTACKER = "127.0.0.2"
FLOOD_ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
PLAYER = "127.0.0.3"
CANARY = "127.0.0.6"


@dataclass
class Target:
    """A started server, where its output goes, and the options (with
    defaults) its --help lists: None for the reference, which has none."""

    running: run.Running
    log: Path
    options: dict[str, str | None] | None

    @property
    def port(self) -> int:
        return self.running.port

    @property
    def pid(self) -> int:
        return self.running.pid

    def option(self, name: str, fallback: float) -> float:
        """An option's default, or `fallback` where the build has no such option."""
        if self.options is None or self.options.get(name) is None:
            return fallback
        return float(str(self.options[name]))

    def has(self, name: str) -> bool:
        return self.options is not None and name in self.options


# -- measuring -----------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_descriptors(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def raise_descriptor_limit() -> int:
    """Raise this process's (and so its servers') descriptor limit to the
    hard limit: the handshake scenario holds 5,000 sockets."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- handshakes that never finish ---------------------------------------------------

HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


def settled_descriptors(pid: int, expected: int, within: float = 5.0) -> int:
    """The server's open descriptors once it holds `expected` more than
    its few own, or once the count has not moved for half a second (bounded)."""
    deadline = time.monotonic() + within
    count = open_descriptors(pid)
    steady_since = time.monotonic()
    while time.monotonic() < deadline and count < expected:
        time.sleep(0.05)
        now = open_descriptors(pid)
        if now != count:
            count, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 0.5:
            break
    return count


def unfinished_handshakes(
    target: Target,
    count: int = 5000,
    upgrades: int = 20,
    open_within: float = 30.0,
    upgrade_timeout: float = 5.0,
) -> dict[str, Any]:
    held: list[socket.socket] = []
    established = refused = 0
    selector = selectors.DefaultSelector()
    try:
        for index in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((ATTACKER, 0))
            sock.connect_ex(("127.0.0.1", target.port))
            held.append(sock)
            selector.register(sock, selectors.EVENT_WRITE, index)
        began = time.monotonic()
        deadline = began + open_within
        waiting = count
        while waiting and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                connected = held[key.data]
                selector.unregister(connected)
                waiting -= 1
                if connected.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    refused += 1
                    continue
                established += 1
                if key.data % 2:
                    with contextlib.suppress(OSError):
                        connected.send(HALF_REQUEST)
        opened_in = time.monotonic() - began
        # The attack is in place once the server has taken the connections
        # in (or stopped taking more): its descriptor count stops growing.
        server_descriptors = settled_descriptors(target.pid, established)
        times: list[float] = []
        failures: list[str] = []
        for _ in range(upgrades):
            began = time.monotonic()
            try:
                Client(target.port, timeout=upgrade_timeout, source=PLAYER).close()
                times.append(time.monotonic() - began)
            except (OSError, ConnectionError) as error:
                failures.append(str(error) or type(error).__name__)
    finally:
        selector.close()
        for sock in held:
            sock.close()
    return {
        "attempted": count,
        "established": established,
        "refusedAtConnect": refused,
        "stillConnecting": count - established - refused,
        "openS": opened_in,
        "serverDescriptors": server_descriptors,
        "upgrades": upgrades,
        "upgraded": len(times),
        "slowestS": max(times) if times else None,
        "medianS": statistics.median(times) if times else None,
        "failures": sorted(set(failures)),
    }


def show_handshakes(figures: dict[str, Any]) -> str:
    slowest = "-" if figures["slowestS"] is None else f"{figures['slowestS']:.3f} s"
    failed = f"; failed: {', '.join(figures['failures'])}" if figures["failures"] else ""
    return (
        f"{figures['upgraded']} of {figures['upgrades']} upgraded, slowest {slowest}{failed} "
        f"({figures['established']} of {figures['attempted']} attack connections established "
        f"in {figures['openS']:.1f} s, server then holding {figures['serverDescriptors']} "
        "descriptors)"
    )


# -- byte flood ------------------------------------------------------------------------


def canary_process(
    port: int, every: float, ready: Any, stop: Any, results: multiprocessing.connection.Connection
) -> None:
    """A lobby of two from its own address, one small message every `every`
    seconds, each timed from send to receipt; runs in a process of its own
    so that the flood's Python work never delays its readings."""
    samples: list[tuple[float, float]] = []
    error = ""
    try:
        host, guest, guest_id, _ = lobby_pair(port, source=CANARY)
        ready.set()
        tick = time.monotonic()
        sequence = 0
        while not stop.is_set():
            # Host and guest take turns, so that each stays under the
            # default message rate (50/s) like a well-behaved player.
            sender, receiver, to = (
                (host, guest, guest_id) if sequence % 2 == 0 else (guest, host, 1)
            )
            sent = time.monotonic()
            sender.send(CANDIDATE, to, str(sequence))
            while receiver.expect(CANDIDATE)["data"] != str(sequence):
                pass  # a late answer to an earlier one
            samples.append((sent, time.monotonic() - sent))
            sequence += 1
            tick += every
            time.sleep(max(0.0, tick - time.monotonic()))
        host.close()
        guest.close()
    except (OSError, ConnectionError) as failure:
        error = str(failure) or type(failure).__name__
    finally:
        ready.set()
        results.send((samples, error))
        results.close()


class FloodStream:
    """One flooding connection: its frame to resend, a token bucket that
    keeps it under the server's message-rate limit, and a running parse of
    what it receives (frames are counted, never kept)."""

    def __init__(self, client: Client, message: bytes, rate: float, burst: float) -> None:
        self.sock = client.sock
        self.sock.setblocking(False)
        self.frame = memoryview(frame(message))
        self.sent_at = len(self.frame)  # nothing in progress
        self.rate, self.tokens, self.burst = rate, burst, burst
        self.refilled = time.monotonic()
        self.pending = bytearray(client.buffer)
        self.received_bytes = 0
        self.received_messages = 0
        self.closed = ""

    def may_send(self, now: float) -> bool:
        if self.sent_at < len(self.frame):
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        return self.tokens >= 1

    def write(self, now: float) -> None:
        if self.sent_at >= len(self.frame):
            self.tokens -= 1
            self.sent_at = 0
        with contextlib.suppress(BlockingIOError):
            self.sent_at += self.sock.send(self.frame[self.sent_at :])

    def read(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("closed without a close frame")
        self.pending += data
        while len(self.pending) >= 2:
            size, at = self.pending[1] & 0x7F, 2
            if size == 126:
                if len(self.pending) < 4:
                    return
                size, at = struct.unpack_from("!H", self.pending, 2)[0], 4
            elif size == 127:
                if len(self.pending) < 10:
                    return
                size, at = struct.unpack_from("!Q", self.pending, 2)[0], 10
            if len(self.pending) < at + size:
                return
            opcode = self.pending[0] & 0x0F
            if opcode == 8:
                code = struct.unpack_from("!H", self.pending, at)[0] if size >= 2 else 1005
                reason = bytes(self.pending[at + 2 : at + size]).decode(errors="replace")
                raise ConnectionError(f"{code} {reason}".strip())
            if opcode == 1:
                self.received_messages += 1
                self.received_bytes += size
            del self.pending[: at + size]


def largest(destination: int, size: int) -> bytes:
    """A CANDIDATE message for `destination` of exactly `size` bytes."""
    envelope = json.dumps({"type": CANDIDATE, "id": destination, "data": ""})
    return json.dumps(
        {"type": CANDIDATE, "id": destination, "data": "x" * (size - len(envelope))}
    ).encode()


def byte_flood(
    target: Target, connections: int = 40, seconds: float = 7.0, canary_every: float = 0.0125
) -> dict[str, Any]:
    size = int(target.option("max-message-size", 65536))
    # Under the message-rate limit with a margin, since the server counts
    # arrivals, which bunch when it reads late.
    rate = target.option("max-message-rate", 50) * 0.9
    burst = target.option("max-message-burst", 200) * 0.9
    context = multiprocessing.get_context("fork")
    ready, stop = context.Event(), context.Event()
    receive, send = context.Pipe(duplex=False)
    canary = context.Process(
        target=canary_process, args=(target.port, canary_every, ready, stop, send), daemon=True
    )
    canary.start()
    send.close()
    streams: list[FloodStream] = []
    partner: dict[int, int] = {}  # receiving stream -> sending stream
    try:
        for index in range(connections // 2):
            source = FLOOD_ADDRESSES[index % len(FLOOD_ADDRESSES)]
            host, guest, guest_id, _ = lobby_pair(target.port, source=source)
            streams.append(FloodStream(host, largest(guest_id, size), rate, burst))
            streams.append(FloodStream(guest, largest(1, size), rate, burst))
            partner[len(streams) - 1], partner[len(streams) - 2] = (
                len(streams) - 2,
                len(streams) - 1,
            )
        if not ready.wait(30):
            raise RuntimeError("the canary lobby was not set up within 30 s")
        selector = selectors.DefaultSelector()
        for index, stream in enumerate(streams):
            selector.register(stream.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, index)
        began = time.monotonic()
        client_cpu, server_cpu = time.process_time(), process_cpu_s(target.pid)
        ends = began + seconds
        while (now := time.monotonic()) < ends:
            for key, events in selector.select(timeout=0.005):
                stream = streams[key.data]
                try:
                    if events & selectors.EVENT_READ:
                        stream.read()
                    if events & selectors.EVENT_WRITE and stream.may_send(now):
                        stream.write(now)
                except (OSError, ConnectionError) as error:
                    stream.closed = str(error) or type(error).__name__
                    selector.unregister(stream.sock)
            # A stream out of tokens waits without spinning on writability.
            for index, stream in enumerate(streams):
                if stream.closed:
                    continue
                wanted = selectors.EVENT_READ
                if stream.may_send(now):
                    wanted |= selectors.EVENT_WRITE
                if selector.get_key(stream.sock).events != wanted:
                    selector.modify(stream.sock, wanted, index)
        elapsed = time.monotonic() - began
        client_util = (time.process_time() - client_cpu) / elapsed
        server_util = (process_cpu_s(target.pid) - server_cpu) / elapsed
        selector.close()
    finally:
        stop.set()
        for stream in streams:
            stream.sock.close()
    samples, canary_error = receive.recv() if receive.poll(30) else ([], "no answer")
    canary.join(10)
    delays = [delay * 1000 for sent, delay in samples if began <= sent < began + elapsed]
    moved = [streams[partner[i]].received_bytes for i in range(len(streams))]
    closes: dict[str, int] = {}
    for stream in streams:
        if stream.closed:
            closes[stream.closed] = closes.get(stream.closed, 0) + 1
    bound = None
    if target.has("max-byte-rate"):
        bound = target.option("max-byte-rate", 0) * seconds + target.option("max-byte-burst", 0)
    return {
        "seconds": elapsed,
        "messageBytes": size,
        "totalMB": sum(moved) / 1e6,
        "perConnectionMaxMB": max(moved) / 1e6,
        "perConnectionMedianMB": statistics.median(moved) / 1e6,
        "perConnectionBoundMB": bound / 1e6 if bound else None,
        "closedByServer": closes,
        "canarySamples": len(delays),
        "canaryP50Ms": quantile(delays, 0.5),
        "canaryP99Ms": quantile(delays, 0.99),
        "canaryMaxMs": max(delays, default=float("nan")),
        "canaryError": canary_error,
        # Which side was the bottleneck: near 1 core, that side was saturated.
        "serverUtil": server_util,
        "floodClientUtil": client_util,
    }


def show_byte_flood(figures: dict[str, Any]) -> str:
    bound = figures["perConnectionBoundMB"]
    within = "" if bound is None else f" (bound {bound:.2f})"
    closes = ", ".join(f"{n} x {why}" for why, n in figures["closedByServer"].items())
    canary = (
        f"canary p50 {figures['canaryP50Ms']:.1f} / p99 {figures['canaryP99Ms']:.1f} / "
        f"max {figures['canaryMaxMs']:.1f} ms"
    )
    if figures["canaryError"]:
        canary += f" (canary: {figures['canaryError']})"
    canary += (
        f"; CPU use: server {figures['serverUtil']:.2f}, "
        f"flood clients {figures['floodClientUtil']:.2f} cores"
    )
    return (
        f"{figures['totalMB']:.0f} MB in {figures['seconds']:.1f} s, per connection max "
        f"{figures['perConnectionMaxMB']:.2f} MB{within}, median "
        f"{figures['perConnectionMedianMB']:.2f}; {canary}"
        + (f"; closed: {closes}" if closes else "")
    )


# -- refusal log storm ---------------------------------------------------------------------


def log_size(path: Path) -> tuple[int, int]:
    """(lines, bytes) of a log file."""
    data = path.read_bytes() if path.exists() else b""
    return data.count(b"\n"), len(data)


def refusal(port: int, kind: str) -> str:
    """One connection that gets refused in the way `kind` names; the answer."""
    try:
        client = Client(port, timeout=5, source=ATTACKER)
    except RefusedUpgrade as refused:
        return refused.status  # the slot was taken meanwhile: over the limit too
    try:
        if kind == "unknown lobby":
            client.send(JOIN, 0, "NoSuchLobbyNoSuchLobby")
        elif kind == "new lobby":
            client.send(JOIN, 0, "")
        else:
            client.sock.sendall(frame(b"not json"))
        while client.message()["type"] != JOIN:
            pass
        return "joined"  # not refused: the limit had room
    except ConnectionError as closed:
        return str(closed)
    finally:
        client.close()


def over_the_limit(port: int) -> str:
    """One upgrade request past the per-address limit; the answer's status."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0)
    ) as sock:
        sock.sendall(upgrade_request(port))
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                return "closed"
            answer += data
        status = answer.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 2)
        return status[1] if len(status) > 1 else "no status"


def log_storm(target: Target, seconds: float = 12.0, workers: int = 3) -> dict[str, Any]:
    limit = int(target.option("max-peers-per-address", 256))
    held: list[Client] = []
    answers: dict[str, int] = {}
    lock = threading.Lock()
    try:
        # Fill the address's quota, every connection in a lobby so that
        # none is closed for not joining. Few lobbies: creating them is
        # rate-limited per address too.
        lobbies: list[str] = []
        while len(held) < limit:
            client = Client(target.port, source=ATTACKER)
            held.append(client)
            if len(lobbies) < 5:
                client.send(JOIN, 0, "")
                lobbies.append(client.expect(JOIN)["data"])
            else:
                client.send(JOIN, 0, lobbies[len(held) % len(lobbies)])
                client.expect(JOIN)
        before = log_size(target.log)
        began = time.monotonic()
        ends = began + seconds
        # The quota full: the first attempt past it is refused for sure;
        # then one slot is freed for the other refusals.
        first = over_the_limit(target.port)
        answers[first] = 1
        held.pop().close()

        def attack(make: Callable[[int], str]) -> None:
            for attempt in range(1_000_000):  # bounded; the clock ends it first
                if time.monotonic() >= ends:
                    return
                try:
                    answer = make(attempt)
                except (OSError, ConnectionError) as error:
                    answer = str(error) or type(error).__name__
                with lock:
                    answers[answer] = answers.get(answer, 0) + 1

        kinds = ["unknown lobby", "new lobby", "malformed"]
        threads = [
            threading.Thread(
                target=attack, args=(lambda n: refusal(target.port, kinds[n % len(kinds)]),)
            )
        ] + [
            threading.Thread(target=attack, args=(lambda _: over_the_limit(target.port),))
            for _ in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 30)
        after = log_size(target.log)
        elapsed = time.monotonic() - began
    finally:
        for client in held:
            client.close()
    lines, written = after[0] - before[0], after[1] - before[1]
    return {
        "seconds": elapsed,
        "heldConnections": len(held),
        "attempts": sum(answers.values()),
        "answers": dict(sorted(answers.items(), key=lambda item: -item[1])),
        "logLines": lines,
        "logBytes": written,
        "logLinesPerS": lines / elapsed,
        # How fast the attacker gets through depends on the machine; what
        # each refusal costs in log does not.
        "logLinesPerAttempt": lines / max(1, sum(answers.values())),
        "logBytesPerS": written / elapsed,
    }


def show_log_storm(figures: dict[str, Any]) -> str:
    top = ", ".join(f"{answer} x{n}" for answer, n in list(figures["answers"].items())[:4])
    return (
        f"{figures['logLines']} lines, {figures['logBytes'] / 1024:.0f} KB in "
        f"{figures['seconds']:.0f} s ({figures['logLinesPerS']:.0f} lines/s) from "
        f"{figures['attempts']} attempts, {figures['logLinesPerAttempt']:.2f} lines each ({top})"
    )


# -- the earlier scenarios --------------------------------------------------------------------


def slow_consumer(target: Target, seconds: float) -> dict[str, Any]:
    port, pid = target.port, target.pid
    peak = rss_mib(pid)
    deadline = time.monotonic() + seconds
    offer = "x" * 60_000
    pairs = 0
    while time.monotonic() < deadline:
        host, guest, guest_id, _ = lobby_pair(port)
        guest.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        pairs += 1
        stop = threading.Event()

        def drain(client: Client = host, stop: threading.Event = stop) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while not stop.is_set():
                    client.frame()

        threading.Thread(target=drain, daemon=True).start()
        try:
            while time.monotonic() < deadline:
                for _ in range(20):
                    host.send(OFFER, guest_id, offer)
                peak = max(peak, rss_mib(pid))
        except OSError:
            pass  # dropped: form the pair again
        stop.set()
        host.close()
        guest.close()
    return {"peakRssMiB": peak, "pairsFormed": pairs}


def oversized_upgrades(
    target: Target, count: int = 50, per_client: int = 8 << 20
) -> dict[str, Any]:
    port, pid = target.port, target.pid
    before = rss_mib(pid)
    peak = before
    line = b"X-Filler: " + b"y" * 1000 + b"\r\n"

    def attack() -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            sent = 0
            while sent < per_client:
                sock.sendall(line * 16)
                sent += len(line) * 16

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(pid))
        time.sleep(0.05)
    peak = max(peak, rss_mib(pid))
    return {"rssBeforeMiB": before, "rssPeakMiB": peak, "rssGrowthMiB": peak - before}


def canary_worst_delay(port: int, attack: Callable[[int], None]) -> dict[str, Any]:
    host, guest, guest_id, _ = lobby_pair(port)
    delays: list[float] = []
    stop = threading.Event()

    def canary() -> None:
        n = 0
        with contextlib.suppress(OSError, ConnectionError):
            while not stop.is_set():
                sent = time.perf_counter()
                host.send(CANDIDATE, guest_id, str(n))
                guest.expect(CANDIDATE)
                delays.append(time.perf_counter() - sent)
                n += 1
                time.sleep(0.01)

    thread = threading.Thread(target=canary, daemon=True)
    thread.start()
    time.sleep(1.0)  # warm-up, then a baseline second
    warm = len(delays)
    time.sleep(1.0)
    baseline = max(delays[warm:], default=0.0)
    during = len(delays)
    attack(port)
    time.sleep(1.0)
    stop.set()
    thread.join(5)
    host.close()
    guest.close()
    worst = max(delays[during:], default=float("nan"))
    return {"worstMs": worst * 1000, "quietWorstMs": baseline * 1000}


def ping_burst(port: int) -> None:
    attacker = Client(port)
    attacker.send(0, 0, "")
    with contextlib.suppress(OSError):
        attacker.sock.sendall(frame(b"x", opcode=9) * 10_000)
    time.sleep(0.5)
    attacker.close()


def fragment_pile(port: int) -> None:
    attacker = Client(port)
    attacker.send(0, 0, "")
    pieces = [frame(b"{", fin=False)]
    pieces += [frame(b" ", opcode=0, fin=False)] * 59_998
    pieces.append(frame(b"}", opcode=0))
    with contextlib.suppress(OSError):
        attacker.sock.sendall(b"".join(pieces))
    time.sleep(0.5)
    attacker.close()


@dataclass
class Scenario:
    title: str
    measure: Callable[[Target], dict[str, Any]]
    show: Callable[[dict[str, Any]], str]


def scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    sizes = args.sizes
    return {
        "handshakes": Scenario(
            f"{sizes['handshakes']} unfinished handshakes, then 20 upgrades",
            lambda t: unfinished_handshakes(t, count=sizes["handshakes"]),
            show_handshakes,
        ),
        "byte-flood": Scenario(
            f"byte flood, {sizes['flood_connections']} connections, {sizes['flood_seconds']:g} s",
            lambda t: byte_flood(
                t, connections=sizes["flood_connections"], seconds=sizes["flood_seconds"]
            ),
            show_byte_flood,
        ),
        "log-storm": Scenario(
            f"refusal log storm, {sizes['storm_seconds']:g} s",
            lambda t: log_storm(t, seconds=sizes["storm_seconds"]),
            show_log_storm,
        ),
        "slow-consumer": Scenario(
            "slow consumer, peak RSS",
            lambda t: slow_consumer(t, args.slow_seconds),
            lambda f: f"{f['peakRssMiB']:.0f} MiB peak ({f['pairsFormed']} pair(s) formed)",
        ),
        "endless-upgrades": Scenario(
            "50 endless upgrades, RSS growth",
            oversized_upgrades,
            lambda f: (
                f"+{f['rssGrowthMiB']:.0f} MiB ({f['rssBeforeMiB']:.0f} -> {f['rssPeakMiB']:.0f})"
            ),
        ),
        "ping-burst": Scenario(
            "canary during 10k pings",
            lambda t: canary_worst_delay(t.port, ping_burst),
            lambda f: (
                f"{f['worstMs']:.0f} ms worst (quiet second before: {f['quietWorstMs']:.1f} ms)"
            ),
        ),
        "fragment-pile": Scenario(
            "canary during 60k fragments",
            lambda t: canary_worst_delay(t.port, fragment_pile),
            lambda f: (
                f"{f['worstMs']:.0f} ms worst (quiet second before: {f['quietWorstMs']:.1f} ms)"
            ),
        ),
    }


FULL_SIZES = {"handshakes": 5000, "flood_connections": 40, "flood_seconds": 7.0,
              "storm_seconds": 12.0}  # fmt: skip
QUICK_SIZES = {"handshakes": 100, "flood_connections": 8, "flood_seconds": 0.5,
               "storm_seconds": 0.5}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", help="the reference's server_node folder (has server.js)")
    parser.add_argument(
        "--baseline", metavar="DIR", help="also an older build of ours: checkout DIR, its .venv"
    )
    parser.add_argument(
        "--scenarios",
        default="handshakes,byte-flood,log-storm,slow-consumer,endless-upgrades,"
        "ping-burst,fragment-pile",
        help="comma-separated subset (default: all)",
    )
    parser.add_argument("--slow-seconds", type=float, default=20.0)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument("--cores", default="0,1", help="server core,client core (default 0,1)")
    parser.add_argument(
        "--server-nofile",
        type=int,
        default=1024,
        help="soft open-file limit the servers start with, as a service manager would "
        "give them (default 1024, systemd's; ours raises its own toward --max-peers). "
        "This process raises its own to the hard limit to hold its sockets.",
    )
    parser.add_argument("--out", help="JSON lines file for every result")
    parser.add_argument("--server-log", help="file for the servers' output")
    args = parser.parse_args(argv)
    args.sizes = QUICK_SIZES if args.quick else FULL_SIZES
    available = scenarios(args)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(available)}"
        )
    if args.baseline and not (Path(args.baseline) / ".venv" / "bin" / "twistd").exists():
        parser.error(f"--baseline {args.baseline}: no .venv/bin/twistd there")
    server_core, client_core = (int(core) for core in args.cores.split(","))
    raise_descriptor_limit()
    os.sched_setaffinity(0, {client_core})
    out = open(args.out, "w") if args.out else None  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="webrtc-signal-abuse-") as tmp:
        work = Path(tmp)
        servers = [run.ours("default")]
        if args.baseline:
            servers.append(run.ours("default", Path(args.baseline).resolve(), name="baseline"))
        if args.ref:
            servers.append(run.reference(Path(args.ref).resolve(), work))
        helps = {
            server.name: run.plugin_help(Path(server.command[0])) if server.name != "reference"
            else None
            for server in servers
        }  # fmt: skip
        for server in servers:
            server.soft_nofile = args.server_nofile
        for name, options in helps.items():
            if options is not None:
                new = [o for o in ("max-handshakes-per-address", "handshake-timeout",
                                   "max-byte-rate", "max-byte-burst") if o in options]  # fmt: skip
                print(f"{name}: {'has ' + ', '.join(new) if new else 'none of the new limits'}")
        results: dict[str, dict[str, str]] = {}

        def measure(name: str, server: run.Server, running: run.Running, log: Path) -> None:
            scenario = available[name]
            target = Target(running, log, helps[server.name])
            # The machine's load when it ran: the figures are only as quiet as it.
            record: dict[str, Any] = {
                "scenario": name,
                "server": server.name,
                "load1": os.getloadavg()[0],
            }
            try:
                record["figures"] = scenario.measure(target)
                shown = scenario.show(record["figures"])
            except Exception as error:  # a server that falls over is a result too
                record["failed"] = f"{type(error).__name__}: {error}"
                shown = f"failed: {record['failed']}"
            results.setdefault(scenario.title, {})[server.name] = shown
            if out:
                print(json.dumps(record), file=out, flush=True)
            print(f"  {scenario.title} / {server.name}: {shown}", flush=True)

        # Each server's output has a file of its own: the log storm counts
        # what the server writes in its window.
        def log_of(server: run.Server) -> Path:
            return Path(args.server_log) if args.server_log else work / f"{server.name}.log"

        if args.quick:
            # Only checking that everything runs: one start per server.
            for server in servers:
                running = run.start(server, server_core, log_of(server))
                try:
                    for name in chosen:
                        measure(name, server, running, log_of(server))
                finally:
                    run.stop(running)
        else:
            for name in chosen:
                for server in servers:
                    running = run.start(server, server_core, log_of(server))
                    try:
                        measure(name, server, running, log_of(server))
                    finally:
                        run.stop(running)
    if out:
        out.close()
    names = [s.name for s in servers]
    print()
    print("| scenario | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for title, row in results.items():
        print(f"| {title} | " + " | ".join(row.get(n, "-") for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
