#!/usr/bin/env python3
"""Benchmark webrtc-signal side by side with Godot's Node.js reference server.

    python bench/run.py --ref PATH/TO/server_node [--rounds 3] [--scenarios relay,churn]

    python bench/run.py --scenarios cluster-relay,cluster-latency [--rounds 5]

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
ours/reference, and JSON lines (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
    "scale": [
        {"connections": n, "window": 8, "dataBytes": 200, "warmup": 1, "duration": 3, "settle": 1}
        for n in (100, 1000, 4000)
    ],
}
QUICK: dict[str, list[dict[str, Any]]] = {
    "relay": [{"pairs": 4, "window": 4, "dataBytes": 200, "warmup": 0.2, "duration": 0.5}],
    "latency": [{"pairs": 4, "rate": 200, "dataBytes": 200, "warmup": 0.2, "duration": 0.5}],
    "churn": [{"workers": 4, "warmup": 0.2, "duration": 0.5}],
    "idle": [{"connections": 40, "lobbySize": 4, "settle": 0.2}],
    "scale": [
        {
            "connections": n,
            "window": 2,
            "dataBytes": 200,
            "warmup": 0.2,
            "duration": 0.5,
            "settle": 0.2,
        }
        for n in (100, 200)
    ],
}

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
    command: list[str]  # "{port}" is replaced by the port
    cwd: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The reference has no abuse limits, and the load generator is one address
# standing in for thousands of players: ours runs with them off unless
# --limits on asks what having them on costs. Then every check runs, but the
# per-address and message-rate limits are set too high for the load to cross
# (at their defaults one address could not churn a lobby a millisecond); the
# send-buffer limit stays at its default.
LIMITS_OFF = [
    "--max-send-buffer", "0",
    "--max-peers-per-address", "0",
    "--max-handshakes-per-address", "0",
    "--max-byte-rate", "0",
    "--max-lobbies-per-address", "0",
    "--max-lobby-rate", "0",
    "--max-message-rate", "0",
]  # fmt: skip
LIMITS_ON = [
    "--max-peers-per-address", "1000000",
    "--max-handshakes-per-address", "1000000",
    "--max-byte-rate", "1000000000",
    "--max-byte-burst", "1000000000",
    "--max-lobbies-per-address", "1000000",
    "--max-lobby-rate", "1000000",
    "--max-message-rate", "1000000",
    "--max-message-burst", "1000000",
]  # fmt: skip


def ours(port: int, limits: bool = False) -> Server:
    twistd = Path(sys.executable).parent / "twistd"
    if not twistd.exists():
        sys.exit(
            f"bench: no twistd next to {sys.executable}; "
            "run it with the project's venv (make bench)"
        )
    command = [
        str(twistd),
        "-n",
        "--pidfile=",
        "webrtc-signal",
        "--port",
        "tcp:{port}:interface=127.0.0.1",
        *(LIMITS_ON if limits else LIMITS_OFF),
    ]
    return Server("ours", command, ROOT)


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
        cwd=copy, check=True,
    )  # fmt: skip
    return Server("reference", ["node", "server.js"], copy)


def start(server: Server, port: int, core: int, log: Path) -> subprocess.Popen[bytes]:
    command = [part.replace("{port}", str(port)) for part in server.command]
    process = subprocess.Popen(
        ["taskset", "-c", str(core), *command],
        cwd=server.cwd,
        env={**os.environ, "PORT": str(port)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"bench: {server.name} exited at start; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(0.3)  # let it finish starting up before measuring
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit(f"bench: {server.name} did not listen on {port} within 30 s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(
    scenario: str,
    params: dict[str, Any],
    port: int | list[int],
    pid: int | list[int],
    core: int,
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
    }
    result = subprocess.run(
        ["taskset", "-c", str(core), "node", str(LOADGEN), scenario, json.dumps(arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed ({scenario}): {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def start_redis(port: int, core: int, log: Path, work: Path) -> subprocess.Popen[bytes]:
    redis = Server(
        "redis-server",
        [
            "redis-server", "--bind", "127.0.0.1", "--port", "{port}", "--save", "",
            "--appendonly", "no", "--dir", str(work), "--loglevel", "warning",
        ],
        work,
    )  # fmt: skip
    return start(redis, port, core, log)


def run_cluster(
    setup: str, scenario: str, params: dict[str, Any], args: argparse.Namespace, log: Path
) -> dict[str, Any]:
    """One cluster scenario's load, on one node alone or on two nodes and Redis."""
    cores = [int(core) for core in args.cluster_cores.split(",")]
    load_core = int(args.cores.split(",")[1])
    processes: list[subprocess.Popen[bytes]] = []
    try:
        first_port = free_port()
        if setup == ONE_NODE:
            processes.append(start(ours(first_port), first_port, cores[0], log))
            urls = [first_port, first_port]
        else:
            redis_port, second_port = free_port(), free_port()
            with tempfile.TemporaryDirectory(prefix="webrtc-signal-bench-redis-") as work:
                processes.append(start_redis(redis_port, cores[2 % len(cores)], log, Path(work)))
                for index, (port, name) in enumerate(((first_port, "n1"), (second_port, "n2"))):
                    node = ours(port)
                    redis_url = f"redis://127.0.0.1:{redis_port}/0"
                    node.command += ["--redis", redis_url, "--node-id", name]
                    processes.append(start(node, port, cores[index % len(cores)], log))
                # Each node claims its pool of peer ids once Redis answers.
                time.sleep(0.5)
                urls = [first_port, second_port]
                return load(CLUSTER[scenario], params, urls, [p.pid for p in processes], load_core)
        return load(CLUSTER[scenario], params, urls, [p.pid for p in processes], load_core)
    finally:
        for process in reversed(processes):
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
    server_core, load_core = (int(c) for c in args.cores.split(","))
    port = free_port()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="webrtc-signal-bench-") as tmp:
        work = Path(tmp)
        servers = [ours(port, limits=args.limits == "on")]
        if args.ref:
            servers.append(reference(Path(args.ref).resolve(), work))
        else:
            print(
                "bench: no --ref given, so the Node reference is not measured; ours alone.\n"
                "       (get it with: git clone "
                "https://github.com/godotengine/godot-demo-projects, then\n"
                "       --ref godot-demo-projects/networking/webrtc_signaling/server_node)"
            )
        log = Path(args.server_log) if args.server_log else work / "servers.log"
        for round_number in range(1, args.rounds + 1):
            order = servers if round_number % 2 else list(reversed(servers))
            for scenario in scenarios:
                if scenario in CLUSTER:
                    setups = [ONE_NODE, TWO_NODES] if round_number % 2 else [TWO_NODES, ONE_NODE]
                    for setup in setups:
                        for params in sizes[scenario]:
                            figures = run_cluster(setup, scenario, params, args, log)
                            record = {
                                "round": round_number,
                                "server": setup,
                                "scenario": scenario,
                                "size": "",
                                "params": params,
                                "figures": figures,
                            }
                            records.append(record)
                            print(json.dumps(record), file=args.out_file, flush=True)
                            if args.verbose:
                                print(
                                    f"  round {round_number} {scenario} {setup}: "
                                    + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()),
                                    flush=True,
                                )
                    continue
                for params in sizes[scenario]:
                    for server in order:
                        process = start(server, port, server_core, log)
                        try:
                            figures = load(scenario, params, port, process.pid, load_core)
                        finally:
                            stop(process)
                        record = {
                            "round": round_number,
                            "server": server.name,
                            "scenario": scenario,
                            "size": label(params),
                            "params": params,
                            "figures": figures,
                        }
                        records.append(record)
                        print(json.dumps(record), file=args.out_file, flush=True)
                        if args.verbose:
                            print(
                                f"  round {round_number} {scenario} {label(params)} {server.name}: "
                                + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()),
                                flush=True,
                            )
    return records


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
    for scenario, size in keys:
        if scenario in CLUSTER:
            continue
        mine = [r for r in records if (r["scenario"], r["size"]) == (scenario, size)]
        for key, name, unit, _, target in FIGURES[scenario]:
            ours_values = [r["figures"][key] for r in mine if r["server"] == "ours"]
            ref_values = [r["figures"][key] for r in mine if r["server"] == "reference"]
            ratios = [
                o["figures"][key] / f["figures"][key]
                for o in mine if o["server"] == "ours"
                for f in mine if f["server"] == "reference" and f["round"] == o["round"]
                if f["figures"][key]
            ]  # fmt: skip
            rows.append({
                "summary": True,
                "scenario": scenario,
                "size": size,
                "figure": key,
                "name": name,
                "unit": unit,
                "ours": statistics.median(ours_values) if ours_values else None,
                "reference": statistics.median(ref_values) if ref_values else None,
                "ratios": ratios,
                "ratio": statistics.median(ratios) if ratios else None,
                "target": target,
            })  # fmt: skip
    lines = [
        f"webrtc-signal benchmark, {info['date']}: {info['cpu']}, {info['cores']} cores, "
        f"Linux {info['kernel']}, Python {info['python']}, Node {info['node']}",
        f"medians over {max(r['round'] for r in records)} round(s); "
        "ratio = median of per-round ours/reference",
        "",
        "| scenario | figure | ours | reference | ratio | per round | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["scenario"] in CLUSTER:
            continue

        def show(value: float | None) -> str:
            return "-" if value is None else f"{value:.3g}"

        scenario = row["scenario"] + (f" ({row['size']})" if row["size"] else "")
        target = f"≤ {row['target']:.1f}x" if row["target"] else ""
        per_round = " ".join(f"{r:.2f}" for r in row["ratios"])
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(
            f"| {scenario} | {row['name']} ({row['unit']}) | {show(row['ours'])} | "
            f"{show(row['reference'])} | {ratio} | {per_round} | {target} |"
        )
    if not any(row["scenario"] not in CLUSTER for row in rows):
        lines = lines[:3]
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
            row = {
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--scenarios",
        default="relay,latency,churn,idle,scale",
        help="comma-separated subset of relay,latency,churn,idle,scale "
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
        help="ours with its abuse limits off (default, as the reference has none) "
        "or on (every check running, set above what one load generator crosses), "
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
