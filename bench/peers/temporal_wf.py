"""Temporal workflow definitions for the benchmark, in their own module because the Temporal
workflow sandbox re-imports the module a workflow is defined in."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=60)


@activity.defn(name="Noop")
async def noop(arg: list[Any]) -> Any:
    x, delay = arg
    if delay:
        await asyncio.sleep(delay)
    return x


@workflow.defn(name="Seq5")
class Seq5:
    @workflow.run
    async def run(self, arg: list[Any]) -> Any:
        x, delay = arg
        for _ in range(5):
            x = await workflow.execute_activity(noop, [x, delay], start_to_close_timeout=TIMEOUT)
        return x


@workflow.defn(name="FanOut5")
class FanOut5:
    @workflow.run
    async def run(self, arg: list[Any]) -> Any:
        return await asyncio.gather(
            *(
                workflow.execute_activity(noop, arg, start_to_close_timeout=TIMEOUT)
                for _ in range(5)
            )
        )


@workflow.defn(name="Single")
class Single:
    @workflow.run
    async def run(self, arg: list[Any]) -> Any:
        return await workflow.execute_activity(noop, arg, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="TimerCan")
class TimerCan:
    @workflow.run
    async def run(self, arg: list[Any]) -> Any:
        left, delay = arg
        await asyncio.sleep(0.001)
        await workflow.execute_activity(noop, arg, start_to_close_timeout=TIMEOUT)
        if left > 1:
            workflow.continue_as_new([left - 1, delay])
        return left


WORKFLOWS: dict[str, Any] = {
    "seq5": Seq5,
    "fanout5": FanOut5,
    "single": Single,
    "timer_can": TimerCan,
}
