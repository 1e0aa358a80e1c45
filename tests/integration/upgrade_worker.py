"""A durox worker, or a starter of instances, for the rolling-upgrade test; run as a script by
the interpreter of either release (`python upgrade_worker.py worker DSN SCHEMA LABEL` or
`... start DSN SCHEMA PREFIX COUNT`), so it uses only what both releases offer.

Its activities return the worker's LABEL ("old" or "new"): an instance's output shows which
release ran its activities, before and after the schema migration."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import timedelta
from typing import Any

from durox import ActivityRegistry, Client, OrchestrationRegistry, Runtime, RuntimeOptions
from durox.providers import PostgresProvider


async def step(ctx: Any, n: int) -> str:
    await asyncio.sleep(0.005)
    return LABEL


async def child(ctx: Any, n: int) -> str:
    label: str = await ctx.schedule_activity("Step", n)
    return label


async def upgrade(ctx: Any, n: int) -> list[str]:
    """An activity, an event, a timer, a sub-orchestration, an activity: every kind of message.
    The event ("go") holds the instance in flight until the test raises it."""
    first = await ctx.schedule_activity("Step", n)
    await ctx.wait_for_event("go")
    await ctx.schedule_timer(timedelta(milliseconds=50))
    middle = await ctx.schedule_sub_orchestration("Child", n)
    last = await ctx.schedule_activity("Step", n)
    return [first, middle, last]


async def work(dsn: str, schema: str) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4)
    acts = ActivityRegistry.builder().register("Step", step).build()
    orchs = (
        OrchestrationRegistry.builder()
        .register("Upgrade", upgrade)
        .register("Child", child)
        .build()
    )
    options = RuntimeOptions(
        orchestration_concurrency=4,
        activity_concurrency=8,
        orchestration_lock_timeout=timedelta(seconds=5),
        activity_lock_timeout=timedelta(seconds=5),
        poll_interval=timedelta(milliseconds=250),
        heartbeat_interval=timedelta(seconds=1),
    )
    runtime = await Runtime.start(provider, acts, orchs, options)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runtime.shutdown(10)
    await provider.close()
    print("stopped", flush=True)


async def start(dsn: str, schema: str, prefix: str, count: int) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4, listen=False)
    client = Client(provider)
    for base in range(0, count, 50):
        ids = range(base, min(base + 50, count))
        await asyncio.gather(
            *(client.start_orchestration(f"{prefix}{i}", "Upgrade", i) for i in ids)
        )
    await provider.close()
    print(f"started {count}", flush=True)


LABEL = ""

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if sys.argv[1] == "worker":
        LABEL = sys.argv[4]
        asyncio.run(work(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(start(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
