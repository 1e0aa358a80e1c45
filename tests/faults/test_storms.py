"""Item 6 of issue 15: poison and storms beside a healthy workload.

Three kinds of bad instance at once: orchestration code that raises on every turn, an activity
that outlives its timeout every time, and an activity no worker registers (retried with
backoff, then poisoned). The healthy pipelines are timed without them and beside them; the
store's load is read from `pg_stat_database` (commits and rollbacks per second). The figures
are reported, not asserted: this machine is shared.
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from durox import Client
from durox.providers import PostgresProvider
from tests.faults.pg import Cluster
from tests.faults.workers import WorkerProc, record, tails, wait_for

pytestmark = pytest.mark.timeout(400)

HEALTHY = 200
BROKEN = 400
TIMES_OUT = 300
ORPHANS = 300
DAWDLE = 1.0


async def test_bad_instances_end_with_their_reason_and_healthy_work_goes_on(
    scratch: Path, logs: Path
) -> None:
    pg = Cluster(scratch).init()
    pg.start()
    provider = await PostgresProvider.connect(pg.dsn(), listen=False, pool_size=2)
    workers: list[WorkerProc] = []
    try:
        client = Client(provider)
        workers += [WorkerProc(logs, f"w{i}", pg.dsn(), max_attempts=3) for i in range(2)]
        for w in workers:
            await wait_for(w.ready, f"{w.name} gets ready", 90)

        alone_s, alone_tx = await _healthy_run(client, provider, pg, "alone")

        began = time.monotonic()
        for i in range(max(BROKEN, TIMES_OUT, ORPHANS)):
            if i < BROKEN:
                await client.start_orchestration(f"broken-{i}", "Broken", i)
            if i < TIMES_OUT:
                await client.start_orchestration(f"slow-{i}", "TimesOut", DAWDLE)
            if i < ORPHANS:
                await client.start_orchestration(f"orphan-{i}", "Orphan", i)
        beside_s, beside_tx = await _healthy_run(client, provider, pg, "beside")
        bad = BROKEN + TIMES_OUT + ORPHANS
        await wait_for(lambda: _ended(provider, "Failed", bad), "every bad instance ends", 300)
        storm_s = time.monotonic() - began

        reasons: dict[str, set[str]] = {}
        for info in await provider.list_instances(limit=10_000):
            if info.status == "Failed":
                assert info.error is not None, info
                kind = info.instance_id.split("-")[0]
                reasons.setdefault(kind, set()).add(
                    f"{info.error.kind}: {info.error.message}"[:120]
                )
        assert {k: {r.split(":")[0] for r in v} for k, v in reasons.items()} == {
            "broken": {"application"},  # the orchestration's own exception
            "slow": {"timeout"},
            "orphan": {"application"},  # ActivityFailedError carrying the poison
        }, reasons
        assert all("poison" in r for r in reasons["orphan"]), reasons
        assert all(w.proc.poll() is None for w in workers), tails(*workers)
        assert await _ended(provider, "Completed", 2 * HEALTHY)
        record(
            "poison and storms",
            instances=bad + 2 * HEALTHY,
            injected=bad,
            healthy_alone_per_s=round(HEALTHY / alone_s, 1),
            healthy_beside_per_s=round(HEALTHY / beside_s, 1),
            slowdown=round(beside_s / alone_s, 2),
            commits_per_s_alone=round(alone_tx[0], 1),
            commits_per_s_beside=round(beside_tx[0], 1),
            rollbacks_per_s_beside=round(beside_tx[1], 1),
            storm_s=round(storm_s, 1),
            reasons={k: sorted(v)[0] for k, v in reasons.items()},
            lost=0,
            duplicated=0,
        )
    finally:
        for w in workers:
            w.stop()
        await provider.close()
        pg.stop("immediate")


async def _healthy_run(
    client: Client, provider: PostgresProvider, pg: Cluster, tag: str
) -> tuple[float, tuple[float, float]]:
    """Start HEALTHY pipelines, wait for them: (seconds, (commits/s, rollbacks/s))."""
    before = await _stat(pg)
    began = time.monotonic()
    for i in range(HEALTHY):
        await client.start_orchestration(f"{tag}-{i}", "Pipeline", i)
    await wait_for(lambda: _done(provider, tag, HEALTHY), f"healthy pipelines ({tag})", 300)
    took = time.monotonic() - began
    after = await _stat(pg)
    return took, ((after[0] - before[0]) / took, (after[1] - before[1]) / took)


async def _done(provider: PostgresProvider, prefix: str, n: int) -> bool:
    infos = await provider.list_instances(limit=10_000)
    return sum(i.status == "Completed" and i.instance_id.startswith(prefix) for i in infos) >= n


async def _ended(provider: PostgresProvider, status: str, n: int) -> bool:
    infos = await provider.list_instances(limit=10_000)
    return sum(i.status == status for i in infos) >= n


async def _stat(pg: Cluster) -> tuple[int, int]:
    conn = await asyncpg.connect(pg.dsn())
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = 'postgres'"
        )
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()
