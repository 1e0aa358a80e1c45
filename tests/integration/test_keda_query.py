"""The queue-depth query docs/operator.md gives a KEDA ScaledObject, run against the real store.

The test reads the query from the document itself (the SQL block under "Autoscaling"), so the
text a user copies is the text that ran here: work due now counts (ready, or being worked on),
work not due yet (a timer, a retry's back-off) does not."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import yaml

from durox.core import events as ev
from durox.providers import PostgresProvider

DOC = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def keda_query() -> str:
    text = DOC.read_text()
    section = text[text.index("### Autoscaling") :]
    match = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/operator.md: no ```sql block under ### Autoscaling"
    return match.group(1)


def test_the_scaled_object_example_runs_the_same_query() -> None:
    text = DOC.read_text()
    section = text[text.index("### Autoscaling") :]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    [scaled] = [yaml.safe_load(b) for b in blocks if "kind: ScaledObject" in b]
    [trigger] = scaled["spec"]["triggers"]
    assert " ".join(trigger["metadata"]["query"].split()) == " ".join(keda_query().split())
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "OrchestrationRegistry"


async def _depth(conn: asyncpg.Connection, schema: str) -> int:
    # the document spells the default schema, durox; the test's schema is a fresh one
    sql = keda_query().replace("durox.", f'"{schema}".')
    value = await conn.fetchval(sql)
    assert isinstance(value, int)
    return value


async def test_the_keda_query_counts_work_due_now(dsn: str, schema: str) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=1)
    conn = await asyncpg.connect(dsn)
    try:
        assert await _depth(conn, schema) == 0
        for i in range(3):
            await provider.start_instance(ev.StartOrchestration(f"i{i}", "O", None, None))
        assert await _depth(conn, schema) == 3

        # one of them fetched (locked by a worker): still work for the pool
        item = await provider.fetch_orchestration_item(60_000)
        assert item is not None
        assert await _depth(conn, schema) == 3

        now = await conn.fetchval(f'SELECT "{schema}".durox_now_ms()')
        insert = (
            f'INSERT INTO "{schema}".worker_queue (instance_id, execution_id, event_id, data,'
            " visible_at, lock_token, locked_until, created_at) VALUES ($1, 1, $2, '{}', $3, $4,"
            " $5, $6)"
        )
        await conn.execute(insert, "a", 1, now - 1, None, None, now)  # an activity due now
        await conn.execute(insert, "a", 2, now - 1, "t", now + 60_000, now)  # one running
        await conn.execute(insert, "a", 3, now + 600_000, None, None, now)  # a retry later
        assert await _depth(conn, schema) == 5
    finally:
        await conn.close()
        await provider.close()
