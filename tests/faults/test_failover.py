"""Item 2 of issue 15: the primary dies and its synchronous replica is promoted.

Two real PostgreSQL servers on loopback: a primary and a streaming replica it commits to
synchronously (`synchronous_standby_names`). Workers and the test connect with one multi-host
DSN and `target_session_attrs=read-write`, so whichever server accepts writes is the store.
The primary's host "dies" (postmaster and every backend SIGKILLed at once), the replica is
promoted, and the same worker processes carry on without a restart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from durox import Client
from durox.errors import DuroxError
from durox.providers import PostgresProvider
from tests.faults.app import STEPS
from tests.faults.pg import Cluster
from tests.faults.support import duplicated_completions
from tests.faults.workers import WorkerProc, record, tails, wait_for

pytestmark = pytest.mark.timeout(300)

N = 300


def kill_host(pg: Cluster) -> None:
    """SIGKILL the postmaster and all its children together, as a power cut would."""
    pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
    for p in [pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


async def test_workers_follow_a_failover_and_keep_what_was_acknowledged(
    scratch: Path, logs: Path
) -> None:
    primary = Cluster(scratch, "primary").init(
        synchronous_standby_names="'replica1'", synchronous_commit="on"
    )
    primary.start()
    replica = Cluster(scratch, "replica").replica_of(primary)
    replica.configure(
        primary_conninfo=f"'host=127.0.0.1 port={primary.port} user=durox "
        "application_name=replica1'",
        # promoted, it has no standby of its own: waiting for one would stall every commit
        synchronous_standby_names="''",
    )
    replica.start()
    dsn = (
        f"postgresql://durox@127.0.0.1:{primary.port},127.0.0.1:{replica.port}/postgres"
        "?target_session_attrs=read-write"
    )
    workers: list[WorkerProc] = []
    provider = None
    try:
        await wait_for(lambda: _sync_state(primary), "the replica streams synchronously", 60)
        provider = await PostgresProvider.connect(dsn, listen=False, pool_size=2)
        client = Client(provider)
        workers += [WorkerProc(logs, f"w{i}", dsn) for i in range(2)]
        for w in workers:
            await wait_for(w.ready, f"{w.name} gets ready", 90)
        for i in range(N):
            await client.start_orchestration(f"p-{i}", "Pipeline", i)
        await wait_for(lambda: _at_least(provider, N // 10), "a tenth completes", 120)

        acknowledged = await _outputs(provider)  # all of it committed on the replica too
        assert len(acknowledged) < N, "finished before the failover"
        kill_host(primary)
        t_kill = time.monotonic()
        detect = await wait_for(
            lambda: any(not w.ready() for w in workers), "a worker reports not ready", 120
        )
        replica.promote()
        t_promote = time.monotonic()
        resume = await wait_for(
            lambda: _at_least(provider, len(acknowledged) + 1),
            "work resumes on the new primary",
            180,
        )
        await wait_for(lambda: _at_least(provider, N), "everything completes", 180)
        all_done = time.monotonic() - t_promote

        after = await _outputs(provider)
        lost = [iid for iid, out in acknowledged.items() if after.get(iid) != out]
        assert lost == [], lost
        assert sorted(after.values()) == sorted(i + STEPS for i in range(N))
        ids = [f"p-{i}" for i in range(N)]
        assert await duplicated_completions(provider, ids) == 0
        assert all(w.proc.poll() is None for w in workers), tails(*workers)
        assert all(w.ready() for w in workers)
        runs = sum(w.metric("durox_activity_executions_total") for w in workers)
        record(
            "failover (synchronous replica promoted)",
            instances=N,
            injected=1,
            acknowledged_before=len(acknowledged),
            detect_s=round(detect, 1),
            outage_s=round(t_promote - t_kill, 1),
            resume_s=round(resume, 1),
            all_done_s=round(all_done, 1),
            lost=len(lost),
            duplicated=0,
            activity_reruns=int(runs) - N * STEPS,
        )
    finally:
        for w in workers:
            w.stop()
        if provider is not None:
            await provider.close()
        replica.stop("immediate")
        primary.stop("immediate")


async def _sync_state(primary: Cluster) -> bool:
    conn = await asyncpg.connect(primary.dsn())
    try:
        state = await conn.fetchval("SELECT sync_state FROM pg_stat_replication LIMIT 1")
        return bool(state == "sync")
    finally:
        await conn.close()


async def _at_least(provider: PostgresProvider, n: int) -> bool:
    try:
        return len(await _outputs(provider)) >= n
    except DuroxError:
        return False


async def _outputs(provider: PostgresProvider) -> dict[str, Any]:
    infos = await provider.list_instances(limit=100_000)
    return {i.instance_id: i.output for i in infos if i.status == "Completed"}
