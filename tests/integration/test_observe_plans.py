"""`observe` reads through the indexes migration 0006 made for it (SQLite's plan is checked
in tests/unit/test_sqlite_observe_plan.py).

No timings here (docs/postgres.md, "Reading the store at scale", has them): what can break
silently is the plan's shape. A partial index serves a query only while the query's WHERE
implies the index's, so an edit to either (another status word, a column moved) would send
`observe` back to reading every instance without failing a single scenario.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg

from durox.providers import PostgresProvider
from durox.providers.postgres._queries import queries


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of a PostgreSQL JSON plan."""
    if isinstance(plan, list):
        for p in plan:
            yield from _nodes(p)
    elif isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan
        for value in plan.values():
            yield from _nodes(value)


async def test_postgres_observe_reads_the_instances_through_its_indexes(
    dsn: str, schema: str
) -> None:
    await (await PostgresProvider.connect(dsn, schema=schema, listen=False)).close()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            # An empty table is cheapest to read whole; with sequential scans priced out, the
            # planner shows which index each part can use at all.
            await conn.execute("SET LOCAL enable_seqscan = off")
            raw = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) " + queries(schema)["observe"], None, 0, "main"
            )
    finally:
        await conn.close()
    nodes = list(_nodes(json.loads(raw)))
    whole = {n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"}
    indexes = {n["Index Name"] for n in nodes if "Index Name" in n}
    # Instances that have not ended through their index, failed executions through theirs
    # (each joined to its instance by key), and no other index of either table: any other
    # would mean reading instances that ended, or failures outside the window.
    assert not whole & {"instances", "executions"}
    assert indexes - {"workers_by_pool", "workers_pkey"} == {
        "instances_not_ended",
        "executions_failed_by_time",
        "instances_pkey",
    }
    (window,) = [n for n in nodes if n.get("Index Name") == "executions_failed_by_time"]
    assert "completed_at >=" in window.get("Index Cond", "")  # the window bounds the read


async def test_postgres_outcomes_read_only_the_window_by_creation_time(
    dsn: str, schema: str
) -> None:
    """A ramp's analysis (`outcomes`) runs on every pass during a step: it must read the
    instances created in the step's window through instances_by_created, not the whole table."""
    await (await PostgresProvider.connect(dsn, schema=schema, listen=False)).close()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + queries(schema)["outcomes"], 0)
    finally:
        await conn.close()
    nodes = list(_nodes(json.loads(raw)))
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]
    (window,) = [n for n in nodes if n.get("Index Name") == "instances_by_created"]
    assert "created_at >=" in window.get("Index Cond", "")
