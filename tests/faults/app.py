"""The application the fault tests run in real `durox worker` processes
(`--app tests.faults.app:app`).

`Nap` leaves a marker file per start and per finish (instance, worker, attempt) in the folder
named by `DUROX_FAULT_MARKS`, so the test, in another process, can see where work ran and how
often without guessing from timing.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from durox import (
    ActivityContext,
    ActivityRegistry,
    OrchestrationContext,
    OrchestrationRegistry,
    RetryPolicy,
)
from durox.worker import App

STEPS = 3


def _mark(what: str, ctx: ActivityContext) -> None:
    folder = os.environ.get("DUROX_FAULT_MARKS")
    if folder:
        name = f"{what}.{ctx.instance_id}.{ctx.worker_id}.{ctx.attempt}"
        (Path(folder) / name).touch()


async def step(ctx: ActivityContext, x: int) -> int:
    return x + 1


async def nap(ctx: ActivityContext, seconds: float) -> str:
    _mark("started", ctx)
    await asyncio.sleep(seconds)
    _mark("finished", ctx)
    return ctx.worker_id


async def pipeline(ctx: OrchestrationContext, x: int) -> int:
    for _ in range(STEPS):
        x = await ctx.schedule_activity("Step", x)
    return x


async def slow(ctx: OrchestrationContext, seconds: float) -> Any:
    return await ctx.schedule_activity("Nap", seconds)


async def wait(ctx: OrchestrationContext, seconds: float) -> str:
    await ctx.schedule_timer(timedelta(seconds=seconds))
    return "woke"


async def tick(ctx: OrchestrationContext, spec: list[float]) -> int:
    """`spec` is [count, seconds]: `count` timers of `seconds` one after another, so the
    workers append history at a steady pace for as long as it runs, whatever else is done."""
    count, seconds = int(spec[0]), spec[1]
    for _ in range(count):
        await ctx.schedule_timer(timedelta(seconds=seconds))
    return count


async def broken(ctx: OrchestrationContext, x: int) -> int:
    raise RuntimeError(f"broken on every turn ({x})")


async def dawdle(ctx: ActivityContext, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def times_out(ctx: OrchestrationContext, seconds: float) -> Any:
    """Its activity outlives its timeout every time: the execution fails with `timeout`."""
    policy = RetryPolicy(1, timeout=timedelta(seconds=seconds / 4))
    return await ctx.schedule_activity_with_retry("Dawdle", seconds, policy)


async def orphan(ctx: OrchestrationContext, x: int) -> Any:
    """Schedules an activity no worker registers: poisoned after `max_attempts` fetches."""
    return await ctx.schedule_activity("Missing", x)


app = App(
    orchestrations=OrchestrationRegistry.builder()
    .register("Pipeline", pipeline)
    .register("Slow", slow)
    .register("Wait", wait)
    .register("Tick", tick)
    .register("Broken", broken)
    .register("TimesOut", times_out)
    .register("Orphan", orphan)
    .build(),
    activities=ActivityRegistry.builder()
    .register("Step", step)
    .register("Nap", nap)
    .register("Dawdle", dawdle)
    .build(),
)
