#!/usr/bin/env python3
"""Soak: lobby churn against our server for a bounded time, printing how its
memory (RSS) and open file descriptors move.

    python bench/soak.py [--seconds 300] [--workers 4]

Each worker repeats: a host creates a lobby, a guest joins, they exchange an
offer and an answer, both leave. Every 5 s the server's RSS and descriptor
count are sampled; the slopes (least squares over the second half, after
warm-up) should be flat. The per-address limits are off: the churn comes from
one address, far faster than one player would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run
from wsraw import lobby_pair

OFFER, ANSWER = 4, 5


def sample(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60 if var else 0.0


def churn(port: int, stop: threading.Event, counts: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError, ConnectionError):
            host, guest, guest_id, _ = lobby_pair(port)
            host.send(OFFER, guest_id, "v=0 offer")
            guest.expect(OFFER)
            guest.send(ANSWER, 1, "v=0 answer")
            host.expect(ANSWER)
            guest.close()
            host.close()
            counts[0] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.workers < 1:
        parser.error("--seconds must be > 0 and --workers at least 1")
    log = Path(os.devnull)
    server = run.start(run.ours(), 0, log)
    port = server.port
    stop = threading.Event()
    counts = [0]
    rss: list[tuple[float, float]] = []
    fds: list[tuple[float, float]] = []
    try:
        workers = [
            threading.Thread(target=churn, args=(port, stop, counts), daemon=True)
            for _ in range(args.workers)
        ]
        for worker in workers:
            worker.start()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < args.seconds:
            time.sleep(min(args.interval, args.seconds - elapsed))
            now = time.monotonic() - start
            memory, descriptors = sample(server.pid)
            rss.append((now, memory))
            fds.append((now, descriptors))
            print(
                f"{now:6.0f} s  {counts[0]:7d} lobbies  RSS {memory:6.1f} MiB  fds {descriptors}",
                flush=True,
            )
        stop.set()
        for worker in workers:
            worker.join(10)
    finally:
        run.stop(server)
    half = len(rss) // 2
    print(
        f"\n{counts[0]} lobby round trips in {args.seconds:.0f} s; slopes over the second half: "
        f"RSS {slope(rss[half:]):+.2f} MiB/min, descriptors {slope(fds[half:]):+.2f}/min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
