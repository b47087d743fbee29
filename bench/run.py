#!/usr/bin/env python3
"""Benchmark webrtc-signal side by side with Godot's Node.js reference server.

    python bench/run.py --ref PATH/TO/server_node [--rounds 5] [--scenarios relay,churn]

    python bench/run.py --ref PATH --baseline DIR --scenarios relay,churn,rate

    python bench/run.py --ref PATH --others peerjs,y-webrtc --scenarios churn,rate

    python bench/run.py --ref PATH --others twisted-echo,node-echo --scenarios rate

    python bench/run.py --scenarios cluster-relay,cluster-latency [--rounds 5]

--baseline DIR also measures the build in checkout DIR (DIR/.venv/bin/twistd,
run from DIR) alternating with ours, with per-round ratios ours/baseline:
how a change is judged against the code before it. --others measures other
signaling servers from npm in churn and rate, in their own protocols, and
bare TCP echo servers on Twisted and on Node in rate: the floor each runtime's
event loop and socket calls put under any server built on it (bench/echo.py).

The cluster scenarios (docs/cluster.md) relay between a host on one node and
its guest on another (two nodes and a redis-server, all three pinned to
--cluster-cores), against the same load on one node without Redis: the CPU
per relayed message is summed over every process of each setup (from
/proc/<pid>/stat), and the latency is compared as the time added.

PATH/TO/server_node is a checkout of godot-demo-projects'
networking/webrtc_signaling/server_node (the folder with server.js). It is
copied to a temporary directory, its port set, and its `ws` dependency
installed there from npm; nothing of it is kept. Without --ref only ours is
measured.

Each round starts every server afresh for every scenario, pinned to one core
(taskset), with the load generator (bench/loadgen.mjs, Node + ws) pinned to
another; servers alternate within a round and swap order between rounds. The
load generator samples the server's CPU time and RSS from /proc at the edges
of its measuring window. Results: a table of medians with the per-round ratio
ours/reference, and JSON lines (--out). A load the generator could not offer
(rate: more than maxLagMs behind its schedule), or that failed, is recorded
as failed and left out of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "bench" / "loadgen.mjs"

# Sizes of each scenario; every one is bounded in time and count.
FULL: dict[str, list[dict[str, Any]]] = {
    "relay": [{"pairs": 100, "window": 16, "dataBytes": 200, "warmup": 2, "duration": 5}],
    "latency": [{"pairs": 100, "rate": 2000, "dataBytes": 200, "warmup": 2, "duration": 10}],
    "churn": [{"workers": 32, "warmup": 2, "duration": 5}],
    "idle": [{"connections": 4000, "lobbySize": 4, "settle": 2}],
    # Open loop: 10,000 msg/s in all, scheduled by the clock, over 50 pairs
    # sending both ways; the load generator fails the round if it falls more
    # than maxLagMs behind its schedule.
    "rate": [
        {"pairs": 50, "rate": 10_000, "dataBytes": 200, "warmup": 2, "duration": 8, "maxLagMs": 100}
    ],
    "scale": [
        {"connections": n, "window": 8, "dataBytes": 200, "warmup": 1, "duration": 3, "settle": 1}
        for n in (100, 1000, 4000)
    ],
}
# Tiny, to check that everything runs; their figures mean nothing.
QUICK: dict[str, list[dict[str, Any]]] = {
    "relay": [{"pairs": 2, "window": 2, "dataBytes": 200, "warmup": 0.1, "duration": 0.2}],
    "latency": [{"pairs": 2, "rate": 200, "dataBytes": 200, "warmup": 0.1, "duration": 0.2}],
    "churn": [{"workers": 2, "warmup": 0.1, "duration": 0.2}],
    "idle": [{"connections": 20, "lobbySize": 4, "settle": 0.1}],
    "rate": [{"pairs": 2, "rate": 200, "dataBytes": 200, "warmup": 0.1, "duration": 0.2,
              "maxLagMs": 30_000}],
    "scale": [
        {"connections": n, "window": 2, "dataBytes": 200, "warmup": 0.1, "duration": 0.2,
         "settle": 0.1}
        for n in (100, 110)
    ],
}  # fmt: skip

# The figures compared, per scenario: (key, label, unit, lower is better, target ratio).
FIGURES: dict[str, list[tuple[str, str, str, bool, float | None]]] = {
    "relay": [
        ("messagesPerS", "relayed messages/s", "msg/s", False, None),
        ("serverCpuSPer100k", "server CPU per 100k relayed", "CPU-s", True, 1.0),
        ("serverUtil", "server CPU use", "cores", True, None),
        ("loadgenUtil", "load generator CPU use", "cores", True, None),
    ],
    "latency": [
        ("p50Ms", "relay latency p50", "ms", True, None),
        ("p90Ms", "relay latency p90", "ms", True, None),
        ("p99Ms", "relay latency p99", "ms", True, 1.0),
        ("p999Ms", "relay latency p99.9", "ms", True, None),
        ("maxMs", "relay latency max", "ms", True, None),
        ("serverUtil", "server CPU use", "cores", True, None),
        ("loadgenUtil", "load generator CPU use", "cores", True, None),
    ],
    "churn": [
        ("roundTripsPerS", "lobby round trips/s", "rt/s", False, None),
        ("serverCpuMsPerRoundTrip", "server CPU per round trip", "CPU-ms", True, 1.0),
        ("serverUtil", "server CPU use", "cores", True, None),
        ("loadgenUtil", "load generator CPU use", "cores", True, None),
    ],
    "idle": [
        ("kbPerConnection", "server memory per connection", "KiB", True, 1.0),
        ("establishS", "time to establish all", "s", True, None),
        ("serverCpuMsPerConnection", "server CPU per connection set up", "CPU-ms", True, None),
    ],
    "rate": [
        ("serverCpuS", "server CPU in the measured window", "CPU-s", True, 0.8),
        ("p50Ms", "relay latency p50", "ms", True, None),
        ("p99Ms", "relay latency p99", "ms", True, None),
        ("delivered", "messages delivered, each verified", "msg", False, None),
        ("offeredPerS", "offered rate", "msg/s", False, None),
        ("lagMaxMs", "load generator's worst lag behind schedule", "ms", True, None),
        ("loadgenUtil", "load generator CPU use", "cores", True, None),
    ],
    "scale": [
        ("serverCpuSPer100k", "server CPU per 100k relayed", "CPU-s", True, None),
        ("kbPerConnection", "server memory per connection", "KiB", True, None),
        ("loadgenUtil", "load generator CPU use", "cores", True, None),
    ],
}


# The cluster scenarios: the load generator's scenario each runs, and its
# sizes (those of the single-node scenario).
CLUSTER = {"cluster-relay": "relay", "cluster-latency": "latency"}
for _name, _base in CLUSTER.items():
    FULL[_name] = FULL[_base]
    QUICK[_name] = QUICK[_base]
# (key, label, unit, lower is better, target): a ratio (cluster / one node)
# for CPU, a time added for latency.
CLUSTER_FIGURES: dict[str, list[tuple[str, str, str, str | None]]] = {
    "cluster-relay": [
        ("messagesPerS", "relayed messages/s", "msg/s", None),
        ("serverCpuSPer100k", "CPU per 100k relayed, all processes", "CPU-s", "≤ 3.0x"),
        ("serverUtil", "CPU use, all processes", "cores", None),
        ("loadgenUtil", "load generator CPU use", "cores", None),
    ],
    "cluster-latency": [
        ("p50Ms", "relay latency p50", "ms", None),
        ("p99Ms", "relay latency p99", "ms", "≤ +1 ms"),
        ("p999Ms", "relay latency p99.9", "ms", None),
        ("serverUtil", "CPU use, all processes", "cores", None),
    ],
}
ONE_NODE, TWO_NODES = "one node", "two nodes + redis"


@dataclass
class Server:
    name: str
    # "{port}" is replaced by a port held for the server until it starts;
    # "{port_file}" by a file in which the server writes where it listens.
    command: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    writes_port_file: bool = False
    # The soft open-file limit to start it with (the hard one is kept);
    # None: this process's own.
    soft_nofile: int | None = None
    # The protocol the load generator speaks to it (loadgen.mjs): Godot's
    # for ours and the reference, another for the other servers compared.
    protocol: str = "godot"


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    port: int
    scratch: Path | None  # the port file's directory, removed at stop

    @property
    def pid(self) -> int:
        return self.process.pid


def hold_port() -> socket.socket:
    """A socket bound (never listening) to a port the kernel chose, on every
    address: while it is open the kernel gives that port to no one else, on
    any address (a server such as the reference binds them all). It is
    closed only at the last moment before the server told the port binds it."""
    if socket.has_dualstack_ipv6():
        holder = socket.socket(socket.AF_INET6)
        holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        holder.bind(("::", 0))
    else:
        holder = socket.socket()
        holder.bind(("0.0.0.0", 0))
    return holder


def listening_ports(pid: int) -> set[int]:
    """The TCP ports on which process `pid` itself has a listening socket:
    its socket descriptors matched against the kernel's socket tables, so a
    port that another program took is never mistaken for the server's."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def read_port_file(path: Path) -> int | None:
    """The port of the first `host:port` line in a port file, if any yet."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        _, colon, port = line.strip().rpartition(":")
        if colon and port.isdigit() and int(port) > 0:
            return int(port)
    return None


@functools.cache
def plugin_help(twistd: Path) -> dict[str, str | None]:
    """The options `twistd webrtc-signal --help` lists, with their defaults:
    what a build supports is read from the build itself, so the benchmark
    runs against builds older or newer than itself."""
    shown = subprocess.run(
        [str(twistd), "webrtc-signal", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if shown.returncode != 0:
        sys.exit(f"bench: `{twistd} webrtc-signal --help` failed: {shown.stderr.strip()}")
    options: dict[str, str | None] = {}
    # An option's line is indented a little; its description's wrapped lines
    # much more (and may start with another option's name).
    blocks = re.split(r"(?m)^ {1,8}(?:-\w, )?--(?=[a-z])", shown.stdout)[1:]
    for block in blocks:
        name = re.match(r"[a-z][a-z0-9-]*", block)
        if name is None:
            continue
        default = re.search(r"\[default:\s+([^\]]*)\]", block)
        options[name.group()] = " ".join(default.group(1).split()) if default else None
    return options


# The reference has no abuse limits, and the load generator is one address
# standing in for thousands of players: ours runs with them off unless
# --limits on asks what having them on costs. Then every check runs, but the
# per-address, handshake, message-rate and byte-rate limits are set too high
# for the load to cross (at their defaults one address could not churn a
# lobby a millisecond); the send-buffer limit stays at its default. A build
# that lacks an option (an older one, under --baseline) runs without it.
LIMITS_OFF = {
    "--max-send-buffer": "0",
    "--max-peers-per-address": "0",
    "--max-lobbies-per-address": "0",
    "--max-lobby-rate": "0",
    "--max-message-rate": "0",
    "--max-handshakes-per-address": "0",
    "--max-byte-rate": "0",
}
LIMITS_ON = {
    "--max-peers-per-address": "1000000",
    "--max-lobbies-per-address": "1000000",
    "--max-lobby-rate": "1000000",
    "--max-message-rate": "1000000",
    "--max-message-burst": "1000000",
    "--max-handshakes-per-address": "1000000",
    "--max-byte-rate": "1000000000",
    "--max-byte-burst": "1000000000",
}


def limit_options(limits: str, options: dict[str, str | None]) -> list[str]:
    """The command-line options for ``limits`` (off, on or default) that a
    build with these ``options`` (`plugin_help`) has: an older build runs
    without the limits it lacks."""
    chosen = {"off": LIMITS_OFF, "on": LIMITS_ON, "default": {}}[limits]
    present = [(option, value) for option, value in chosen.items() if option[2:] in options]
    return [part for pair in present for part in pair]


def ours(limits: str = "off", checkout: Path | None = None, name: str = "ours") -> Server:
    """Our server: this checkout's (the venv running the benchmark), or the
    one in `checkout` (its own .venv) for a before/after comparison. `limits`
    is off, on (see above) or default (the build's own defaults)."""
    if checkout is None:
        twistd, cwd = Path(sys.executable).parent / "twistd", ROOT
    else:
        twistd, cwd = checkout / ".venv" / "bin" / "twistd", checkout
    if not twistd.exists():
        sys.exit(
            f"bench: no twistd at {twistd}; run the benchmark with the project's venv "
            "(make bench), and give --baseline a checkout with its own .venv"
        )
    options = plugin_help(twistd)
    limit_args = limit_options(limits, options)
    if "port-file" in options:
        listen = ["--port", "tcp:0:interface=127.0.0.1", "--port-file", "{port_file}"]
    else:
        listen = ["--port", "tcp:{port}:interface=127.0.0.1"]
    return Server(
        name,
        [str(twistd), "-n", "--pidfile=", "webrtc-signal", *listen, *limit_args],
        cwd,
        # A baseline checkout is read, never written: no bytecode files in it.
        env={"PYTHONDONTWRITEBYTECODE": "1"} if checkout else {},
        writes_port_file="port-file" in options,
    )


def reference(source: Path, work: Path) -> Server:
    """A private copy of the Node reference, with its port made settable."""
    server_js = source / "server.js"
    if not server_js.is_file():
        sys.exit(
            f"bench: {source} has no server.js; --ref wants godot-demo-projects' "
            "networking/webrtc_signaling/server_node folder"
        )
    copy = work / "server_node"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("node_modules", ".git"))
    text = (copy / "server.js").read_text()
    patched, count = re.subn(
        r"^const PORT = \d+;", "const PORT = Number(process.env.PORT);", text, flags=re.M
    )
    if count != 1:
        sys.exit("bench: could not find `const PORT = <number>;` in the reference's server.js")
    (copy / "server.js").write_text(patched)
    subprocess.run(
        ["npm", "install", "--omit=dev", "--legacy-peer-deps", "--no-audit", "--no-fund",
         "--no-package-lock", "--loglevel=error"],
        cwd=copy, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return Server("reference", ["node", "server.js"], copy, env={"PORT": "{port}"})


def soft_nofile_setter(soft: int | None) -> Callable[[], None] | None:
    if soft is None:
        return None

    def set_soft_limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))

    return set_soft_limit


# Other signaling servers compared in churn and rate (--others), from npm
# (package.json): the load generator speaks each one's protocol. The echo
# servers (bench/echo.py, bench/echo.mjs) only in rate: they have no lobbies.
OTHER_SCENARIOS = ("churn", "rate")
ECHO_SCENARIOS = ("rate",)
OTHERS = ("peerjs", "y-webrtc", "twisted-echo", "twisted-echo-plain", "node-echo")


def other_server(name: str) -> Server:
    if name in ("twisted-echo", "twisted-echo-plain"):
        command = [sys.executable, str(ROOT / "bench" / "echo.py"), "{port_file}"]
        if name == "twisted-echo-plain":
            command.append("--twisted-loop")  # Twisted's own loop, not our lean one
        return Server(name, command, ROOT, writes_port_file=True, protocol="echo")
    if name == "node-echo":
        command = ["node", str(ROOT / "bench" / "echo.mjs"), "{port_file}"]
        return Server(name, command, ROOT, writes_port_file=True, protocol="echo")
    if name == "peerjs":
        program = ROOT / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
        command = ["node", str(program), "--port", "{port}"]
        env, protocol = {}, "peerjs"
    else:
        program = ROOT / "node_modules" / "y-webrtc" / "bin" / "server.js"
        command, env, protocol = ["node", str(program)], {"PORT": "{port}"}, "ywebrtc"
    if not program.is_file():
        sys.exit(f"bench: {program} is missing: run `npm ci` (make node)")
    return Server(name, command, ROOT, env=env, protocol=protocol)


ADDRESS_IN_USE = re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)


def start(server: Server, core: int, log: Path, attempts: int = 5) -> Running:
    """Start `server` pinned to `core` and wait until it listens. A server
    told its port may still lose it to another program between the release
    and its bind: then it is started again on another port."""
    for _ in range(attempts):
        scratch = (
            Path(tempfile.mkdtemp(prefix="webrtc-signal-bench-"))
            if server.writes_port_file
            else None
        )
        holder = None if scratch else hold_port()
        held = holder.getsockname()[1] if holder else 0

        def fill(part: str, held: int = held, scratch: Path | None = scratch) -> str:
            part = part.replace("{port}", str(held))
            return part.replace("{port_file}", str(scratch / "port")) if scratch else part

        with log.open("ab") as output:
            offset = output.tell()
            if holder is not None:
                holder.close()
            process = subprocess.Popen(
                ["taskset", "-c", str(core), *map(fill, server.command)],
                cwd=server.cwd,
                env={**os.environ, **{k: fill(v) for k, v in server.env.items()}},
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=soft_nofile_setter(server.soft_nofile),
            )
        port = wait_listening(process, held, scratch / "port" if scratch else None)
        if port is not None:
            return Running(server, process, port, scratch)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        if process.poll() is None:
            process.kill()
            process.wait()
            sys.exit(f"bench: {server.name} did not listen within 30 s; see {log}")
        with log.open("rb") as written:
            written.seek(offset)
            said = written.read().decode(errors="replace")
        if not ADDRESS_IN_USE.search(said):
            sys.exit(f"bench: {server.name} exited at start; see {log}:\n{said[-2000:]}")
        print(f"bench: {server.name} lost port {held} to another program; again", flush=True)
    sys.exit(f"bench: {server.name} lost its port {attempts} times in a row")


def wait_listening(
    process: subprocess.Popen[bytes], port: int, port_file: Path | None, timeout: float = 30
) -> int | None:
    """The port `process` listens on once it does; None if it exits or does
    not within `timeout` (bounded polling of a condition, not a guess)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        wanted = read_port_file(port_file) if port_file else port
        if wanted and wanted in listening_ports(process.pid):
            return wanted
        time.sleep(0.02)
    return None


def stop(running: Running) -> None:
    process = running.process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if running.scratch:
        shutil.rmtree(running.scratch, ignore_errors=True)


class LoadGeneratorBehind(Exception):
    """The load generator could not offer the load it was asked to: the
    round's figures would be wrong, so the round fails instead."""


# The load generator's exit status when it could not keep its schedule.
BEHIND_STATUS = 3


def load(
    scenario: str,
    params: dict[str, Any],
    port: int | list[int],
    pid: int | list[int],
    core: int,
    protocol: str = "godot",
) -> dict[str, Any]:
    """Run the load generator. Lists of ports and pids are a cluster: hosts
    on the first port, their guests on the second, the CPU of every pid."""
    ports = port if isinstance(port, list) else [port, port]
    pids = pid if isinstance(pid, list) else [pid]
    arguments = {
        **params,
        "url": f"ws://127.0.0.1:{ports[0]}/",
        "guestUrl": f"ws://127.0.0.1:{ports[1]}/",
        "serverPids": pids,
        "clockTicks": os.sysconf("SC_CLK_TCK"),
        "protocol": protocol,
    }
    result = subprocess.run(
        ["taskset", "-c", str(core), "node", str(LOADGEN), scenario, json.dumps(arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode == BEHIND_STATUS:
        raise LoadGeneratorBehind(result.stderr.strip())
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed ({scenario}): {result.stderr.strip()}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def load_batch(
    loads: list[tuple[str, dict[str, Any]]],
    port: int | list[int],
    pid: int | list[int],
    core: int,
    protocol: str = "godot",
) -> list[dict[str, Any] | str]:
    """Several loads in one run of the load generator (--quick): the
    figures of each, or why it failed (then those after it did not run)."""
    ports = port if isinstance(port, list) else [port, port]
    arguments = {
        "loads": loads,
        "url": f"ws://127.0.0.1:{ports[0]}/",
        "guestUrl": f"ws://127.0.0.1:{ports[1]}/",
        "serverPids": pid if isinstance(pid, list) else [pid],
        "clockTicks": os.sysconf("SC_CLK_TCK"),
        "protocol": protocol,
    }
    result = subprocess.run(
        ["taskset", "-c", str(core), "node", str(LOADGEN), "batch", json.dumps(arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    figures: list[dict[str, Any] | str] = [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")
    ]
    missing = len(loads) - len(figures)
    if not missing:
        return figures
    failed = f"load generator failed: {result.stderr.strip()}"
    return [*figures, failed] + ["not run: a load before it in its batch failed"] * (missing - 1)


def redis_server(work: Path) -> Server:
    return Server(
        "redis-server",
        [
            "redis-server", "--bind", "127.0.0.1", "--port", "{port}", "--save", "",
            "--appendonly", "no", "--dir", str(work), "--loglevel", "warning",
        ],
        work,
    )  # fmt: skip


@contextlib.contextmanager
def cluster(
    setup: str, args: argparse.Namespace, log: Path
) -> Iterator[tuple[list[int], list[int]]]:
    """One node alone, or two nodes and Redis: the ports hosts and guests
    connect to, and the pids whose CPU is summed."""
    cores = [int(core) for core in args.cluster_cores.split(",")]
    running: list[Running] = []
    try:
        if setup == ONE_NODE:
            running.append(start(ours(), cores[0], log))
            yield [running[0].port, running[0].port], [running[0].pid]
            return
        with tempfile.TemporaryDirectory(prefix="webrtc-signal-bench-redis-") as work:
            redis = start(redis_server(Path(work)), cores[2 % len(cores)], log)
            running.append(redis)
            for index, name in enumerate(("n1", "n2")):
                node = ours()
                node.command += ["--redis", f"redis://127.0.0.1:{redis.port}/0", "--node-id", name]
                running.append(start(node, cores[index % len(cores)], log))
            # Each node claims its pool of peer ids once Redis answers.
            time.sleep(0.5)
            yield [running[1].port, running[2].port], [r.pid for r in running]
    finally:
        for process in reversed(running):
            stop(process)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
    }


def label(params: dict[str, Any]) -> str:
    return f"{params['connections']} connections" if "connections" in params else ""


def emit(record: dict[str, Any], args: argparse.Namespace) -> None:
    print(json.dumps(record), file=args.out_file, flush=True)
    if args.verbose:
        where = " ".join(
            str(record[k]) for k in ("round", "scenario", "size", "server") if record[k]
        )
        said = record.get("failed") or ", ".join(
            f"{k}={v:.4g}" for k, v in record["figures"].items() if isinstance(v, int | float)
        )
        print(f"  round {where}: {said}", flush=True)


def record_of(
    round_number: int, name: str, scenario: str, params: dict[str, Any]
) -> dict[str, Any]:
    return {
        "round": round_number,
        "server": name,
        "scenario": scenario,
        "size": "" if scenario in CLUSTER else label(params),
        "params": params,
        # The machine's load before it ran: the figures are only as quiet as it.
        "load1": os.getloadavg()[0],
    }


def measure_batch(
    round_number: int,
    name: str,
    loads: list[tuple[str, dict[str, Any]]],
    ports: int | list[int],
    pids: int | list[int],
    args: argparse.Namespace,
    protocol: str = "godot",
) -> list[dict[str, Any]]:
    """Several loads on running servers in one run of the load generator
    (--quick), as records."""
    load_core = int(args.cores.split(",")[1])
    batch = [(CLUSTER.get(scenario, scenario), params) for scenario, params in loads]
    records = []
    for (scenario, params), outcome in zip(
        loads, load_batch(batch, ports, pids, load_core, protocol), strict=True
    ):
        record = record_of(round_number, name, scenario, params)
        record["figures" if isinstance(outcome, dict) else "failed"] = outcome
        emit(record, args)
        records.append(record)
    return records


def measure(
    round_number: int,
    name: str,
    scenario: str,
    params: dict[str, Any],
    ports: int | list[int],
    pids: int | list[int],
    args: argparse.Namespace,
    protocol: str = "godot",
) -> dict[str, Any]:
    """One load on running servers, as a record; a round the load generator
    could not offer its load in, or that failed, is recorded as failed."""
    record = record_of(round_number, name, scenario, params)
    load_core = int(args.cores.split(",")[1])
    try:
        record["figures"] = load(
            CLUSTER.get(scenario, scenario), params, ports, pids, load_core, protocol
        )
    except LoadGeneratorBehind as behind:
        record["failed"] = str(behind)
    except RuntimeError as error:
        # On a shared machine a starved load generator or server can miss a
        # timeout (a JOIN later than the join timeout): that measurement is
        # lost, not the whole run.
        record["failed"] = str(error)
    emit(record, args)
    return record


def takes(server: Server, scenario: str) -> bool:
    """Whether `server` is measured in `scenario`: the other servers only
    in those their protocols can do the same work in."""
    if server.protocol == "echo":
        return scenario in ECHO_SCENARIOS
    return server.protocol == "godot" or scenario in OTHER_SCENARIOS


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    sizes = {**(QUICK if args.quick else FULL), **(json.loads(args.sizes) if args.sizes else {})}
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(sizes)
    if any(name in CLUSTER for name in scenarios) and shutil.which("redis-server") is None:
        sys.exit("bench: the cluster scenarios need redis-server (apt-get install redis-server)")
    if unknown:
        sys.exit(
            f"bench: unknown scenario(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(sizes)}"
        )
    server_core = int(args.cores.split(",")[0])
    plain = [s for s in scenarios if s not in CLUSTER]
    clustered = [s for s in scenarios if s in CLUSTER]
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="webrtc-signal-bench-") as tmp:
        work = Path(tmp)
        servers = [ours(args.limits)]
        if args.baseline:
            servers.append(ours(args.limits, Path(args.baseline).resolve(), name="baseline"))
        if args.ref:
            servers.append(reference(Path(args.ref).resolve(), work))
        servers += [other_server(name) for name in args.others]
        if not args.ref:
            print(
                "bench: no --ref given, so the Node reference is not measured.\n"
                "       (get it with: git clone "
                "https://github.com/godotengine/godot-demo-projects, then\n"
                "       --ref godot-demo-projects/networking/webrtc_signaling/server_node)"
            )
        print(
            json.dumps({"servers": {s.name: s.command for s in servers}}),
            file=args.out_file,
            flush=True,
        )
        log = Path(args.server_log) if args.server_log else work / "servers.log"
        for round_number in range(1, args.rounds + 1):
            # Alternate, and swap the order every round, so that a slow spell
            # of the shared machine does not always fall on the same server.
            order = servers if round_number % 2 else list(reversed(servers))
            setups = [ONE_NODE, TWO_NODES] if round_number % 2 else [TWO_NODES, ONE_NODE]
            loads = [(scenario, params) for scenario in plain for params in sizes[scenario]]
            cluster_loads = [(s, params) for s in clustered for params in sizes[s]]
            if args.quick:
                # Only checking that everything runs: one start of each server
                # and of the load generator serves all its loads (measured
                # figures start each afresh).
                for server in order:
                    mine = [(s, p) for s, p in loads if takes(server, s)]
                    if not mine:
                        continue
                    running = start(server, server_core, log)
                    try:
                        records += measure_batch(round_number, server.name, mine, running.port,
                                                 running.pid, args, server.protocol)  # fmt: skip
                    finally:
                        stop(running)
                for setup in setups if cluster_loads else []:
                    with cluster(setup, args, log) as (ports, pids):
                        records += measure_batch(
                            round_number, setup, cluster_loads, ports, pids, args
                        )
                continue
            for scenario, params in loads:
                for server in order:
                    if not takes(server, scenario):
                        continue
                    running = start(server, server_core, log)
                    try:
                        records.append(measure(round_number, server.name, scenario, params,
                                               running.port, running.pid, args,
                                               server.protocol))  # fmt: skip
                    finally:
                        stop(running)
            for scenario, params in cluster_loads:
                for setup in setups:
                    with cluster(setup, args, log) as (ports, pids):
                        records.append(
                            measure(round_number, setup, scenario, params, ports, pids, args)
                        )
    return records


def ratios_between(records: list[dict[str, Any]], key: str, mine: str, other: str) -> list[float]:
    """Per-round ratios mine/other of one figure, for the rounds both have."""
    return [
        m["figures"][key] / o["figures"][key]
        for m in records if m["server"] == mine and "figures" in m
        and m["figures"].get(key) is not None
        for o in records
        if o["server"] == other and o["round"] == m["round"] and "figures" in o
        and o["figures"].get(key)
    ]  # fmt: skip


def summarize(
    records: list[dict[str, Any]], info: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The table, and one summary record per figure."""
    rows: list[dict[str, Any]] = []
    order = [*FIGURES, *CLUSTER]
    keys = sorted(
        {(r["scenario"], r["size"]) for r in records},
        key=lambda k: (order.index(k[0]), k[1]),
    )
    cluster_lines = summarize_cluster(records, rows)
    with_baseline = any(r["server"] == "baseline" for r in records)
    others = [
        name for name in dict.fromkeys(r["server"] for r in records)
        if name not in ("ours", "baseline", "reference", ONE_NODE, TWO_NODES)
    ]  # fmt: skip
    for scenario, size in keys:
        if scenario in CLUSTER:
            continue
        mine = [r for r in records if (r["scenario"], r["size"]) == (scenario, size)]
        for key, name, unit, _, target in FIGURES[scenario]:

            def median_of(
                server: str, key: str = key, mine: list[dict[str, Any]] = mine
            ) -> float | None:
                values = [
                    r["figures"][key] for r in mine if r["server"] == server and "figures" in r
                    and r["figures"].get(key) is not None
                ]  # fmt: skip
                return statistics.median(values) if values else None

            ratios = ratios_between(mine, key, "ours", "reference")
            baseline_ratios = ratios_between(mine, key, "ours", "baseline")
            rows.append({
                "summary": True,
                "scenario": scenario,
                "size": size,
                "figure": key,
                "name": name,
                "unit": unit,
                "ours": median_of("ours"),
                "baseline": median_of("baseline"),
                "reference": median_of("reference"),
                "ratios": ratios,
                "ratio": statistics.median(ratios) if ratios else None,
                "baselineRatios": baseline_ratios,
                "baselineRatio": statistics.median(baseline_ratios) if baseline_ratios else None,
                "others": {name: median_of(name) for name in others},
                "otherRatios": {name: ratios_between(mine, key, "ours", name) for name in others},
                "otherToReference": {
                    name: ratios_between(mine, key, name, "reference") for name in others
                },
                "target": target,
            })  # fmt: skip
    rounds = max(r["round"] for r in records)
    lines = [
        f"webrtc-signal benchmark, {info['date']}: {info['cpu']}, {info['cores']} cores, "
        f"Linux {info['kernel']}, Python {info['python']}, Node {info['node']}",
        f"medians over {rounds} round(s); "
        "ratio = median of per-round ours/reference"
        + ("; vs baseline = median of per-round ours/baseline" if with_baseline else ""),
        "",
    ]
    if with_baseline:
        lines += [
            "| scenario | figure | ours | baseline | reference | ratio | per round "
            "| vs baseline | per round | target |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| scenario | figure | ours | reference | ratio | per round | target |",
            "|---|---|---|---|---|---|---|",
        ]

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.3g}"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    for row in rows:
        if row["scenario"] in CLUSTER:
            continue
        scenario = row["scenario"] + (f" ({row['size']})" if row["size"] else "")
        goal = f"≤ {row['target']:.1f}x" if row["target"] else ""
        per_round = " ".join(f"{r:.2f}" for r in row["ratios"])
        cells = [scenario, f"{row['name']} ({row['unit']})", show(row["ours"])]
        if with_baseline:
            cells.append(show(row["baseline"]))
        cells += [show(row["reference"]), times(row["ratio"]), per_round]
        if with_baseline:
            cells += [
                times(row["baselineRatio"]),
                " ".join(f"{r:.3f}" for r in row["baselineRatios"]),
            ]
        cells.append(goal)
        lines.append("| " + " | ".join(cells) + " |")
    if not any(row["scenario"] not in CLUSTER for row in rows):
        lines = lines[:3]
    compared = [row for row in rows if any(v is not None for v in row.get("others", {}).values())]
    if compared:
        # Beside ours/other, other/reference: for an echo server, how far
        # below the reference its runtime can go at all.
        to_reference = any(r["server"] == "reference" for r in records)
        lines += [
            "",
            "Other servers, each spoken to in its own protocol (ratio: median of "
            "per-round ratios, then the rounds):",
            "",
            "| scenario | figure | ours | "
            + " | ".join(others)
            + " | "
            + " | ".join(f"ours/{name}" for name in others)
            + "".join(f" | {name}/reference" for name in others if to_reference)
            + " |",
            "|---|---|---|" + "---|" * ((3 if to_reference else 2) * len(others)),
        ]

        def each_ratio(each: list[float]) -> str:
            if not each:
                return "-"
            return f"{times(statistics.median(each))} ({' '.join(f'{x:.2f}' for x in each)})"

        for row in compared:
            cells = [row["scenario"], f"{row['name']} ({row['unit']})", show(row["ours"])]
            cells += [show(row["others"][name]) for name in others]
            cells += [each_ratio(row["otherRatios"][name]) for name in others]
            if to_reference:
                cells += [each_ratio(row["otherToReference"][name]) for name in others]
            lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in records if "failed" in r]
    if failed:
        lines += ["", f"{len(failed)} measurement(s) failed and are left out of the figures:"]
        lines += [
            f"- round {r['round']} {r['scenario']} {r['server']}: {r['failed']}" for r in failed
        ]
    if cluster_lines:
        lines += ["", *cluster_lines]
    return "\n".join(lines), rows


def summarize_cluster(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """Two nodes and Redis against one node: the ratio of each figure (per
    round, then the median) and, for latencies, the time added."""
    lines: list[str] = []
    for scenario, figures in CLUSTER_FIGURES.items():
        mine = [r for r in records if r["scenario"] == scenario]
        if not mine:
            continue
        if not lines:
            lines = [
                f"| cluster scenario | figure | {TWO_NODES} | {ONE_NODE} | ratio | added "
                "| per round (ratio) | target |",
                "|---|---|---|---|---|---|---|---|",
            ]
        for key, name, unit, target in figures:
            cluster = [r["figures"][key] for r in mine if r["server"] == TWO_NODES]
            single = [r["figures"][key] for r in mine if r["server"] == ONE_NODE]
            pairs = [
                (c["figures"][key], s["figures"][key])
                for c in mine if c["server"] == TWO_NODES
                for s in mine if s["server"] == ONE_NODE and s["round"] == c["round"]
            ]  # fmt: skip
            ratios = [c / s for c, s in pairs if s]
            added = [c - s for c, s in pairs]
            row: dict[str, Any] = {
                "summary": True,
                "scenario": scenario,
                "size": "",
                "figure": key,
                "name": name,
                "unit": unit,
                "cluster": statistics.median(cluster) if cluster else None,
                "single": statistics.median(single) if single else None,
                "ratios": ratios,
                "ratio": statistics.median(ratios) if ratios else None,
                "added": statistics.median(added) if added else None,
                "target": target,
            }
            rows.append(row)

            def show(value: float | None) -> str:
                return "-" if value is None else f"{value:.3g}"

            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            plus = f"+{show(row['added'])}" if unit == "ms" and row["added"] is not None else ""
            lines.append(
                f"| {scenario} | {name} ({unit}) | {show(row['cluster'])} | "
                f"{show(row['single'])} | {ratio} | {plus} | "
                f"{' '.join(f'{r:.2f}' for r in ratios)} | {target or ''} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", help="path of the reference's server_node folder (has server.js)")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also measure the build in checkout DIR (its own DIR/.venv, run from DIR), "
        "alternating with ours in every round: the per-round ratios ours/baseline "
        "tell whether a change moved a figure",
    )
    parser.add_argument(
        "--others",
        default="",
        help="also measure other servers, comma-separated: peerjs (the PeerJS server) and "
        "y-webrtc (y-webrtc's signaling server) in churn and rate, from npm (package.json), "
        "each spoken to in its own protocol; twisted-echo (with our server's lean loop), "
        "twisted-echo-plain (Twisted's own loop) and node-echo, bare TCP echo servers: each "
        "runtime's floor, in rate",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating rounds (default 5, the number behind every quoted figure)",
    )
    parser.add_argument(
        "--scenarios",
        default="relay,latency,churn,idle,rate,scale",
        help="comma-separated subset of relay,latency,churn,idle,rate,scale "
        "and cluster-relay,cluster-latency (not run unless named; need redis-server)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument(
        "--cores", default="0,1", help="server core,load generator core (default 0,1)"
    )
    parser.add_argument(
        "--cluster-cores",
        default="0",
        help="cores of the cluster scenarios' node 1, node 2 and redis-server, "
        "comma-separated, reused in turn (default 0: all on one core, like one node)",
    )
    parser.add_argument(
        "--out", default="-", help="JSON lines file for every result (default: stdout)"
    )
    parser.add_argument(
        "--server-log", help="file for the servers' own output (default: discarded)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each result as it comes"
    )
    parser.add_argument(
        "--limits",
        choices=("off", "on"),
        default="off",
        help="ours (and --baseline) with its abuse limits off (default, as the reference "
        "has none) or on (every check running, set above what one load generator crosses), "
        "to measure what they cost",
    )
    parser.add_argument(
        "--sizes",
        help="JSON object overriding a scenario's sizes, e.g. "
        '\'{"scale": [{"connections": 4000, ...}]}\'',
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not re.fullmatch(r"\d+,\d+", args.cores):
        parser.error("--cores takes two core numbers, e.g. 0,1")
    if not re.fullmatch(r"\d+(,\d+){0,2}", args.cluster_cores):
        parser.error("--cluster-cores takes one to three core numbers, e.g. 0 or 0,2,3")
    if args.baseline and not (Path(args.baseline) / ".venv" / "bin" / "twistd").exists():
        parser.error(f"--baseline {args.baseline}: no .venv/bin/twistd there")
    args.others = [name.strip() for name in args.others.split(",") if name.strip()]
    unknown_others = set(args.others) - set(OTHERS)
    if unknown_others:
        parser.error(f"--others: unknown {', '.join(sorted(unknown_others))}; "
                     f"choose from {', '.join(OTHERS)}")  # fmt: skip
    for tool in ("node", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed and not installed")
    if not (ROOT / "node_modules" / "ws").is_dir():
        parser.error("the load generator needs the npm package ws: run `npm ci` (make bench does)")
    info = machine()
    args.out_file = sys.stdout if args.out == "-" else open(args.out, "w")  # noqa: SIM115
    print(json.dumps({"machine": info}), file=args.out_file, flush=True)
    records = run(args)
    table, rows = summarize(records, info)
    for row in rows:
        print(json.dumps(row), file=args.out_file)
    if args.out_file is not sys.stdout:
        args.out_file.close()
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
