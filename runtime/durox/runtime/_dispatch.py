"""The dispatch loop, one for both kinds of work, and the tasks a runtime waits for at shutdown.

A `Dispatcher` runs `concurrency` loops for one kind of work (orchestration turns or activity
runs, each described by a `Work`). A loop fetches, backs off on store errors, waits for a
wake-up when the queue is empty, and runs what it fetched. On a store whose batch operations
cost one round trip (`batch`), a loop claims every free slot of its kind and fetches that many
items in one call, running each as its own task; other loops fetch meanwhile as further slots
free, so fetches overlap as they did one item at a time. On other stores each loop runs one item
at a time itself, which costs less Python per item there.

This module knows no store: a `Work` says how to fetch, run and release its items.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

from durox.errors import DuroxError
from durox.runtime._policy import kind_of, log

Item = TypeVar("Item")


class Work(Protocol[Item]):
    """One kind of work, as a dispatch loop sees it."""

    def fetch(self, count: int) -> Awaitable[Sequence[Item]]:
        """Lock up to `count` items in the store."""

    def run(self, item: Item) -> Coroutine[Any, Any, None]:
        """Process one item to its end: acknowledged, handed back or poisoned."""

    def release(self, item: Item) -> Awaitable[None]:
        """Hand back an item that never started, without counting an attempt."""

    def token(self, item: Item) -> str:
        """The item's lock token."""

    def wait_for_work(self, seconds: float) -> Awaitable[None]:
        """Wait for a wake-up (work enqueued) or `seconds`, whichever comes first."""


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

    def spawn(self, prefix: str) -> None:
        """Start the loops, named `prefix-0` and on."""
        for i in range(self._concurrency):
            self._tasks.track(self._loop, f"{prefix}-{i}")

    async def _loop(self, me: Tracked) -> None:
        failures = 0
        while not self._tasks.stopping:
            free = await self._claim(me) if self._batch else 1
            if not free:
                continue
            items: Sequence[Item] = []
            try:
                items = await self._work.fetch(free)
            except DuroxError as exc:
                failures += 1
                log.warning("%s fetch failed (%s): %s", self.kind, kind_of(exc), exc)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))
                continue
            finally:
                if self._batch:
                    self._unclaim(free, len(items))
            failures = 0
            if not items:
                await self._idle(me)
                continue
            if not self._batch:
                await self._work.run(items[0])  # one at a time, in this loop
                continue
            for item in items:
                self._start(item)

    async def _claim(self, me: Tracked) -> int:
        """Claim every free slot for one fetch (release with `_unclaim`); when none is free,
        wait (cancellably) until one frees and return 0."""
        free = self._concurrency - len(self._running) - self._claimed
        if free > 0:
            self._claimed += free
            return free
        me.idle = True  # nothing fetched: safe to cancel while waiting for a slot
        try:
            await self._slot_free.wait()
        finally:
            me.idle = False
        self._slot_free.clear()
        return 0

    def _unclaim(self, claimed: int, used: int) -> None:
        """Give back a fetch's claim. A fetch that found some work but fewer items than slots
        wakes another loop, so fetches overlap while work keeps coming. An empty fetch wakes
        nobody: the queue is empty, and waking the next loop would only chain empty fetches
        through every loop. That keeps one loop of a kind polling an idle store while the
        others sleep until a slot frees."""
        self._claimed -= claimed
        if 0 < used < claimed:
            self._slot_free.set()

    async def _idle(self, me: Tracked) -> None:
        if self._tasks.stopping:
            return
        me.idle = True
        try:
            await self._work.wait_for_work(self._poll_seconds)
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
