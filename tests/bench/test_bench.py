"""A smoke run of the benchmark at tiny sizes: it runs end to end against our
server and reports every figure. No timing is asserted here; speed is the
benchmark's business (bench/run.py), not the test suite's."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
assert _spec is not None and _spec.loader is not None
bench = sys.modules["bench_run"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# The benchmark's processes run unmeasured: its servers only repeat code paths
# the rest of the suite measures, and tracing them would take CPU that the
# tests beside them need.
UNMEASURED = {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE")}

needs_load_generator = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "ws").is_dir(),
    reason="the load generator needs node and the npm package ws (npm ci)",
)


@needs_load_generator
def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    finished = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=UNMEASURED,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert "machine" in records[0]
    results = [r for r in records if "figures" in r]
    assert {r["scenario"] for r in results} == set(bench.FIGURES)
    for record in results:
        assert record["server"] == "ours"
        for key, *_ in bench.FIGURES[record["scenario"]]:
            value = record["figures"][key]
            assert isinstance(value, int | float) and value == value, (record["scenario"], key)
    scale_sizes = {r["size"] for r in results if r["scenario"] == "scale"}
    assert scale_sizes == {"100 connections", "200 connections"}
    assert "| relay | server CPU per 100k relayed (CPU-s) |" in finished.stdout


def test_summary_takes_medians_and_per_round_ratios() -> None:
    def record(round_: int, server: str, value: float) -> dict:
        figures = {key: value for key, *_ in bench.FIGURES["relay"]}
        return {
            "round": round_,
            "server": server,
            "scenario": "relay",
            "size": "",
            "figures": figures,
        }

    records = [
        record(1, "ours", 1.0), record(1, "reference", 2.0),
        record(2, "ours", 3.0), record(2, "reference", 2.0),
        record(3, "ours", 2.0), record(3, "reference", 4.0),
    ]  # fmt: skip
    table, rows = bench.summarize(records, {"date": "d", "cpu": "c", "cores": 2, "kernel": "k",
                                            "python": "p", "node": "n"})  # fmt: skip
    cost = next(row for row in rows if row["figure"] == "serverCpuSPer100k")
    assert (cost["ours"], cost["reference"]) == (2.0, 2.0)
    assert cost["ratios"] == [0.5, 1.5, 0.5]
    assert cost["ratio"] == 0.5
    assert (
        "| relay | server CPU per 100k relayed (CPU-s) | 2 | 2 | 0.50x | 0.50 1.50 0.50 | ≤ 1.0x |"
        in table
    )


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
    records = [json.loads(line) for line in out.read_text().splitlines()]
    results = [r for r in records if "figures" in r]
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


def test_cluster_cores_are_checked() -> None:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--cluster-cores", "a"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "--cluster-cores takes one to three core numbers" in finished.stderr
