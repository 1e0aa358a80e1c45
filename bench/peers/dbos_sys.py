"""DBOS (`dbos` 3.x) under the same workloads, on SQLite or PostgreSQL.

Durability: DBOS leaves SQLite at its default `synchronous=FULL`; the benchmark creates the file
in WAL mode first (the journal mode is stored in the file), so both systems commit with WAL and
FULL. On PostgreSQL both use the same server with `synchronous_commit=on`. DBOS has no
continue-as-new, so workload (d) is its nearest form: the timer-then-step rounds in one
workflow. Completion is the return of the in-process workflow handle.

Widths: by default DBOS starts each workflow at once, with no dispatcher width at all
(`orch_conc` 0 here). Its own way to bound how many workflows a process runs is a queue's
`worker_concurrency`, so a case with a width enqueues on a queue that wide, polled every
`QUEUE_POLL_S` (low, in its favour, like duroxide's dispatchers), and the driver waits for the
result at that same interval (an enqueued workflow's handle would poll once a second). Steps
run inside their workflow, so the activity width has no DBOS equivalent and is not used.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bench.common import (
    CAN_ROUNDS,
    Case,
    closed_loop,
    instance_ids,
    peak_rss_mb,
    remove_store_files,
    wall,
)
from bench.pgstats import pg_round_trips, pg_version

QUEUE_POLL_S = 0.01


def _version() -> str:
    from importlib.metadata import version

    return version("dbos")


async def run(case: Case) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig, SetWorkflowID

    schema = f"dbos_{case.label}".replace("-", "_")[:60]
    if case.store == "sqlite":
        path = Path(case.workdir) / f"dbos-{case.label}.sqlite"
        remove_store_files(str(path), ("", "-wal", "-shm", "-journal"))
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        url = f"sqlite:///{path}"
    else:
        import asyncpg

        conn_pg = await asyncpg.connect(case.dsn)
        await conn_pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn_pg.close()
        url = case.dsn
    config: DBOSConfig = {
        "name": "durox-bench",
        "system_database_url": url,
        "dbos_system_schema": schema,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    delay = case.activity_ms / 1000.0

    @DBOS.step()
    async def noop(x: Any) -> Any:
        if delay:
            await asyncio.sleep(delay)
        return x

    @DBOS.workflow()
    async def seq5(x: Any) -> Any:
        for _ in range(5):
            x = await noop(x)
        return x

    @DBOS.workflow()
    async def fanout5(x: Any) -> Any:
        return await asyncio.gather(*(noop(x) for _ in range(5)))

    @DBOS.workflow()
    async def single(x: Any) -> Any:
        return await noop(x)

    @DBOS.workflow()
    async def timer_can(x: Any) -> Any:
        for _ in range(CAN_ROUNDS):
            await DBOS.sleep_async(0.001)
            x = await noop(x)
        return x

    workflow = {"seq5": seq5, "fanout5": fanout5, "single": single, "timer_can": timer_can}[
        case.workload
    ]
    DBOS.launch()
    queue: Any = None
    if case.orch_conc > 0:
        queue = await DBOS.register_queue_async(
            "bench", worker_concurrency=case.orch_conc, polling_interval_sec=QUEUE_POLL_S
        )

    async def run_one(iid: str, i: int) -> tuple[float, float]:
        t0 = wall()
        with SetWorkflowID(iid):
            if queue is None:
                handle = await DBOS.start_workflow_async(workflow, i)
            else:
                handle = await queue.enqueue_async(workflow, i)
        if queue is not None:
            # An enqueued workflow's handle polls for its result every second; DBOS's own
            # wait_first takes an interval, so the wait polls as often as the queue does.
            await DBOS.wait_first_async([handle], polling_interval_sec=QUEUE_POLL_S)
        await handle.get_result()
        return t0, wall()

    runs: list[dict[str, Any]] = []
    try:
        await closed_loop(run_one, instance_ids("warm", case.warmup), case.inflight)
        for r in range(case.runs):
            if case.store == "postgres":
                await pg_round_trips(case.dsn, reset=True)
            result = await closed_loop(run_one, instance_ids(f"r{r}", case.n), case.inflight)
            if case.store == "postgres":
                calls = await pg_round_trips(case.dsn, reset=False)
                result["round_trips_per_activity"] = sum(calls.values()) / (
                    case.n * case.activities
                )
            runs.append(result)
    finally:
        DBOS.destroy()
    store = sqlite3.sqlite_version if case.store == "sqlite" else await pg_version(case.dsn)
    return {
        "runs": runs,
        "peak_rss_mb": [peak_rss_mb()],
        "store_version": store,
        "peer_version": _version(),
    }
