"""One durox worker process for the multi-process tests: `python -m tests.integration.worker_proc
DSN SCHEMA`. Runs until SIGTERM (clean shutdown) or SIGKILL (the point of some tests)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import timedelta
from typing import Any

from durox import ActivityRegistry, OrchestrationRegistry, Runtime, RuntimeOptions
from durox.providers import PostgresProvider

STEPS = 3


async def step(ctx: Any, x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


async def pipeline(ctx: Any, x: int) -> int:
    for _ in range(STEPS):
        x = await ctx.schedule_activity("Step", x)
    return x


def options() -> RuntimeOptions:
    return RuntimeOptions(
        orchestration_concurrency=4,
        activity_concurrency=8,
        orchestration_lock_timeout=timedelta(seconds=3),
        activity_lock_timeout=timedelta(seconds=3),
        poll_interval=timedelta(milliseconds=250),
        heartbeat_interval=timedelta(seconds=1),
    )


async def main(dsn: str, schema: str) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=6)
    acts = ActivityRegistry.builder().register("Step", step).build()
    orchs = OrchestrationRegistry.builder().register("Pipeline", pipeline).build()
    runtime = await Runtime.start(provider, acts, orchs, options())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runtime.shutdown(10)
    await provider.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
