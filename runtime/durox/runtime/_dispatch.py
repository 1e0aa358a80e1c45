"""The dispatch loop, one for both kinds of work, and the tasks a runtime waits for at shutdown.

A `Dispatcher` runs `concurrency` loops for one kind of work (orchestration turns or activity
runs, each described by a `Work`). A loop fetches, backs off on store errors, waits for a
wake-up when the queue is empty, and runs what it fetched. On a store whose batch operations
cost one round trip (`batch`), a loop claims every free slot of its kind and fetches that many
items in one call, running each as its own task. On other stores each loop runs one item at a
time itself, which costs less Python per item there.

A fetch is a round trip, a pool connection and work on both ends, so a loop fetches again at
once only when it has reason to believe more work is waiting: its last fetch came back full, a
wake-up came (the store's wake-ups are a latch, so one delivered during a fetch is kept for the
next wait), or the work it found was not announced by a wake-up (found by a poll, or at
start-up), so more such work may be queued. Otherwise it waits for a wake-up or the poll
interval. One loop watches the queue (waits for wake-ups and polls) while the others park. On a
batch store they park until a slot frees, and a fetch that comes back full calls one more loop
in, so fetches overlap while a backlog lasts. On other stores a watcher that wakes hands the
watch to a parked loop before it fetches, so every wake-up finds a loop to answer it while
loops are free, and an idle store is polled by one loop, not by all. Items of a short batch
take their first step (a turn's code, an activity's start) before the loop that fetched them
fetches again; after a full batch the next fetch goes first, so its round trip overlaps with
their code.

This module knows no store: a `Work` says how to fetch, run and release its items.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

from durox.errors import DuroxError
from durox.runtime._policy import kind_of, log

Item = TypeVar("Item")


class Work(Protocol[Item]):
    """One kind of work, as a dispatch loop sees it."""

    def fetching(self, covers: int | None) -> None:
        """A fetch is about to be sent: `covers` wake-ups kept so far (None: all) announce
        work it will see, and need no fetch of their own."""

    def fetch(self, count: int) -> Awaitable[Sequence[Item]]:
        """Lock up to `count` items in the store."""

    def run(self, item: Item) -> Coroutine[Any, Any, None]:
        """Process one item to its end: acknowledged, handed back or poisoned."""

    def release(self, item: Item) -> Awaitable[None]:
        """Hand back an item that never started, without counting an attempt."""

    def token(self, item: Item) -> str:
        """The item's lock token."""

    def wait_for_work(self, seconds: float) -> Awaitable[bool]:
        """Wait for a wake-up (work enqueued) or `seconds`, whichever comes first: True for a
        wake-up, False when `seconds` ran out."""


class Tracked:
    """A task shutdown waits for: a dispatch loop, or the run of one fetched item.

    Only a loop that is `idle` (waiting for a wake-up or a free slot, holding nothing) may be
    cancelled at shutdown: one cancelled inside a fetch could leave a lease taken in the store
    with nobody to use it.
    """

    __slots__ = ("idle", "task")
    task: asyncio.Task[None]

    def __init__(self) -> None:
        self.idle = False


class Tasks:
    """Every task of a runtime that shutdown waits for, and whether the runtime is stopping."""

    def __init__(self) -> None:
        self.stopping = False
        self._tracked: list[Tracked] = []
        self._releases: set[asyncio.Task[None]] = set()

    def track(self, body: Callable[[Tracked], Coroutine[Any, Any, None]], name: str) -> Tracked:
        """Run `body(tracked)` as a task that shutdown waits for."""
        tracked = Tracked()
        tracked.task = asyncio.create_task(body(tracked), name=name)
        self._tracked.append(tracked)
        return tracked

    def untrack(self, tracked: Tracked) -> None:
        self._tracked.remove(tracked)

    def release_in_background(self, release: Awaitable[None]) -> None:
        """Hand back an item that never ran; `stop` waits for it."""

        async def quietly() -> None:
            with contextlib.suppress(DuroxError):
                await release

        task = asyncio.create_task(quietly())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def stop(self, timeout: float) -> None:
        """Stop fetching; wait for running work up to `timeout`, then cancel the rest."""
        self.stopping = True
        for tracked in list(self._tracked):
            if tracked.idle:
                tracked.task.cancel()
        # Items fetched by a fetch that was in flight start after this point: wait for whatever
        # is running each time round, not for a snapshot.
        deadline = time.monotonic() + timeout
        while tasks := [t.task for t in self._tracked if not t.task.done()]:
            left = deadline - time.monotonic()
            if left > 0:
                await asyncio.wait(tasks, timeout=left)
                continue
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
        if self._releases:
            await asyncio.wait(list(self._releases))


class Dispatcher(Generic[Item]):
    """The dispatch loops of one kind of work and the slots (`concurrency`) they share."""

    def __init__(
        self,
        kind: str,
        work: Work[Item],
        concurrency: int,
        tasks: Tasks,
        *,
        batch: bool,
        poll_seconds: float,
    ) -> None:
        self.kind = kind
        self._work = work
        self._concurrency = concurrency
        self._tasks = tasks
        self._batch = batch
        self._poll_seconds = poll_seconds
        self._running: set[asyncio.Task[None]] = set()
        self._claimed = 0
        self._slot_free = asyncio.Event()
        self._started: set[str] = set()
        self._lookouts = 0
        """Loops due to fetch or waiting for a wake-up; on a batch store the others park."""
        self._helpers = 0
        """Parked loops called in to fetch too (a fetch came back full: a backlog)."""
        self._watching = 0
        """Loops waiting for a wake-up or the poll interval."""
        self._parked = 0
        self._handoffs = 0
        self._watch_free = asyncio.Event()
        """Without batches: a watcher that was woken hands the watch to a parked loop."""

    def spawn(self, prefix: str) -> None:
        """Start the loops, named `prefix-0` and on. On a batch store only the first fetches
        at start-up (it claims every slot); on others each loop fetches once."""
        for i in range(self._concurrency):
            due = i == 0 or not self._batch
            self._lookouts += due
            self._tasks.track(functools.partial(self._loop, due=due), f"{prefix}-{i}")

    async def _loop(self, me: Tracked, *, due: bool) -> None:
        """`due`: this loop has reason to fetch now (and counts among `_lookouts`)."""
        failures = 0
        announced = False  # the next fetch answers a wake-up this loop spent
        handed = False  # a watcher handed this loop the watch
        while not self._tasks.stopping:
            if not due:
                if self._batch and self._lookouts:
                    await self._wait_for_slot(me)  # another loop watches the queue
                    if self._helpers:
                        self._helpers -= 1
                        self._lookouts += 1
                        due = True
                    continue
                if not self._batch and self._watching and not handed:
                    handed = await self._park(me)  # another loop watches the queue
                    continue
                handed = False
                self._lookouts += 1
                self._watching += 1
                try:
                    announced = await self._idle(me)
                finally:
                    self._watching -= 1
                if self._parked and not self._handoffs:
                    # This loop will be busy fetching (and running): a parked one watches
                    # meanwhile, for further wake-ups and the poll.
                    self._handoffs += 1
                    self._watch_free.set()
                due = True
                continue
            free = await self._claim(me) if self._batch else 1
            if not free:
                continue
            items: Sequence[Item] = []
            # What this fetch sees answers the wake-ups delivered before it is sent. A batch
            # fetch that comes back short saw all such work, and one that comes back full is
            # followed by another: it covers them all. A fetch of one covers one, unless a
            # wake-up this loop spent called it: that one was its own.
            self._work.fetching(None if self._batch else int(not announced))
            try:
                items = await self._work.fetch(free)
            except DuroxError as exc:
                failures += 1
                log.warning("%s fetch failed (%s): %s", self.kind, kind_of(exc), exc)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))
                continue
            finally:
                if self._batch:
                    self._claimed -= free
                    if len(items) < free:
                        # Slots this fetch claimed and left unused: a loop due to fetch may
                        # be waiting for them (and nobody else may be watching the queue).
                        self._slot_free.set()
            failures = 0
            if not self._batch:
                if items:
                    await self._work.run(items[0])  # one at a time, in this loop
                # A batch of one came back full whenever it found work; work that a wake-up
                # announced needs no more than its wake-ups, the rest may have company.
                due = bool(items) and not announced
                announced = False
            else:
                for item in items:
                    self._start(item)
                due = len(items) == free
                if items and not due:
                    # Their first steps (a turn's code, an activity's start) come before any
                    # further fetch. Not after a full batch: with work queued, the next fetch's
                    # round trip overlaps with the code of this batch instead.
                    await asyncio.sleep(0)
                if due and not self._helpers and self._lookouts < self._concurrency:
                    self._helpers += 1  # a backlog: one more loop fetches as slots free
                    self._slot_free.set()
            if not due:
                self._lookouts -= 1

    async def _claim(self, me: Tracked) -> int:
        """Claim every free slot for one fetch (the fetch gives them back); when none is free,
        wait (cancellably) until one frees and return 0."""
        free = self._concurrency - len(self._running) - self._claimed
        if free > 0:
            self._claimed += free
            return free
        await self._wait_for_slot(me)
        return 0

    async def _wait_for_slot(self, me: Tracked) -> None:
        me.idle = True  # nothing fetched: safe to cancel while waiting for a slot
        try:
            await self._slot_free.wait()
        finally:
            me.idle = False
        self._slot_free.clear()

    async def _park(self, me: Tracked) -> bool:
        """Wait (cancellably) until the watcher hands the watch on: True when this loop got
        it, False when another parked loop did."""
        self._parked += 1
        me.idle = True
        try:
            await self._watch_free.wait()
        finally:
            me.idle = False
            self._parked -= 1
        self._watch_free.clear()
        if self._handoffs:
            self._handoffs -= 1
            return True
        return False

    async def _idle(self, me: Tracked) -> bool:
        """Wait for a wake-up or the poll interval: True for a wake-up."""
        if self._tasks.stopping:
            return False
        me.idle = True
        try:
            return await self._work.wait_for_work(self._poll_seconds)
        finally:
            me.idle = False

    def _start(self, item: Item) -> None:
        """Run one fetched item as its own task, counted as running work at shutdown."""
        token = self._work.token(item)
        body = self._work.run(item)
        started = self._started

        async def run() -> None:
            started.add(token)
            await body

        entry = self._tasks.track(lambda _: run(), f"durox-{self.kind} {token}")
        self._running.add(entry.task)

        def finished(task: asyncio.Task[None]) -> None:
            self._running.discard(task)
            self._tasks.untrack(entry)
            self._slot_free.set()
            if token in started:
                started.discard(token)
            else:
                body.close()  # never ran
                if task.cancelled():
                    # Cancelled before its first step (shutdown ran out of time): hand it back.
                    self._tasks.release_in_background(self._work.release(item))
            if not task.cancelled() and task.exception() is not None:
                log.error("%s task crashed", self.kind, exc_info=task.exception())

        entry.task.add_done_callback(finished)
