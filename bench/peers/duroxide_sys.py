"""duroxide (the Rust runtime's Python SDK, 0.2.x) under the same workloads.

Its client is blocking, so each in-flight instance waits in a thread of a pool as wide as the
number in flight. Completion is the return of `wait_for_orchestration` (the SDK polls; its
`InstanceInfo.updated_at` reads 0 on SQLite, so there is no store time to use instead). Its
dispatchers poll the store every `POLL_MS` (set low, in its favour).
duroxide sets its SQLite pragmas itself (not configurable from Python); the report states what
the benchmark observed (`fsync` calls per commit under strace when available).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    CAN_ROUNDS,
    TIMER_MS,
    Case,
    closed_loop,
    instance_ids,
    peak_rss_mb,
    remove_store_files,
    wall,
)
from bench.pgstats import pg_round_trips, pg_version

POLL_MS = 10  # its dispatchers poll the store; durox is woken in-process, 200 ms fallback
NAMES = {"seq5": "Seq5", "fanout5": "FanOut5", "single": "Single", "timer_can": "TimerCan"}


def _version() -> str:
    from importlib.metadata import version

    return version("duroxide")


async def run(case: Case) -> dict[str, Any]:
    import duroxide

    schema = f"duroxide_{case.label}".replace("-", "_")[:60]
    if case.store == "sqlite":
        path = Path(case.workdir) / f"duroxide-{case.label}.db"
        remove_store_files(str(path))
        provider: Any = duroxide.SqliteProvider.open(f"sqlite:{path}?mode=rwc")
    else:
        import asyncpg

        conn = await asyncpg.connect(case.dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        provider = duroxide.PostgresProvider.connect_with_schema(case.dsn, schema)
    options = duroxide.RuntimeOptions(
        orchestration_concurrency=case.orch_conc,
        worker_concurrency=case.act_conc,
        dispatcher_poll_interval_ms=POLL_MS,
    )
    runtime = duroxide.Runtime(provider, options)
    delay = case.activity_ms / 1000.0

    def noop(ctx: Any, x: Any) -> Any:
        if delay:
            time.sleep(delay)
        return x

    def seq5(ctx: Any, x: Any) -> Any:
        for _ in range(5):
            x = yield ctx.schedule_activity("Noop", x)
        return x

    def fanout5(ctx: Any, x: Any) -> Any:
        return (yield ctx.all([ctx.schedule_activity("Noop", x) for _ in range(5)]))

    def single(ctx: Any, x: Any) -> Any:
        return (yield ctx.schedule_activity("Noop", x))

    def timer_can(ctx: Any, left: int) -> Any:
        yield ctx.schedule_timer(TIMER_MS)
        yield ctx.schedule_activity("Noop", left)
        if left > 1:
            yield ctx.continue_as_new(left - 1)
        return left

    runtime.register_activity("Noop", noop)
    for name, fn in (("Seq5", seq5), ("FanOut5", fanout5), ("Single", single)):
        runtime.register_orchestration(name, fn)
    runtime.register_orchestration("TimerCan", timer_can)
    started = threading.Thread(target=runtime.start, daemon=True)
    started.start()
    client = duroxide.Client(provider)
    name = NAMES[case.workload]
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=case.inflight + 4))

    def blocking_one(iid: str, i: int) -> tuple[float, float]:
        t0 = wall()
        client.start_orchestration(iid, name, CAN_ROUNDS if case.workload == "timer_can" else i)
        status = client.wait_for_orchestration(iid, 300_000)
        if status.status != "Completed":
            raise RuntimeError(f"{iid}: {status.status} {status.error}")
        return t0, wall()

    async def run_one(iid: str, i: int) -> tuple[float, float]:
        return await asyncio.to_thread(blocking_one, iid, i)

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
        await asyncio.to_thread(runtime.shutdown, 5000)
    store = sqlite3.sqlite_version if case.store == "sqlite" else await pg_version(case.dsn)
    return {
        "runs": runs,
        "peak_rss_mb": [peak_rss_mb()],
        "store_version": store + (" (duroxide: bundled sqlx)" if case.store == "sqlite" else ""),
        "peer_version": _version(),
    }
