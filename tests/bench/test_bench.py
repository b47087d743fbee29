"""Smoke runs of the benchmarks at tiny sizes: they run end to end against
our server and report every figure. No timing is asserted here; speed is
the benchmark's business (bench/run.py, bench/abuse.py), not the suite's."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ..support.processes import unmeasured_environment

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "bench"))
_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench = sys.modules["bench_run"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

UNMEASURED = unmeasured_environment()  # the benchmark's processes

needs_load_generator = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "ws").is_dir(),
    reason="the load generator needs node and the npm package ws (npm ci)",
)
# The other servers compared (--others) come from npm too; a node_modules
# from before they were added lacks them, and the smoke run then leaves them out.
OTHERS_INSTALLED = all(
    (ROOT / "node_modules" / package).is_dir() for package in ("peer", "y-webrtc")
)
MACHINE = {"date": "d", "cpu": "c", "cores": 2, "kernel": "k", "python": "p", "node": "n"}


def results_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


@needs_load_generator
def test_quick_benchmark_reports_every_figure_for_ours_and_a_baseline(tmp_path: Path) -> None:
    # This checkout doubles as the baseline build: one run covers every
    # scenario, both builds and the per-round ratios between them.
    out = tmp_path / "results.jsonl"
    echoes = ["twisted-echo", "node-echo"]
    others = [*(["peerjs", "y-webrtc"] if OTHERS_INSTALLED else []), *echoes]
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--rounds", "1",
         "--baseline", str(ROOT), "--others", ",".join(others), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=UNMEASURED,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    records = results_of(out)
    assert "machine" in records[0]
    assert set(records[1]["servers"]) == {"ours", "baseline", *others}
    assert not [r for r in records if "failed" in r]
    results = [r for r in records if "figures" in r]
    assert {r["scenario"] for r in results} == set(bench.FIGURES)
    assert {r["server"] for r in results} == {"ours", "baseline", *others}
    for name in others:
        # The other servers do churn and rate only, in their own protocols;
        # the echo servers rate alone (they have no lobbies to churn).
        expected = {"rate"} if name in echoes else {"churn", "rate"}
        assert {r["scenario"] for r in results if r["server"] == name} == expected
    assert "| rate | server CPU in the measured window (CPU-s) | " in finished.stdout
    assert "| ours/twisted-echo | ours/node-echo |" in finished.stdout
    if OTHERS_INSTALLED:
        assert "| ours/peerjs | ours/y-webrtc |" in finished.stdout
    for record in results:
        for key, *_ in bench.FIGURES[record["scenario"]]:
            value = record["figures"][key]
            assert isinstance(value, int | float) and value == value, (record["scenario"], key)
    rate = [r["figures"] for r in results if r["scenario"] == "rate"]
    for figures in rate:
        # Every message sent in the window arrived, checked one by one.
        assert figures["delivered"] == figures["sent"] > 0
    scale_sizes = {r["size"] for r in results if r["scenario"] == "scale"}
    assert scale_sizes == {"100 connections", "110 connections"}
    summaries = [r for r in records if r.get("summary")]
    cost = next(r for r in summaries if (r["scenario"], r["figure"]) == ("rate", "serverCpuS"))
    assert len(cost["baselineRatios"]) == 1 and cost["baselineRatio"] > 0
    assert "| vs baseline | per round |" in finished.stdout
    assert "| rate | server CPU in the measured window (CPU-s) |" in finished.stdout


def summary_input(scenario: str, round_: int, server: str, value: float) -> dict[str, Any]:
    """A measured record of ``scenario`` with every figure at ``value``."""
    figures = {key: value for key, *_ in bench.FIGURES[scenario]}
    return {"round": round_, "server": server, "scenario": scenario, "size": "", "figures": figures}


def test_summary_takes_medians_and_per_round_ratios() -> None:
    record = functools.partial(summary_input, "relay")

    records = [
        record(1, "ours", 1.0), record(1, "reference", 2.0),
        record(2, "ours", 3.0), record(2, "reference", 2.0),
        record(3, "ours", 2.0), record(3, "reference", 4.0),
    ]  # fmt: skip
    table, rows = bench.summarize(records, MACHINE)
    cost = next(row for row in rows if row["figure"] == "serverCpuSPer100k")
    assert (cost["ours"], cost["reference"]) == (2.0, 2.0)
    assert cost["ratios"] == [0.5, 1.5, 0.5]
    assert cost["ratio"] == 0.5
    assert (
        "| relay | server CPU per 100k relayed (CPU-s) | 2 | 2 | 0.50x | 0.50 1.50 0.50 | ≤ 1.0x |"
        in table
    )


def test_summary_sets_the_echo_floor_beside_the_reference() -> None:
    record = functools.partial(summary_input, "rate")

    records = [
        record(1, "ours", 3.0), record(1, "reference", 2.0), record(1, "twisted-echo", 2.5),
        record(2, "ours", 2.4), record(2, "reference", 2.0), record(2, "twisted-echo", 2.0),
    ]  # fmt: skip
    table, rows = bench.summarize(records, MACHINE)
    cost = next(row for row in rows if row["figure"] == "serverCpuS")
    assert cost["otherToReference"] == {"twisted-echo": [1.25, 1.0]}
    assert "| ours/twisted-echo | twisted-echo/reference |" in table
    assert (
        "| rate | server CPU in the measured window (CPU-s) | 2.7 | 2.25 | 1.20x (1.20 1.20) "
        "| 1.12x (1.25 1.00) |" in table
    )


def test_summary_with_a_baseline_gives_both_ratios_and_leaves_failed_rounds_out() -> None:
    record = functools.partial(summary_input, "rate")

    records = [
        record(1, "ours", 1.0), record(1, "baseline", 1.0), record(1, "reference", 2.0),
        record(2, "ours", 1.1), record(2, "baseline", 1.0), record(2, "reference", 2.0),
        {"round": 3, "server": "ours", "scenario": "rate", "size": "",
         "failed": "loadgen: rate: the load generator could not keep the rate"},
        record(3, "baseline", 9.0), record(3, "reference", 9.0),
    ]  # fmt: skip
    table, rows = bench.summarize(records, MACHINE)
    cost = next(row for row in rows if row["figure"] == "serverCpuS")
    assert cost["baselineRatios"] == [1.0, 1.1]
    assert cost["ratios"] == [0.5, 0.55]
    assert (cost["ours"], cost["baseline"], cost["reference"]) == (1.05, 1.0, 2.0)
    assert (
        "| rate | server CPU in the measured window (CPU-s) | 1.05 | 1 | 2 | 0.53x | 0.50 0.55 "
        "| 1.05x | 1.000 1.100 | ≤ 0.8x |" in table
    )
    assert "1 measurement(s) failed" in table
    assert "round 3 rate ours: loadgen: rate: the load generator could not keep" in table


@needs_load_generator
def test_a_bad_reference_path_is_a_clear_error(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--ref", str(tmp_path), "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert "has no server.js" in finished.stdout + finished.stderr


@needs_load_generator
def test_a_baseline_without_a_venv_is_a_usage_error(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--baseline", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert f"--baseline {tmp_path}: no .venv/bin/twistd there" in finished.stderr


def test_ours_passes_only_the_options_its_build_lists() -> None:
    options = bench.plugin_help(Path(sys.executable).parent / "twistd")
    assert options["max-peers-per-address"] == "256"
    server = bench.ours("off")
    for option, value in bench.LIMITS_OFF.items():
        if option[2:] in options:
            at = server.command.index(option)
            assert server.command[at + 1] == value
        else:
            assert option not in server.command
    if "port-file" in options:
        assert server.writes_port_file and "{port_file}" in server.command
    else:
        assert not server.writes_port_file and "tcp:{port}:interface=127.0.0.1" in server.command
    assert not any(option.startswith("--max-") for option in bench.ours("default").command)


# A real listener that says where it listens the way --port-file does.
PORT_FILE_WRITER = textwrap.dedent("""
    import signal, socket, sys
    listener = socket.create_server(("127.0.0.1", 0))
    with open(sys.argv[1], "w") as port_file:
        port_file.write(f"127.0.0.1:{listener.getsockname()[1]}\\n")
    signal.sigwait([signal.SIGTERM])
""")

# A real listener on the port it is told, that finds it taken the first
# time (as when another program binds it between the release and the bind).
LOSES_ITS_PORT_ONCE = textwrap.dedent("""
    import os, signal, socket, sys
    if not os.path.exists(sys.argv[1]):
        open(sys.argv[1], "w").close()
        sys.exit("Error: listen EADDRINUSE: address already in use :::" + os.environ["PORT"])
    listener = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
    signal.sigwait([signal.SIGTERM])
""")


def test_a_server_that_writes_a_port_file_is_found_where_it_listens(tmp_path: Path) -> None:
    server = bench.Server(
        "writer", [sys.executable, "-c", PORT_FILE_WRITER, "{port_file}"], tmp_path,
        writes_port_file=True,
    )  # fmt: skip
    running = bench.start(server, 0, tmp_path / "log")
    try:
        assert running.port in bench.listening_ports(running.pid)
        bench.socket.create_connection(("127.0.0.1", running.port), timeout=10).close()
    finally:
        bench.stop(running)
    assert running.scratch is not None and not running.scratch.exists()


def test_a_server_that_loses_its_port_is_started_again(tmp_path: Path) -> None:
    server = bench.Server(
        "loser", [sys.executable, "-c", LOSES_ITS_PORT_ONCE, str(tmp_path / "tried")], tmp_path,
        env={"PORT": "{port}"},
    )  # fmt: skip
    running = bench.start(server, 0, tmp_path / "log")
    try:
        assert running.port in bench.listening_ports(running.pid)
        assert "EADDRINUSE" in (tmp_path / "log").read_text()
    finally:
        bench.stop(running)


@needs_load_generator
def test_the_rate_round_fails_when_the_load_generator_falls_behind(tmp_path: Path) -> None:
    running = bench.start(bench.ours("off"), 0, tmp_path / "log")
    try:
        params = {"pairs": 2, "rate": 200, "dataBytes": 200, "warmup": 0.1,
                  "duration": 0.3, "maxLagMs": 0}  # fmt: skip
        with pytest.raises(bench.LoadGeneratorBehind, match="could not keep the rate"):
            bench.load("rate", params, running.port, running.pid, 1)
    finally:
        bench.stop(running)


@needs_load_generator
def test_quick_cluster_benchmark_compares_two_nodes_with_one(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is missing (apt-get install redis-server)")
    out = tmp_path / "results.jsonl"
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--rounds",
            "1",
            "--scenarios",
            "cluster-relay,cluster-latency",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=UNMEASURED,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    results = [r for r in results_of(out) if "figures" in r]
    assert {(r["scenario"], r["server"]) for r in results} == {
        (scenario, setup)
        for scenario in bench.CLUSTER
        for setup in (bench.ONE_NODE, bench.TWO_NODES)
    }
    for record in results:
        for key, *_ in bench.CLUSTER_FIGURES[record["scenario"]]:
            value = record["figures"][key]
            assert isinstance(value, int | float) and value == value, (record["scenario"], key)
    assert "| cluster-relay | CPU per 100k relayed, all processes (CPU-s) |" in finished.stdout
    assert "| cluster-latency | relay latency p99 (ms) |" in finished.stdout


def test_quick_abuse_scenarios_report_their_figures(tmp_path: Path) -> None:
    out = tmp_path / "abuse.jsonl"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "abuse.py"), "--quick",
         "--scenarios", "handshakes,byte-flood,log-storm", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    records = {r["scenario"]: r for r in results_of(out)}
    assert set(records) == {"handshakes", "byte-flood", "log-storm"}
    for record in records.values():
        assert "failed" not in record, record
    handshakes = records["handshakes"]["figures"]
    assert handshakes["upgraded"] == handshakes["upgrades"] == 20
    # Past --max-handshakes-per-address the server closes what the one
    # address opens at once; the other address's upgrades all get through.
    assert 0 < handshakes["established"] <= handshakes["attempted"]
    flood = records["byte-flood"]["figures"]
    assert flood["totalMB"] > 0 and flood["canarySamples"] > 0 and not flood["canaryError"]
    storm = records["log-storm"]["figures"]
    assert storm["attempts"] > 0 and storm["logLines"] > 0
    # Its quota full, the attacking address is refused with 429.
    assert storm["answers"].get("429", 0) > 0
    assert storm["heldConnections"] == 255
    assert "| refusal log storm, 0.5 s |" in finished.stdout


def test_cluster_cores_are_checked() -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--cluster-cores", "a"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "--cluster-cores takes one to three core numbers" in finished.stderr
