"""In-process wake-ups for idle dispatchers, shared by every store.

A store knows when it has just made work visible (its own commit, or a notification from another
process). Waking every idle dispatcher on each new item makes them all race for one row, so
this wakes one waiter per item, keeps wake-ups that found nobody waiting for the next one to
wait, and remembers delayed-visibility times (timers, backoffs) so a waiter sleeps only until
the next one is due. Anything it misses is found by the runtime's polling fallback.

Kept wake-ups are a latch, not an edge: one that arrives while its dispatcher is busy (fetching,
or waiting for a free slot) waits in `pending` until that dispatcher next waits. A fetch about
to be sent covers every wake-up delivered before it (`covered`), so those are dropped then; the
ones delivered while it is in flight are kept, and the next wait returns at once for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable

from durox.providers._base import QueueKind

KINDS: tuple[QueueKind, ...] = ("orchestration", "activity")
MAX_PENDING = 1024


class Wakeups:
    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {k: deque() for k in KINDS}
        self._pending: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._due: dict[str, list[int]] = {k: [] for k in KINDS}

    def notify(self, kind: str, visible_at: int | None = None, count: int = 1) -> None:
        """`count` new items of `kind` are visible now, or at `visible_at` (ms)."""
        if visible_at is not None and visible_at > self._now_ms():
            heapq.heappush(self._due[kind], visible_at)
            return
        waiters = self._waiters[kind]
        while count and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1
        if count:
            self._pending[kind] = min(self._pending[kind] + count, MAX_PENDING)

    def pending(self, kind: str) -> int:
        """Wake-ups kept for the next waiter of `kind` (nobody was waiting when they came)."""
        return self._pending[kind]

    def covered(self, kind: str, count: int | None = None) -> None:
        """A fetch of `kind` is about to be sent. Work whose wake-up was delivered before now
        is visible to it (the store committed before it notified), so `count` kept wake-ups
        (None: all) are spent on it. Call it before the fetch is sent, never after: a wake-up
        delivered while the fetch is in flight must stay kept."""
        spent = self._pending[kind] if count is None else min(self._pending[kind], max(count, 0))
        self._pending[kind] -= spent

    def wake_everyone(self) -> None:
        """Something may have been missed (a dropped listener): everyone looks once."""
        for kind, waiters in self._waiters.items():
            self._pending[kind] = max(self._pending[kind], 1)
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, kind: QueueKind, timeout_s: float) -> bool:
        """Return when work of `kind` may be visible, or after `timeout_s` at the latest: True
        for a wake-up (kept, delivered while waiting, or a delayed item now due), False when
        `timeout_s` ran out with none."""
        due = self._due[kind]
        until_due = False
        if due:
            now = self._now_ms()
            while due and due[0] <= now:
                heapq.heappop(due)
                self._pending[kind] += 1
            if due and (due[0] - now) / 1000 < timeout_s:
                timeout_s = (due[0] - now) / 1000
                until_due = True
        if self._pending[kind]:
            self._pending[kind] -= 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters[kind]
        waiters.append(waiter)
        try:
            try:
                await asyncio.wait_for(waiter, max(timeout_s, 0.0))
            except TimeoutError:
                if not until_due:
                    return False
                # This return is the wake-up of every delayed item now due: spend them here,
                # or the next wait would return at once for the same items.
                now = self._now_ms()
                while due and due[0] <= now:
                    heapq.heappop(due)
                return True
            return True
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
