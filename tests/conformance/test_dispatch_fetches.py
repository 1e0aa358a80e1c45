"""How many fetches a real runtime makes, on every store: an empty fetch is a round trip, a pool
connection and work on both ends, and on a 2-core machine it delays the work just fetched, so a
dispatcher fetches again only when it has reason to believe more work waits (issue 17)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any, cast

import pytest

from durox import ActivityRegistry, Client, OrchestrationRegistry
from durox.providers import Provider, Store
from durox.testing import StoreFactory
from tests.conformance.test_instance_cache import REG, runner_on, turn
from tests.unit.scenario_support import eventually, running


async def double(ctx: Any, x: int) -> int:
    return x * 2


async def one_activity(ctx: Any, x: int) -> int:
    return await ctx.schedule_activity("Double", x)  # type: ignore[no-any-return]


ACTS = ActivityRegistry.builder().register("Double", double).build()
ORCHS = OrchestrationRegistry.builder().register("One", one_activity).build()

# Polls would add fetches of their own: with this interval, every fetch in a test answers a
# wake-up, a full batch or the start-up.
NO_POLLS = timedelta(seconds=30)


class CountingStore:
    """A pass-through store that counts the runtime's fetches, and those that found nothing."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.fetches: Counter[str] = Counter()
        self.empty: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _count(self, kind: str, items: list[Any]) -> None:
        self.fetches[kind] += 1
        self.empty[kind] += not items

    async def fetch_orchestration_items(self, *args: Any, **kwargs: Any) -> Any:
        items = await self._inner.fetch_orchestration_items(*args, **kwargs)
        self._count("orchestration", items)
        return items

    async def fetch_work_items(self, *args: Any, **kwargs: Any) -> Any:
        items = await self._inner.fetch_work_items(*args, **kwargs)
        self._count("activity", items)
        return items

    def snapshot(self) -> tuple[int, int]:
        """(fetches, empty fetches) so far, both kinds."""
        return sum(self.fetches.values()), sum(self.empty.values())


async def _started(counting: CountingStore, live: Store, concurrency: int) -> None:
    """Wait for the start-up fetches: one a kind on a batch store (one loop claims every
    slot), one a loop on others."""
    each = 1 if live.batches_in_one_round_trip else concurrency
    await eventually(
        lambda: all(counting.fetches[k] >= each for k in ("orchestration", "activity")),
        what="the start-up fetches",
    )


async def test_one_single_activity_orchestration_costs_at_most_one_empty_fetch(
    live: Store,
) -> None:
    counting = CountingStore(live)
    client = Client(live)
    async with running(
        cast(Provider, counting),
        ACTS,
        ORCHS,
        orchestration_concurrency=8,
        activity_concurrency=8,
        poll_interval=NO_POLLS,
    ):
        await _started(counting, live, 8)
        before = counting.snapshot()
        await client.start_orchestration("one", "One", 21)
        status = await client.wait_for_orchestration("one", 20)
        assert status.status == "Completed" and status.output == 42
        await asyncio.sleep(0.2)  # room for a trailing fetch, were there one, to be counted
        fetches, empty = (a - b for a, b in zip(counting.snapshot(), before, strict=True))
    # Three fetches find work (the first turn, the activity, the last turn). Before: 3 empty
    # fetches on SQLite (each loop looked again after its item), 6 on PostgreSQL (a short
    # batch looked again at once, before the item's code had run, and after each wake-up).
    assert fetches - empty == 3
    assert empty <= 1, (fetches, empty, dict(counting.empty))


async def test_a_burst_of_instances_completes_with_few_empty_fetches(live: Store) -> None:
    n = 20
    counting = CountingStore(live)
    client = Client(live)
    async with running(
        cast(Provider, counting),
        ACTS,
        ORCHS,
        orchestration_concurrency=4,
        activity_concurrency=4,
        poll_interval=NO_POLLS,
    ):
        await _started(counting, live, 4)
        before = counting.snapshot()
        for i in range(n):
            await client.start_orchestration(f"b{i}", "One", i)
        for i in range(n):
            status = await client.wait_for_orchestration(f"b{i}", 30)
            assert status.status == "Completed" and status.output == 2 * i
        await asyncio.sleep(0.2)
        fetches, empty = (a - b for a, b in zip(counting.snapshot(), before, strict=True))
    # 3n items were fetched. A wake-up that comes while a fetch is in flight costs one more
    # look, which may find nothing (the fetch had already seen its work): at most one an
    # instance. Before: 60 empty fetches on SQLite (one after every item), 45-49 on PostgreSQL.
    assert empty <= n, (fetches, empty, dict(counting.empty))


@pytest.mark.parametrize(
    "store_kind", ["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_work_held_for_another_workers_window_is_not_fetched_in_a_spin(
    open_store: StoreFactory,
) -> None:
    """A turn held for the worker that kept the instance (sticky routing) is invisible to the
    others for the window: a worker woken for it looks once, then waits for the poll, and
    takes the turn after the window."""
    window, poll = timedelta(seconds=1), timedelta(milliseconds=250)
    a = await open_store(None)
    b = await open_store(None)
    w1 = runner_on(a, "w1", sticky_window=window)
    await Client(a).start_orchestration("i", "Steps", {"n": 2, "tag": "t"})
    await turn(w1)  # w1 keeps the instance; its activity waits in the queue

    async def step(ctx: Any, x: Any) -> Any:
        return x

    acts = ActivityRegistry.builder().register("Step", step).build()
    counting = CountingStore(b)
    async with running(
        cast(Provider, counting),
        acts,
        REG,
        worker_node_id="b",
        sticky_window=window,
        poll_interval=poll,
        orchestration_concurrency=4,
        activity_concurrency=4,
    ):
        # b runs the activity; its result (and b's own wake-up) is for a turn held for w1.
        status = await Client(b).wait_for_orchestration("i", 30)
    assert (status.status, status.output) == ("Completed", [["t", 0], ["t", 1]])
    # b's orchestration fetches: the start-up one, one for the wake-up, one a poll while the
    # window was open, then the turns. A spin would be hundreds.
    took = 2 + window / poll + 4
    assert counting.fetches["orchestration"] <= took * 2, dict(counting.fetches)
