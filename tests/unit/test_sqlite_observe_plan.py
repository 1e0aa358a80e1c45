"""`observe` reads through the indexes migration 0006 made for it, on SQLite (PostgreSQL's
plan: tests/integration/test_observe_plans.py). A partial index serves a query only while the
query's WHERE implies the index's, so an edit to either would send `observe` back to reading
every instance without failing a single scenario."""

from __future__ import annotations

import sqlite3

from durox.providers.sqlite._executor import _migrate
from durox.providers.sqlite._provider import QUERIES


def test_sqlite_observe_reads_the_instances_through_its_indexes() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _migrate(conn)
    details = [
        row[3]
        for name, args in (("observe_usage", ()), ("observe_failures", (0,)))
        for row in conn.execute("EXPLAIN QUERY PLAN " + QUERIES[name], args)
    ]
    assert not [d for d in details if d.startswith("SCAN instances") and "INDEX" not in d]
    assert "SCAN instances USING INDEX instances_not_ended" in details
    assert any("USING INDEX instances_not_ended (orchestration_name=?" in d for d in details)
    assert any("USING INDEX executions_failed_by_time" in d for d in details)
