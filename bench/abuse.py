#!/usr/bin/env python3
"""Abuse scenarios, ours beside the Node reference (issue 11).

    python bench/abuse.py [--ref PATH/TO/server_node] [--slow-seconds 20]

Each scenario starts every server afresh, pinned to one core, and prints:
- peak RSS while one slow-consumer pair runs at full speed (a guest that
  never reads, its host sending it 60 KB offers; the pair is formed again
  whenever the server drops it);
- RSS growth from 50 upgrade requests whose headers never end;
- the worst relay delay a canary pair (one message every 10 ms) sees while
  another client writes 10,000 pings at once, and while another sends one
  message as 60,000 one-byte fragments.
Ours runs with its default options: the limits are what is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run
from wsraw import Client, frame, lobby_pair

OFFER, CANDIDATE = 4, 6


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slow_consumer(port: int, pid: int, seconds: float) -> str:
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
    return f"{peak:.0f} MiB peak ({pairs} pair(s) formed)"


def oversized_upgrades(port: int, pid: int, count: int = 50, per_client: int = 8 << 20) -> str:
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
    return f"+{peak - before:.0f} MiB ({before:.0f} -> {peak:.0f})"


def canary_worst_delay(port: int, attack: Callable[[int], None]) -> str:
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
    return f"{worst * 1000:.0f} ms worst (quiet second before: {baseline * 1000:.1f} ms)"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", help="the reference's server_node folder (has server.js)")
    parser.add_argument("--slow-seconds", type=float, default=20.0)
    parser.add_argument("--cores", default="0,1", help="server core (the rest is ours)")
    parser.add_argument("--server-log", help="file for the servers' output")
    args = parser.parse_args(argv)
    core = int(args.cores.split(",")[0])
    port = run.free_port()
    scenarios: list[tuple[str, Callable[[int, int], str]]] = [
        ("slow consumer, peak RSS", lambda p, pid: slow_consumer(p, pid, args.slow_seconds)),
        ("50 endless upgrades, RSS growth", oversized_upgrades),
        ("canary during 10k pings", lambda p, pid: canary_worst_delay(p, ping_burst)),
        ("canary during 60k fragments", lambda p, pid: canary_worst_delay(p, fragment_pile)),
    ]
    with tempfile.TemporaryDirectory(prefix="webrtc-signal-abuse-") as tmp:
        work = Path(tmp)
        # Ours at its defaults: the limits are the point here.
        command = run.ours(port).command
        command = command[: len(command) - len(run.LIMITS_OFF)]
        servers = [run.Server("ours", command, run.ROOT)]
        if args.ref:
            servers.append(run.reference(Path(args.ref).resolve(), work))
        log = Path(args.server_log) if args.server_log else work / "servers.log"
        results: dict[str, dict[str, str]] = {}
        for title, scenario in scenarios:
            for server in servers:
                process = run.start(server, port, core, log)
                try:
                    results.setdefault(title, {})[server.name] = scenario(port, process.pid)
                except Exception as error:  # a server that falls over is a result too
                    results.setdefault(title, {})[server.name] = f"failed: {error}"
                finally:
                    run.stop(process)
                print(f"  {title} / {server.name}: {results[title][server.name]}", flush=True)
    names = [s.name for s in servers]
    print()
    print("| scenario | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for title, row in results.items():
        print(f"| {title} | " + " | ".join(row.get(n, "-") for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
