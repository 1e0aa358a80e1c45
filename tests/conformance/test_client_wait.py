"""A waiting client is woken by the store when its instance ends, on every store, and still
finds the ending by polling when no wake-up comes.

The waits here read the status once a minute (`wait_fallback_poll=60`) and have a minute
before their deadline (whose last read would find the ending too), unless the test is about the
polling; the test gives them 20 s. So a wait that returns in time was woken: no figure tighter
than seconds is asserted. The reads of the instance are counted as well, to show how often the
client looked.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from durox import ActivityRegistry, Client, ClientOptions, OrchestrationRegistry
from durox.providers import SqliteProvider, Store
from durox.providers._completions import PUSHED_POLL_S, Completions
from durox.testing import StoreFactory
from tests.unit.scenario_support import eventually, running

ACTS = ActivityRegistry.builder().build()


async def waiter(ctx: Any, _: Any) -> Any:
    return await ctx.wait_for_event("go")


async def looper(ctx: Any, n: int) -> Any:
    """Three executions that end in ContinuedAsNew, then one that waits for "go"."""
    if n >= 3:
        return [n, await ctx.wait_for_event("go")]
    await ctx.schedule_timer(timedelta(milliseconds=100))
    return await ctx.continue_as_new(n + 1)


ORCHS = (
    OrchestrationRegistry.builder().register("Waiter", waiter).register("Looper", looper).build()
)

SLOW = ClientOptions(wait_fallback_poll=60.0)
"""A wait that reads the status once a minute: only a wake-up returns it within a test."""


async def listening_for_endings(store: Store) -> None:
    """Until `store` delivers every ending to its waiters. PostgreSQL listens for endings from
    the first wait on and then wakes every waiter once (their reads may have come before it
    listened); a test that counts wake-ups starts after that."""
    watch = store.watch_completion("warm-up")
    assert watch is not None, f"{store!r} offers no wake-up"
    with watch:
        if not isinstance(store, SqliteProvider):
            pushed = (PUSHED_POLL_S, PUSHED_POLL_S)
            await eventually(lambda: watch.poll_schedule() == pushed, what="LISTEN for endings")


def count_reads(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[int]:
    """Count the instance reads a client makes through `store` (one per status read)."""
    reads = [0]
    inner = store.get_instance

    async def counted(instance_id: str) -> Any:
        reads[0] += 1
        return await inner(instance_id)

    monkeypatch.setattr(store, "get_instance", counted)
    return reads


async def _running_status(client: Client, instance_id: str) -> bool:
    return (await client.get_orchestration_status(instance_id)).status == "Running"


async def _waiting(task: asyncio.Task[Any], reads: list[int], at_least: int = 1) -> None:
    """Until the wait has read the status (so it is registered and asleep)."""
    await eventually(lambda: reads[0] >= at_least, what="the wait to read the status")
    await asyncio.sleep(0.1)
    assert not task.done()


async def test_a_waiting_client_is_woken_when_the_instance_completes(
    live: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(live, SLOW)
    await listening_for_endings(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Waiter")
        await eventually(lambda: _running_status(client, "i1"), what="the first turn")
        reads = count_reads(monkeypatch, live)
        task = asyncio.create_task(client.wait_for_orchestration("i1", 60))
        await _waiting(task, reads)
        await client.raise_event("i1", "go", "done")
        status = await asyncio.wait_for(task, 20)
    assert (status.status, status.output) == ("Completed", "done")
    assert reads[0] == 2  # the first read, and one when woken


async def test_a_wait_is_woken_by_an_ending_another_client_or_provider_commits(
    store_kind: str, open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the runtime and the event's sender use a second provider (as another
    process would). SQLite: a second client of the same provider, which is what it can wake."""
    waiting_store = await open_store(None)
    other = await open_store(None) if store_kind == "postgres" else waiting_store
    client, sender = Client(waiting_store, SLOW), Client(other)
    await listening_for_endings(waiting_store)
    async with running(other, ACTS, ORCHS):
        await sender.start_orchestration("i1", "Waiter")
        await eventually(lambda: _running_status(client, "i1"), what="the first turn")
        reads = count_reads(monkeypatch, waiting_store)
        task = asyncio.create_task(client.wait_for_orchestration("i1", 60))
        await _waiting(task, reads)
        await sender.raise_event("i1", "go", "from elsewhere")
        status = await asyncio.wait_for(task, 20)
    assert status.output == "from elsewhere"
    assert reads[0] == 2


async def test_continued_as_new_wakes_nobody(live: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same as above, watched at the wait: the three ContinuedAsNew acknowledgements do
    not wake it; the final Completed does."""
    client = Client(live, SLOW)
    watches: list[Any] = []
    watch_completion = live.watch_completion

    def recorded(instance_id: str) -> Any:
        watch = watch_completion(instance_id)
        watches.append(watch)
        return watch

    await listening_for_endings(live)
    monkeypatch.setattr(live, "watch_completion", recorded)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Looper", 0)
        task = asyncio.create_task(client.wait_for_orchestration("i1", 60))
        await eventually(lambda: watches, what="the wait to register")
        (watch,) = watches
        assert watch is not None, "this store offers no wake-up"

        async def fourth_execution_runs() -> bool:
            return len(await live.list_executions("i1")) == 4 and await _running_status(
                Client(live), "i1"
            )

        await eventually(fourth_execution_runs, what="three executions to continue as new")
        await asyncio.sleep(0.2)
        assert not task.done()
        assert watch.wakeups == 0  # three ContinuedAsNew acknowledgements woke nothing
        await client.raise_event("i1", "go", "last")
        status = await asyncio.wait_for(task, 20)
    assert (status.status, status.output) == ("Completed", [3, "last"])
    assert watch.wakeups >= 1


def _no_wakeups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every store's endings reach no waiter (a notification lost on the way)."""
    monkeypatch.setattr(Completions, "ended", lambda self, instance_id: None)
    monkeypatch.setattr(Completions, "wake_everyone", lambda self: None)


async def _complete_while_waiting(
    live: Store, client: Client, monkeypatch: pytest.MonkeyPatch, timeout: float
) -> asyncio.Task[Any]:
    """Start a Waiter, begin waiting for it, and send "go": the wait, as a task."""
    await client.start_orchestration("i1", "Waiter")
    await eventually(lambda: _running_status(client, "i1"), what="the first turn")
    reads = count_reads(monkeypatch, live)
    task = asyncio.create_task(client.wait_for_orchestration("i1", timeout))
    await _waiting(task, reads)
    await client.raise_event("i1", "go", "polled")
    return task


async def test_the_fallback_poll_finds_an_ending_no_wake_up_announced(
    live: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_wakeups(monkeypatch)
    client = Client(live, ClientOptions(wait_fallback_poll=0.2))
    async with running(live, ACTS, ORCHS):
        task = await _complete_while_waiting(live, client, monkeypatch, 20)
        status = await asyncio.wait_for(task, 30)
    assert status.output == "polled"


async def test_without_wake_ups_a_slow_poll_sees_the_ending_only_at_its_deadline(
    live: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control of the wake-up: the same wait as the first test, with the endings
    kept from the waiters, is still asleep a second after the instance completed, and sees it
    only in its last read, at its deadline."""
    await listening_for_endings(live)
    _no_wakeups(monkeypatch)
    client = Client(live, SLOW)
    async with running(live, ACTS, ORCHS):
        task = await _complete_while_waiting(live, client, monkeypatch, 4)
        await eventually(lambda: _status_is_terminal(Client(live), "i1"), what="the ending")
        await asyncio.sleep(1.0)
        assert not task.done(), "the wait returned without being woken"
        status = await asyncio.wait_for(task, 15)
    assert status.status == "Completed"


async def test_a_store_without_the_hook_is_polled(
    live: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store (or a wrapper) that offers no wake-up: the wait polls on its own schedule, so
    even `wait_fallback_poll=60` does not slow it down."""
    monkeypatch.setattr(live, "watch_completion", lambda instance_id: None)
    client = Client(live, SLOW)
    async with running(live, ACTS, ORCHS):
        task = await _complete_while_waiting(live, client, monkeypatch, 20)
        status = await asyncio.wait_for(task, 30)
    assert status.output == "polled"


async def test_a_wait_still_times_out(live: Store) -> None:
    client = Client(live, SLOW)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Waiter")
        began = time.monotonic()
        with pytest.raises(TimeoutError, match="'i1' is still"):
            await client.wait_for_orchestration("i1", 0.5)
        assert time.monotonic() - began < 5  # the deadline, not the minute-long poll


async def test_a_wait_on_an_ended_instance_returns_at_once(live: Store) -> None:
    client = Client(live, SLOW)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Waiter")
        await eventually(lambda: _running_status(client, "i1"), what="the first turn")
        await client.raise_event("i1", "go", 1)
        await eventually(lambda: _status_is_terminal(client, "i1"), what="the instance to complete")
        status = await client.wait_for_orchestration("i1", 5)
    assert status.output == 1


async def _status_is_terminal(client: Client, instance_id: str) -> bool:
    return (await client.get_orchestration_status(instance_id)).is_terminal
