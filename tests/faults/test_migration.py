"""Item 5 of issue 15, the extras beside `tests/integration/test_rolling_upgrade.py`: a worker
killed in the middle of a schema migration, then several workers starting at once on the
half-old schema.

The schema starts at migration 0002. The test holds, in an open transaction, the name of the
type migration 0004 creates, so the first worker applies 0003 and then waits inside 0004, in
its migration transaction and under the migration's advisory lock. It is SIGKILLed there.
Three workers then start together; the test lets go of the name. Migrations are one
transaction: the killed worker's 0003 is gone with it, one of the three applies 0003 to the
last migration, the others find nothing left to do, and all of them work.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from durox import Client
from durox.providers import PostgresProvider
from durox.providers.postgres._driver import migrations
from tests.faults.app import STEPS
from tests.faults.pg import Cluster
from tests.faults.support import completed, duplicated_completions
from tests.faults.workers import WorkerProc, record, tails, wait_for

pytestmark = pytest.mark.timeout(300)

SCHEMA = "durox"  # the worker's default
N = 100


async def test_a_worker_killed_mid_migration_and_a_concurrent_start(
    scratch: Path, logs: Path
) -> None:
    pg = Cluster(scratch).init()
    pg.start()
    admin = await asyncpg.connect(pg.dsn())
    workers: list[WorkerProc] = []
    provider = None
    try:
        await _migrate_up_to(admin, 2)
        holder = await asyncpg.connect(pg.dsn())
        hold = holder.transaction()
        await hold.start()
        await holder.execute(f'CREATE TYPE "{SCHEMA}".durox_turn AS (held boolean)')

        first = WorkerProc(logs, "first", pg.dsn())
        workers.append(first)
        await wait_for(lambda: _waiting_in_0004(admin), "the first worker waits inside 0004", 90)
        await wait_for(
            lambda: "applying postgres migration 0004" in first.text(), "0003 applied, 0004 begun"
        )
        assert await _versions(admin) == [1, 2]  # 0003 is done but not committed
        first.proc.kill()
        first.proc.wait(30)
        t_kill = time.monotonic()

        starting = [WorkerProc(logs, f"w{i}", pg.dsn()) for i in range(3)]
        workers += starting
        await hold.rollback()  # the killed worker's transaction goes on, finds no client, aborts
        await holder.close()
        for w in starting:
            await wait_for(w.ready, f"{w.name} gets ready", 120)
        ready_s = time.monotonic() - t_kill

        latest = [v for v, _, _ in migrations()]
        assert await _versions(admin) == latest
        appliers = [w.name for w in starting if "applying postgres migration" in w.text()]
        assert len(appliers) == 1, tails(*starting)
        assert not any("applying postgres migration 0001" in w.text() for w in starting), (
            "a migration was applied twice"
        )

        provider = await PostgresProvider.connect(pg.dsn(), listen=False, pool_size=2)
        assert await _versions(admin) == latest  # and once more: nothing left to do
        client = Client(provider)
        for i in range(N):
            await client.start_orchestration(f"p-{i}", "Pipeline", i)
        await wait_for(lambda: _all(provider, N), "the new workers run a workload", 120)
        infos = await provider.list_instances(limit=N + 10)
        assert sorted(i.output for i in infos) == sorted(i + STEPS for i in range(N))
        assert await duplicated_completions(provider, [i.instance_id for i in infos]) == 0
        record(
            "killed mid-migration, then 3 workers start together",
            instances=N,
            injected=1,
            resume_s=round(ready_s, 1),
            migrations_applied_by=appliers,
            lost=0,
            duplicated=0,
            activity_reruns=0,
        )
    finally:
        for w in workers:
            w.stop()
        if provider is not None:
            await provider.close()
        await admin.close()
        pg.stop("immediate")


async def _migrate_up_to(conn: asyncpg.Connection, last: int) -> None:
    """The schema as a release that shipped migrations 1..`last` left it."""
    async with conn.transaction():
        await conn.execute(f'CREATE SCHEMA "{SCHEMA}"')
        await conn.execute(f'SET LOCAL search_path = "{SCHEMA}"')
        await conn.execute(
            "CREATE TABLE durox_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version <= last:
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO durox_migrations (version, name) VALUES ($1, $2)", version, name
                )


async def _versions(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch(f'SELECT version FROM "{SCHEMA}".durox_migrations ORDER BY version')
    return [r[0] for r in rows]


async def _waiting_in_0004(conn: asyncpg.Connection) -> bool:
    n = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%durox_turn%'"
    )
    return bool(n)


async def _all(provider: PostgresProvider, n: int) -> bool:
    return await completed(provider) >= n
