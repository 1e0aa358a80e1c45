"""The dispatch loop both kinds of work share, driven by a store-free `Work`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from durox.errors import StoreUnavailableError
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

    async def wait_for_work(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)


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
