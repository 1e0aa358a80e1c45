"""One pass for a burst of events: a short, per-key delay that absorbs the events behind it.

A Deployment rolling out emits an event for every replica the controller counts, and each
used to cost a whole pass. Now the first event of a registry schedules its pass `delay`
seconds later and the events that arrive meanwhile join it. The pending mark is dropped just
before the pass reads anything, so an event during the pass schedules one more: nothing that
happens is missed, only grouped. A pass asked for sooner than the one waiting (an event
while a pass waits out a store's retry time) moves it earlier: a long wait never delays a
short one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class Coalescer(Generic[K]):
    def __init__(self, run: Callable[[K], Awaitable[None]]) -> None:
        self._run = run
        self._pending: dict[K, tuple[float, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def trigger(self, key: K, delay: float) -> None:
        """Run the pass for `key` in `delay` seconds, unless one is already waiting that runs
        no later than that; one waiting longer is replaced."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        waiting = self._pending.get(key)
        if waiting is not None:
            if waiting[0] <= due:
                return
            waiting[1].cancel()  # still asleep: a running pass is no longer in _pending
        task = loop.create_task(self._later(key, delay))
        self._pending[key] = (due, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _later(self, key: K, delay: float) -> None:
        await asyncio.sleep(delay)
        del self._pending[key]
        try:
            await self._run(key)
        except Exception:  # one failed pass must not silence the registry's later events
            logger.exception("pass for %s failed", key)

    def waiting(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Cancel every waiting and running pass."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
