#!/usr/bin/env python3
"""Load-independent figures of our server for a fixed, scripted workload.

    python bench/count.py instructions [--checkout DIR] [--workloads churn,relay,single]
    python bench/count.py memory [--checkout DIR] [--connections 2000]

On a shared machine CPU time per unit of work moves 10-20% between rounds;
the instructions the server executes for a fixed workload do not. The
`instructions` mode starts the server under ``valgrind --tool=callgrind``,
zeroes the counters once it listens, drives one workload with blocking
sockets one step at a time (the same steps every run), dumps the counters,
and prints the instructions per unit of work:

- churn: a host creates a lobby, a guest joins it, both see each other,
  both close (a close frame each, answered) - the bench's churn round trip;
- relay: one pair, batches of 16 CANDIDATE messages (200-byte data) each
  way - the bench's relay scenario, per message;
- single: one pair, one CANDIDATE at a time, each answered before the next
  is sent - every read holds one message, as at a light open-loop rate.

The `memory` mode starts the server normally and reads its RSS before and
after opening N connections joined in lobbies of 4 (the bench's idle
scenario), per connection. ``--checkout DIR`` measures the build in DIR
(its own .venv) instead of this one. Only loopback is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import FULL, limit_options, listening_ports, load, plugin_help
from wsraw import Client, frame, lobby_pair

ROOT = Path(__file__).resolve().parent.parent
DATA = "x" * 200


@contextmanager
def server(
    checkout: Path, valgrind: Path | None, extra: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    scratch = Path(tempfile.mkdtemp(prefix="webrtc-signal-count-"))
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), str(checkout / ".venv" / "bin" / "twistd"), "-n", "--pidfile="]
    command += ["webrtc-signal", "--port", "tcp:0:interface=127.0.0.1"]
    command += ["--max-peers", "100000"]
    command += ["--max-lobbies", "100000", "--join-timeout", "600"]
    command += extra
    if valgrind is not None:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={valgrind}",
            "--dump-instr=no",
            *command,
        ]
    log = (scratch / "log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=checkout,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"},
    )
    try:
        deadline = time.monotonic() + 600
        while not (ports := listening_ports(process.pid)):
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"count: the server did not start; see {scratch / 'log'}")
            time.sleep(0.1)
        port = min(ports)
        # The server is listening: wait for its first connection to be served
        # so that start-up work is not counted.
        Client(port, timeout=120).close()
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=120)
        log.close()


def close_both(*clients: Client) -> None:
    """A close frame from each, then wait for the server's answer and its
    end of the TCP connection, as a browser's close() does."""
    for client in clients:
        client.sock.sendall(frame(b"\x03\xe8", opcode=8))
    for client in clients:
        while True:
            opcode, _ = client.frame()
            if opcode == 8:
                break
        while client.sock.recv(65536):
            pass
        client.close()


def churn(port: int, count: int) -> None:
    for _ in range(count):
        host, guest, _, _ = lobby_pair(port)
        close_both(guest, host)


def relay(port: int, count: int) -> None:
    host, guest, guest_id, _ = lobby_pair(port)
    batch = 16
    for _ in range(count // (2 * batch)):
        host.sock.sendall(b"".join(_candidate(guest_id) for _ in range(batch)))
        guest.sock.sendall(b"".join(_candidate(1) for _ in range(batch)))
        for _ in range(batch):
            host.expect(6)
            guest.expect(6)
    close_both(guest, host)


def single(port: int, count: int) -> None:
    host, guest, guest_id, _ = lobby_pair(port)
    for _ in range(count // 2):
        host.sock.sendall(_candidate(guest_id))
        guest.expect(6)
        guest.sock.sendall(_candidate(1))
        host.expect(6)
    close_both(guest, host)


def _candidate(destination: int) -> bytes:
    return frame(b'{"type":6,"id":%d,"data":"%s"}' % (destination, DATA.encode()))


WORKLOADS: dict[str, tuple[Callable[[int, int], None], int, str]] = {
    "churn": (churn, 100, "round trip"),
    "relay": (relay, 3200, "message"),
    "single": (single, 1000, "message"),
}


def total_instructions(path: Path) -> int:
    text = path.read_text(errors="replace")
    found = re.search(r"^summary:\s*(\d+)", text, re.MULTILINE)
    if not found:
        sys.exit(f"count: no totals in {path}")
    return int(found.group(1))


def instructions(checkout: Path, names: list[str], extra: tuple[str, ...] = ()) -> None:
    for name in names:
        work, count, unit = WORKLOADS[name]
        scratch = Path(tempfile.mkdtemp(prefix="webrtc-signal-callgrind-"))
        out = scratch / "callgrind.out"
        with server(checkout, out, extra) as (process, port):
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True,
                           capture_output=True)  # fmt: skip
            work(port, count)
            subprocess.run(["callgrind_control", "-d", "work", str(process.pid)], check=True,
                           capture_output=True)  # fmt: skip
        dumps = sorted(scratch.glob("callgrind.out*"))
        dump = next(
            path
            for path in dumps
            if "Trigger: dump work" in path.read_text(errors="replace")[:2000]
        )
        total = total_instructions(dump)
        print(f"{name}: {total / count:,.0f} instructions per {unit} ({count} {unit}s; {dump})",
              flush=True)  # fmt: skip


def profile(
    checkout: Path, names: list[str], scale: int, top: int, extra: tuple[str, ...] = ()
) -> None:
    """Sample the server with py-spy while it runs each workload and print
    the frames that took the most samples: by themselves, and with what
    they called. A bench scenario (churn, relay, rate...) is run by the
    bench's load generator at its full size; a scripted workload of this
    file at ``scale`` times its usual count."""
    py_spy = Path(sys.executable).parent / "py-spy"
    for name in names:
        out = Path(tempfile.mkdtemp(prefix="webrtc-signal-profile-")) / f"{name}.txt"
        with server(checkout, None, extra) as (process, port):
            sampler = subprocess.Popen(
                [str(py_spy), "record", "-r", "250", "-f", "raw", "-o", str(out),
                 "--pid", str(process.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)  # py-spy attaches
            if name in FULL:
                # Profiling: a late schedule is no reason to stop.
                params = {**FULL[name][0], "maxLagMs": 60_000}
                print(json.dumps(load(name, params, port, process.pid, core=1)))
            else:
                work, count, _ = WORKLOADS[name]
                work(port, count * scale)
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        for line in out.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            frames = [f for f in stack.split(";") if not f.startswith("<module>")]
            weight = int(samples)
            if not frames or "epoll" in frames[-1] or "doPoll" in frames[-1]:
                continue  # waiting for input, not working
            total += weight
            own[_short(frames[-1])] += weight
            for frame_name in {_short(f) for f in frames}:
                inclusive[frame_name] += weight
        print(f"== {name}: {total} busy samples ({out})")
        for title, counts in (("self", own), ("inclusive", inclusive)):
            print(f"-- {title}")
            for frame_name, weight in counts.most_common(top):
                print(f"{100 * weight / total:5.1f}%  {frame_name}")


def _short(frame_name: str) -> str:
    """``function (path/to/file.py:line)`` as ``function (package/file.py)``."""
    function, _, where = frame_name.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{function} ({'/'.join(parts[-2:])})"


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s*(\d+) kB", status, re.MULTILINE)
    assert found
    return int(found.group(1))


def memory(checkout: Path, connections: int, extra: tuple[str, ...] = ()) -> None:
    with server(checkout, None, extra) as (process, port):
        before = rss_kib(process.pid)
        clients: list[Client] = []
        for _ in range(connections // 4):
            host = Client(port)
            host.send(0, 0, "")
            lobby = host.expect(0)["data"]
            clients.append(host)
            for _ in range(3):
                guest = Client(port)
                guest.send(0, 0, lobby)
                guest.expect(0)
                clients.append(guest)
        after = rss_kib(process.pid)
        for client in clients:
            client.close()
    print(f"memory: {(after - before) / len(clients):.2f} KiB per connection "
          f"({len(clients)} connections, RSS {before} -> {after} KiB)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["instructions", "memory", "profile"])
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument("--workloads", default="churn,relay,single")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--server-args", default="", help="more options for the server")
    parser.add_argument(
        "--limits",
        choices=["off", "on"],
        default="off",
        help="on: every abuse check runs, with limits the workload never reaches",
    )
    parser.add_argument("--scale", type=int, default=20, help="profile: workload size factor")
    parser.add_argument("--top", type=int, default=25, help="profile: frames shown")
    args = parser.parse_args()
    socket.setdefaulttimeout(120)
    checkout = args.checkout.resolve()
    # As in the bench: the limits off (the reference has none) or on, beyond
    # the workload's reach; options the build lacks (an older one) left out.
    supported = plugin_help(checkout / ".venv" / "bin" / "twistd")
    extra = (*limit_options(args.limits, supported), *args.server_args.split())
    if args.mode == "instructions":
        instructions(checkout, args.workloads.split(","), extra)
    elif args.mode == "profile":
        profile(checkout, args.workloads.split(","), args.scale, args.top, extra)
    else:
        memory(checkout, args.connections, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
