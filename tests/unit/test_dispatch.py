"""The dispatch loop both kinds of work share, driven by a store-free `Work`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from durox.errors import StoreUnavailableError
from durox.providers._wakeups import Wakeups
from durox.runtime._dispatch import Dispatcher, Tasks


class FakeWork:
    """A queue of named items; `failures` fetches fail before any succeeds."""

    def __init__(self, items: list[str], failures: int = 0) -> None:
        self.queue = list(items)
        self.failures = failures
        self.fetches: list[int] = []
        self.ran: list[str] = []
        self.released: list[str] = []
        self.wakeup = asyncio.Event()

    def fetching(self, covers: int | None) -> None:
        pass  # no wake-ups kept here

    async def fetch(self, count: int) -> list[str]:
        self.fetches.append(count)
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("down")
        taken = self.queue[:count]
        del self.queue[:count]
        return taken

    async def run(self, item: str) -> None:
        self.ran.append(item)

    async def release(self, item: str) -> None:
        self.released.append(item)

    def token(self, item: str) -> str:
        return item

    async def wait_for_work(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)
            return True
        return False


def _dispatcher(
    work: FakeWork, concurrency: int, *, batch: bool, poll: float = 0.01
) -> tuple[Dispatcher[str], Tasks]:
    tasks = Tasks()
    d = Dispatcher("activity", work, concurrency, tasks, batch=batch, poll_seconds=poll)
    return d, tasks


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


async def test_a_batch_loop_claims_every_free_slot_and_runs_each_item_as_a_task() -> None:
    work = FakeWork([f"w{i}" for i in range(6)])
    d, tasks = _dispatcher(work, 4, batch=True)
    d.spawn("test")
    await _until(lambda: len(work.ran) == 6)
    await tasks.stop(1.0)
    assert work.fetches[0] == 4  # one fetch for all four slots
    assert sorted(work.ran) == [f"w{i}" for i in range(6)]
    assert work.released == []


async def test_without_batches_each_loop_fetches_and_runs_one_item_itself() -> None:
    work = FakeWork([f"w{i}" for i in range(5)])
    d, tasks = _dispatcher(work, 2, batch=False)
    d.spawn("test")
    await _until(lambda: len(work.ran) == 5)
    await tasks.stop(1.0)
    assert set(work.fetches) == {1}
    assert work.ran == [f"w{i}" for i in range(5)]


async def test_a_failing_fetch_is_retried_after_a_backoff() -> None:
    work = FakeWork(["w0"], failures=2)
    d, tasks = _dispatcher(work, 1, batch=True)
    d.spawn("test")
    await _until(lambda: work.ran == ["w0"])
    await tasks.stop(1.0)
    assert len(work.fetches) >= 3


async def test_shutdown_cancels_idle_loops_and_hands_back_items_that_never_started() -> None:
    work = FakeWork(["a", "b"])
    d, tasks = _dispatcher(work, 2, batch=True)
    d.spawn("test")
    # One step of the event loop: the first loop fetched both items and created their tasks,
    # which have not taken a step yet, and waits (idle) for a free slot.
    await asyncio.sleep(0)
    await tasks.stop(0.0)
    assert work.ran == []
    assert sorted(work.released) == ["a", "b"]


async def test_shutdown_does_not_wait_for_loops_idle_on_an_empty_queue() -> None:
    work = FakeWork([])
    d, tasks = _dispatcher(work, 3, batch=True, poll=60.0)
    d.spawn("test")
    await _until(lambda: work.fetches != [])
    began = time.monotonic()
    await tasks.stop(30.0)
    assert time.monotonic() - began < 5.0


async def test_stop_waits_for_running_work() -> None:
    gate = asyncio.Event()
    finished: list[str] = []

    class Slow(FakeWork):
        async def run(self, item: str) -> None:
            await gate.wait()
            finished.append(item)

    work = Slow(["a"])
    d, tasks = _dispatcher(work, 1, batch=True)
    d.spawn("test")
    await _until(lambda: work.fetches != [])
    await asyncio.sleep(0.01)
    stopping = asyncio.create_task(tasks.stop(5.0))
    await asyncio.sleep(0.02)
    assert not stopping.done()  # the item is still running
    gate.set()
    await stopping
    assert finished == ["a"]


class WakeWork(FakeWork):
    """A queue behind the stores' real wake-ups (`Wakeups`): each fetch reads the queue when it
    is sent and answers after `in_flight` is set, so a test can add work while it is in flight.
    `covers_after`: the fault under test, wake-ups spent after the fetch instead of before."""

    def __init__(self, *, covers_after: bool = False) -> None:
        super().__init__([])
        self.wakeups = Wakeups(lambda: 0)
        self.covers_after = covers_after
        self.hold = asyncio.Event()
        self.hold.set()
        self.in_flight = asyncio.Event()
        self.empty = 0
        self.covers: int | None = None

    def fetching(self, covers: int | None) -> None:
        self.covers = covers
        if not self.covers_after:
            self.wakeups.covered("activity", covers)

    async def fetch(self, count: int) -> list[str]:
        self.fetches.append(count)
        taken = self.queue[:count]  # the fetch's snapshot
        del self.queue[:count]
        self.in_flight.set()
        await self.hold.wait()
        self.in_flight.clear()
        if self.covers_after:
            self.wakeups.covered("activity", self.covers)
        self.empty += not taken
        return taken

    def add(self, item: str) -> None:
        self.queue.append(item)
        self.wakeups.notify("activity")

    async def wait_for_work(self, seconds: float) -> bool:
        return await self.wakeups.wait("activity", seconds)


async def _wake_during_fetch(work: WakeWork) -> Tasks:
    d, tasks = _dispatcher(work, 4, batch=True, poll=60.0)  # a poll cannot find the work
    work.hold.clear()
    d.spawn("test")
    await asyncio.wait_for(work.in_flight.wait(), 5)  # the start-up fetch, which finds nothing
    work.add("late")  # committed after that fetch read the queue; its wake-up comes now
    work.hold.set()
    return tasks


async def test_a_wake_up_delivered_while_a_fetch_is_in_flight_is_not_lost() -> None:
    work = WakeWork()
    tasks = await _wake_during_fetch(work)
    await _until(lambda: work.ran == ["late"])
    await tasks.stop(1.0)
    assert work.fetches == [4, 4]  # the start-up fetch, then one for the kept wake-up


async def test_negative_control_spending_wake_ups_after_the_fetch_loses_one_until_the_poll() -> (
    None
):
    work = WakeWork(covers_after=True)
    tasks = await _wake_during_fetch(work)
    await asyncio.sleep(0.5)
    await tasks.stop(1.0)
    # The wake-up was spent by the fetch that could not see the work: the loop now sleeps for
    # the poll interval (60 s) with the item queued.
    assert work.ran == [] and work.queue == ["late"]
    assert work.fetches == [4]


async def test_a_partial_batch_runs_before_any_further_fetch_and_then_waits() -> None:
    events: list[str] = []

    class Recording(WakeWork):
        async def fetch(self, count: int) -> list[str]:
            taken = await super().fetch(count)
            events.append(f"fetched {taken}")
            return taken

        async def run(self, item: str) -> None:
            events.append(f"ran {item}")
            await super().run(item)

    work = Recording()
    work.add("a")
    d, tasks = _dispatcher(work, 4, batch=True, poll=60.0)
    d.spawn("test")
    await _until(lambda: work.ran == ["a"])
    await asyncio.sleep(0.2)
    await tasks.stop(1.0)
    # One fetch: three of its four slots came back unused, so nothing more was waiting; and
    # the item's code ran before this loop (or any other) fetched again.
    assert events == ["fetched ['a']", "ran a"]


async def test_a_full_batch_is_followed_by_another_fetch_at_once() -> None:
    work = WakeWork()
    for i in range(6):
        work.queue.append(f"w{i}")  # no wake-ups: work another process queued
    work.wakeups.notify("activity")  # one wake-up for all six
    d, tasks = _dispatcher(work, 4, batch=True, poll=60.0)
    d.spawn("test")
    await _until(lambda: len(work.ran) == 6)
    await tasks.stop(1.0)
    assert work.fetches[0] == 4


async def test_without_batches_announced_work_costs_no_extra_fetch() -> None:
    work = WakeWork()
    d, tasks = _dispatcher(work, 2, batch=False, poll=60.0)
    d.spawn("test")
    await _until(lambda: len(work.fetches) == 2)  # each loop looks once at start-up
    for i in range(3):
        work.add(f"w{i}")
    await _until(lambda: len(work.ran) == 3)
    await asyncio.sleep(0.2)
    await tasks.stop(1.0)
    assert work.empty == 2  # the two start-up fetches only: one fetch per announced item
    assert len(work.fetches) == 5


async def test_fetched_work_takes_its_first_step_before_a_fetch_a_wake_up_calls() -> None:
    events: list[str] = []

    class Recording(WakeWork):
        async def fetch(self, count: int) -> list[str]:
            events.append("fetch")
            return await super().fetch(count)

        async def run(self, item: str) -> None:
            events.append(f"ran {item}")
            await super().run(item)

    work = Recording()
    work.add("a")
    work.hold.clear()
    d, tasks = _dispatcher(work, 4, batch=True, poll=60.0)
    d.spawn("test")
    await asyncio.wait_for(work.in_flight.wait(), 5)
    work.add("b")  # its wake-up comes while the fetch that takes `a` is in flight
    work.hold.set()
    await _until(lambda: work.ran == ["a", "b"])
    await tasks.stop(1.0)
    # `a` came back in a short batch and a kept wake-up calls another fetch at once: `a` runs
    # first, then that fetch is sent.
    assert events[:3] == ["fetch", "ran a", "fetch"]
