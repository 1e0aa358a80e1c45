"""Item 4 of issue 15: the store's disk fills in the middle of a run.

durox's tables live in a tablespace on a small tmpfs (the database's data volume); a ballast
file then takes every byte left on it. PostgreSQL refuses what needs a new page (SQLSTATE
53100, "could not extend file ... No space left on device"); reads still answer. When the
ballast goes, the same worker processes finish everything, with no turn half applied.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import asyncpg
import pytest

from durox import Client
from durox.core import events as ev
from durox.errors import DuroxError
from durox.providers import PostgresProvider
from tests.faults.app import STEPS
from tests.faults.net import sh
from tests.faults.pg import Cluster
from tests.faults.support import completed, duplicated_completions
from tests.faults.workers import WorkerProc, record, tails, wait_for

pytestmark = pytest.mark.timeout(300)

N = 300
LATE = 50  # started once the disk is full: refused then, started again after
WAKERS = 10  # instances that keep writing through the fill, whatever the pace of the rest
TICKS = [150, 0.2]  # each: 150 timers of 0.2 s, about 30 s of steady history appends
FULL_FOR = 10.0  # seconds the disk stays full while the workers keep trying


async def test_a_full_disk_stops_work_cleanly_and_it_resumes(scratch: Path, logs: Path) -> None:
    small = scratch / "small"
    small.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(small))
    workers: list[WorkerProc] = []
    pg = Cluster(scratch)
    provider = None
    try:
        (small / "ts").mkdir()
        shutil.chown(small / "ts", "postgres")
        pg.init()
        pg.start()
        admin = await asyncpg.connect(pg.dsn())
        try:
            await admin.execute(f"CREATE TABLESPACE small LOCATION '{small / 'ts'}'")
            await admin.execute("CREATE DATABASE durox TABLESPACE small")
        finally:
            await admin.close()
        dsn = pg.dsn(database="durox")
        provider = await PostgresProvider.connect(dsn, listen=False, pool_size=2)
        client = Client(provider)
        workers += [WorkerProc(logs, f"w{i}", dsn) for i in range(2)]
        for w in workers:
            await wait_for(w.ready, f"{w.name} gets ready", 90)
        for i in range(N):
            await client.start_orchestration(f"p-{i}", "Pipeline", i)
        await wait_for(lambda: _at_least(provider, N // 5), "a fifth completes", 120)

        # Work that is certain to need new pages after the fill. A few one-off writes are not
        # (they can land in free space left in pages already allocated, and on a fast machine
        # every pipeline may finish first); a steady stream of appended history is.
        for i in range(WAKERS):
            await client.start_orchestration(f"wake-{i}", "Tick", TICKS)
        # fill the volume: every byte left goes to a ballast file
        sh("dd", "if=/dev/zero", f"of={small / 'ballast'}", "bs=64k", check=False)
        t_full = time.monotonic()
        detect = await wait_for(
            lambda: any("53100" in w.text() for w in workers), "workers see the disk full", 120
        )
        errors: dict[int, DuroxError] = {}
        for i in range(LATE):
            try:
                await client.start_orchestration(f"late-{i}", "Pipeline", i)
            except DuroxError as exc:
                errors[i] = exc
        assert all(e.retryable for e in errors.values()), errors
        refused = len(errors)
        before = await _stat(pg)
        stalled_at = await completed(provider)
        await asyncio.sleep(FULL_FOR)
        after = await _stat(pg)
        full_s = time.monotonic() - t_full
        rollbacks_per_s = (after[1] - before[1]) / FULL_FOR
        commits_per_s = (after[0] - before[0]) / FULL_FOR
        assert all(w.ready() for w in workers), "reads still answer: the workers stay ready"
        assert rollbacks_per_s < 500, f"a hot loop: {rollbacks_per_s:.0f} rollbacks/s"

        (small / "ballast").unlink()
        t_free = time.monotonic()
        resume = await wait_for(lambda: _at_least(provider, stalled_at + 1), "work resumes", 120)
        for i in errors:  # what was refused is started again
            await client.start_orchestration(f"late-{i}", "Pipeline", i)
        await wait_for(lambda: _at_least(provider, N + LATE + WAKERS), "everything completes", 180)
        recovered = time.monotonic() - t_free

        ids = [f"p-{i}" for i in range(N)] + [f"late-{i}" for i in range(LATE)]
        for iid in ids:  # whole turns only: every history is complete and in order
            history = await provider.read_history(iid, 1)
            assert [e.event_id for e in history] == list(range(1, len(history) + 1)), iid
            assert sum(isinstance(e, ev.ActivityScheduled) for e in history) == STEPS, iid
            assert sum(isinstance(e, ev.ActivityCompleted) for e in history) == STEPS, iid
        assert await duplicated_completions(provider, ids) == 0
        depths = await provider.queue_depths()
        assert (depths.orchestrator_ready, depths.worker_ready, depths.worker_locked) == (0, 0, 0)
        assert all(w.proc.poll() is None for w in workers), tails(*workers)
        runs = sum(w.metric("durox_activity_executions_total") for w in workers)
        assert sum(w.metric("durox_poisoned_total") for w in workers) == 0, tails(*workers)
        record(
            "disk full",
            instances=N + LATE,
            injected=1,
            detect_s=round(detect, 1),
            full_s=round(full_s, 1),
            starts_refused=refused,
            rollbacks_per_s_while_full=round(rollbacks_per_s, 1),
            commits_per_s_while_full=round(commits_per_s, 1),
            resume_s=round(resume, 1),
            all_done_s=round(recovered, 1),
            lost=0,
            duplicated=0,
            activity_reruns=int(runs) - len(ids) * STEPS,
        )
    finally:
        for w in workers:
            w.stop()
        if provider is not None:
            await provider.close()
        pg.stop("immediate")
        sh("umount", "-l", str(small), check=False)


async def _at_least(provider: PostgresProvider, n: int) -> bool:
    try:
        return await completed(provider) >= n
    except DuroxError:
        return False


async def _stat(pg: Cluster) -> tuple[int, int]:
    """(commits, rollbacks) of the durox database so far."""
    conn = await asyncpg.connect(pg.dsn())
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = 'durox'"
        )
        assert row is not None
        return int(row[0]), int(row[1])
    finally:
        await conn.close()
