"""`Runtime.shutdown`: a `timedelta` timeout like every other duration, and a bad timeout that
changes nothing (the runtime runs on, and a later shutdown still waits for in-flight work)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from durox import (
    ActivityContext,
    ActivityRegistry,
    Client,
    ConfigurationError,
    OrchestrationContext,
    OrchestrationRegistry,
    Runtime,
)
from durox.providers import SqliteProvider
from tests.unit.scenario_support import options


@pytest.fixture
async def provider() -> AsyncIterator[SqliteProvider]:
    p = await SqliteProvider.in_memory()
    yield p
    await p.close()


class Slow:
    """An activity that is running until a short sleep ends (`handler`)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = False

        async def handler(ctx: ActivityContext, seconds: float) -> str:
            self.started.set()
            await asyncio.sleep(seconds)
            self.finished = True
            return "slept"

        self.handler = handler


async def one_slow_step(ctx: OrchestrationContext, seconds: float) -> Any:
    return await ctx.schedule_activity("Slow", seconds)


async def _start(provider: SqliteProvider, slow: Slow) -> Runtime:
    acts = ActivityRegistry.builder().register("Slow", slow.handler).build()
    orchs = OrchestrationRegistry.builder().register("OneSlowStep", one_slow_step).build()
    return await Runtime.start(provider, acts, orchs, options())


async def _assert_stopped_after_waiting(rt: Runtime, provider: SqliteProvider, slow: Slow) -> None:
    assert slow.finished, "shutdown returned before the in-flight activity finished"
    assert rt._heartbeat is not None and rt._heartbeat.done(), "the heartbeat still runs"
    assert await provider.list_workers(None, 60_000) == []


async def test_shutdown_takes_a_timedelta_and_waits_for_in_flight_work(
    provider: SqliteProvider,
) -> None:
    slow = Slow()
    rt = await _start(provider, slow)
    await Client(provider).start_orchestration("i", "OneSlowStep", 0.3)
    await asyncio.wait_for(slow.started.wait(), 10)
    await rt.shutdown(timeout=timedelta(seconds=10))
    await _assert_stopped_after_waiting(rt, provider, slow)


@pytest.mark.parametrize("bad", ["5", None, -1, timedelta(seconds=-1), float("nan"), True])
async def test_a_bad_timeout_changes_nothing_and_a_later_shutdown_still_waits(
    provider: SqliteProvider, bad: Any
) -> None:
    slow = Slow()
    rt = await _start(provider, slow)
    client = Client(provider)
    with pytest.raises(ConfigurationError, match="shutdown timeout"):
        await rt.shutdown(timeout=bad)
    # Still running: it takes new work and runs it to the end.
    await client.start_orchestration("before", "OneSlowStep", 0.0)
    assert (await client.wait_for_orchestration("before", 10)).output == "slept"
    slow.started.clear()
    slow.finished = False
    await client.start_orchestration("during", "OneSlowStep", 0.3)
    await asyncio.wait_for(slow.started.wait(), 10)
    await rt.shutdown(timeout=5.0)
    await _assert_stopped_after_waiting(rt, provider, slow)
