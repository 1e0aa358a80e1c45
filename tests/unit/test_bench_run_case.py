"""A configuration that fails is recorded as failed, with its own error text, and reaches the
report's list of failures: whether the case raised, crashed without a result, or hung."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import report
from bench.__main__ import run_case
from bench.common import Case


def _case(tmp_path: Path, workload: str = "seq5") -> Case:
    return Case(
        "durox",
        "sqlite",
        workload,
        n=2,
        inflight=1,
        runs=1,
        warmup=1,
        orch_conc=4,
        act_conc=8,
        workdir=str(tmp_path),
        label="00-durox-sqlite-test",
    )


def _fake_python(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "fake-python"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def test_a_case_that_raises_is_recorded_with_its_error(tmp_path: Path) -> None:
    result = run_case(sys.executable, _case(tmp_path, "no-such-workload"), tmp_path, 120)
    assert result["ok"] is False
    assert result["error"] == "KeyError: 'no-such-workload'"
    assert result["case"]["orch_conc"] == 4  # the configuration stays with its failure
    [row] = report.best({"cases": [result], "limits": {}})
    assert row["failed"] == [
        {"config": "inflight 1, disp 4/8, FULL", "error": "KeyError: 'no-such-workload'"}
    ]


def test_a_case_that_dies_without_a_result_is_recorded_with_its_last_words(
    tmp_path: Path,
) -> None:
    python = _fake_python(tmp_path, "echo 'database is locked' >&2; exit 3")
    result = run_case(python, _case(tmp_path), tmp_path, 60)
    assert result["ok"] is False
    assert result["error"].startswith("no result (exit 3): database is locked (see ")


def test_a_case_that_hangs_is_recorded_as_timed_out(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, "echo 'still waiting for a lock' >&2; exec sleep 30")
    result = run_case(python, _case(tmp_path), tmp_path, 1)
    assert result["ok"] is False
    assert result["error"] == "timed out after 1s: still waiting for a lock"
