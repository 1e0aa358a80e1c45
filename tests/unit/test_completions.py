"""The waiters a store wakes when an instance ends (`durox.providers._completions`), and the
SQLite store's part: its own acknowledgements wake, other processes' are polled for."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from durox import ActivityRegistry, Client, OrchestrationRegistry
from durox.providers import SqliteProvider
from durox.providers._completions import POLL_MAX_S, PUSHED_POLL_S, Completions
from tests.unit.scenario_support import eventually, running


async def test_an_ending_before_the_wait_is_not_missed() -> None:
    """The waiter registers before it reads; an ending between the read and the sleep has
    already woken it, so its sleep returns at once."""
    completions = Completions()
    with completions.watch("i1") as watch:
        completions.ended("i1")  # between the status read and the wait
        assert await asyncio.wait_for(watch.wait(60), 5) is True
        assert await watch.wait(0.01) is False  # woken once, not for ever
    assert completions.waiting == 0


async def test_only_the_instance_s_waiters_are_woken() -> None:
    completions = Completions()
    with completions.watch("a") as a, completions.watch("a") as a2, completions.watch("b") as b:
        completions.ended("a")
        assert await a.wait(0) and await a2.wait(0)
        assert not await b.wait(0)
        completions.wake_everyone()
        assert await b.wait(0)


def test_the_poll_schedule_follows_what_the_store_can_push() -> None:
    pushed = [False]
    completions = Completions(pushed=lambda: pushed[0])
    with completions.watch("i1") as watch:
        assert watch.poll_schedule()[1] == POLL_MAX_S
        pushed[0] = True
        assert watch.poll_schedule() == (PUSHED_POLL_S, PUSHED_POLL_S)


async def waiter(ctx: Any, _: Any) -> Any:
    return await ctx.wait_for_event("go")


async def test_sqlite_endings_from_another_provider_are_found_by_polling(tmp_path: Path) -> None:
    """Another provider on the same SQLite file (as another process would be) cannot wake the
    waiting one: the fallback poll (at most 250 ms apart) finds the ending."""
    waiting_store = await SqliteProvider.open(tmp_path / "s.db")
    other = await SqliteProvider.open(tmp_path / "s.db")
    try:
        client, sender = Client(waiting_store), Client(other)
        orchs = OrchestrationRegistry.builder().register("Waiter", waiter).build()
        async with running(other, ActivityRegistry.builder().build(), orchs):
            await sender.start_orchestration("i1", "Waiter")
            await eventually(lambda: _is_running(client, "i1"), what="the first turn")
            task = asyncio.create_task(client.wait_for_orchestration("i1", 20))
            await asyncio.sleep(0.1)
            await sender.raise_event("i1", "go", "from another provider")
            status = await asyncio.wait_for(task, 20)
        assert status.output == "from another provider"
    finally:
        await other.close()
        await waiting_store.close()


async def _is_running(client: Client, instance_id: str) -> bool:
    return (await client.get_orchestration_status(instance_id)).status == "Running"
