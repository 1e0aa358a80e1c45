"""The latency accounting runs against the real stores (SQLite always, PostgreSQL when
`DUROX_TEST_PG_DSN` is set): every hand-off of a single-activity instance is found and counted.
Structure only; the figures depend on the machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import latency

STORES = ["sqlite"] + (["postgres"] if os.environ.get("DUROX_TEST_PG_DSN") else [])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("store", STORES)
def test_one_instance_at_a_time_is_accounted_for(store: str, tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    args = ["--store", store, "--n", "3", "--warmup", "1", "--gap-ms", "20"]
    assert latency.main([*args, "--workdir", str(tmp_path), "--json", str(out)]) == 0
    [result] = json.loads(out.read_text())
    assert result["instances"] == 3 and result["not_instrumented"] == []
    counts = result["median_counts"]
    # At least the start, the turn that schedules the activity, the activity's result and the
    # completing turn write; the client polled at least once.
    assert counts["commits_that_wrote"] >= 4 and counts["client_polls"] >= 1
    if store == "sqlite":
        assert counts["sqlite_thread_trips"] >= 4 and counts["postgres_statements"] == 0
    else:
        assert counts["postgres_statements"] >= 4 and counts["notifies_received"] >= 1
        names = {s["statement"] for s in result["server_statements"]}
        assert {"start_instance", "get_instance"} <= names
    seen = {s["to"]: s["median_ms"] for s in result["segments"]}
    assert seen["start committed (start_orchestration returns)"] is not None
    assert seen["client saw it (wait_for_orchestration returns)"] is not None
    assert seen["turn 1 code ran"] is not None and seen["activity code ran"] is not None
    timeline = result["median_instance"]["timeline"]
    assert any("start_orchestration" in line for line in timeline)
