"""Waking a client that waits for an instance to end, shared by every store.

A waiting client used to read the instance's status on a growing interval, so it saw an ending
up to a poll late. A store knows when an instance has ended (its own commit, or a notification
from the database), so it wakes the waiters of that instance instead, and the client reads the
status once more. A waiter registers before it reads the status: an ending committed between
its read and its sleep has already woken it, so no ending is missed. A wake-up that is missed
anyway (another process writing the same SQLite file, a dropped listener connection) is found by
the polling fallback, whose interval the store chooses by what it can push: `poll_schedule`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

POLL_FIRST_S: Final = 0.005
POLL_MAX_S: Final = 0.25
"""The polling schedule of a wait nobody can push every ending to: 5 ms, growing 1.5x up to
250 ms (what every wait did before the wake-ups)."""
PUSHED_POLL_S: Final = 2.0
"""Between status reads of a wait the store pushes every ending to (PostgreSQL while its
listener listens): only a notification lost in transit waits this long, and a listener that
drops wakes every waiter when it reconnects."""


class CompletionWatch:
    """One waiter's registration for one instance's ending; a context manager that
    unregisters it. Create it (`ProviderAdmin.watch_completion`) before reading the status."""

    def __init__(self, owner: Completions, instance_id: str) -> None:
        self.instance_id = instance_id
        self._owner = owner
        self._woken = asyncio.Event()
        self.wakeups = 0
        """How many times the store woke this waiter (tests, diagnostics)."""

    def poll_schedule(self) -> tuple[float, float]:
        """(first, longest) interval between status reads: how long this store lets a waiter
        rely on being woken, as of now."""
        return self._owner.poll_schedule()

    def wake(self) -> None:
        self.wakeups += 1
        self._woken.set()

    async def wait(self, timeout_s: float) -> bool:
        """Return True when woken since the last call (perhaps already), False after
        `timeout_s`."""
        if not self._woken.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(timeout_s, 0.0))
        woken = self._woken.is_set()
        self._woken.clear()
        return woken

    def close(self) -> None:
        self._owner.forget(self)

    def __enter__(self) -> CompletionWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Completions:
    """The waiters of one provider, by instance id. Every method runs on the event loop."""

    def __init__(self, pushed: Callable[[], bool] = lambda: False) -> None:
        self._pushed = pushed
        self._waiters: dict[str, set[CompletionWatch]] = {}

    def watch(self, instance_id: str) -> CompletionWatch:
        watch = CompletionWatch(self, instance_id)
        self._waiters.setdefault(instance_id, set()).add(watch)
        return watch

    def forget(self, watch: CompletionWatch) -> None:
        waiters = self._waiters.get(watch.instance_id)
        if waiters is not None:
            waiters.discard(watch)
            if not waiters:
                del self._waiters[watch.instance_id]

    @property
    def waiting(self) -> int:
        """How many instances have a waiter."""
        return len(self._waiters)

    def ended(self, instance_id: str) -> None:
        """`instance_id` reached a terminal status (committed): wake its waiters."""
        for watch in self._waiters.get(instance_id, ()):
            watch.wake()

    def wake_everyone(self) -> None:
        """Endings may have been missed (a listener reconnected): every waiter reads again."""
        for waiters in self._waiters.values():
            for watch in waiters:
                watch.wake()

    def poll_schedule(self) -> tuple[float, float]:
        if self._pushed():
            return PUSHED_POLL_S, PUSHED_POLL_S
        return POLL_FIRST_S, POLL_MAX_S
