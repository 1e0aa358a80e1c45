"""The benchmark's smoke mode runs here so it never rots: durox on SQLite (and on PostgreSQL
when `DUROX_TEST_PG_DSN` is set), tiny counts, structure checked and never timings. The peers
are not installed in the project's environment; their adapters are imported to keep them
syntactically alive."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module", ["bench.peers.duroxide_sys", "bench.peers.dbos_sys", "bench.peers.temporal_sys"]
)
def test_peer_adapters_import_without_their_peer(module: str) -> None:
    mod = importlib.import_module(module)
    assert inspect.iscoroutinefunction(mod.run)


@pytest.mark.timeout(300)
def test_smoke_mode_writes_a_complete_results_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--out",
            str(tmp_path / "out"),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [path] = (tmp_path / "out").glob("smoke-*.json")
    doc = json.loads(path.read_text())
    assert {"machine", "versions", "limits", "replay", "cases", "table"} <= doc.keys()
    assert doc["machine"]["cores"] >= 1 and doc["versions"]["sqlite"]
    workloads = {c["case"]["workload"] for c in doc["cases"]}
    assert workloads == {"seq5", "fanout5", "single", "timer_can"}
    stores = {c["case"]["store"] for c in doc["cases"]}
    assert stores == ({"sqlite", "postgres"} if os.environ.get("DUROX_TEST_PG_DSN") else {"sqlite"})
    for case in doc["cases"]:
        assert case["ok"], case.get("error")
        assert case["runs"][0]["instances"] == case["case"]["n"]
        assert set(case["median"]) >= {"act_per_s", "orch_per_s", "p50_ms", "p95_ms", "p99_ms"}
        assert case["peak_rss_mb"] and all(m > 0 for m in case["peak_rss_mb"])
        if case["case"]["store"] == "postgres":
            assert case["median"]["round_trips_per_activity"] > 0
            assert "pgbench_simple_update_tps" in doc["limits"]
    assert doc["replay"][0]["events"] == 1_001
    assert any(r["system"] == "machine" for r in doc["table"])
    assert "| store | workload | system |" in proc.stdout


@pytest.mark.timeout(120)
def test_the_long_history_benchmark_runs_and_reports_both_ways(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}"}
    out = tmp_path / "long.json"
    args = ["--lengths", "10,40", "--turns", "1", "--long", "5", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.long_history", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [r["events"] for r in doc["engine"]] == [r["events"] for r in doc["sqlite"]] == [10, 40]
    for row in doc["engine"]:
        assert row["cold_us"] > 0 and row["kept_us"] > 0
    for row in doc["sqlite"]:
        assert row["cold_ms"] > 0 and row["kept_ms"] > 0
    assert doc["memory"][0]["bytes_per_instance"] > 0
    assert doc["long_execution"]["kept_s"] > 0 and doc["long_execution"]["cold_s"] > 0


@pytest.mark.timeout(120)
def test_the_cache_memory_benchmark_keeps_every_instance_only_with_the_cache(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}"}
    out = tmp_path / "memory.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cache_memory", "--instances", "40", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert (doc["cache_off"]["kept"], doc["cache_on"]["kept"]) == (0, 40)
    for side in ("cache_off", "cache_on"):
        assert doc[side]["peak_rss_mib"] >= doc[side]["rss_mib"] > 0
