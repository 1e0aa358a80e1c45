"""Acknowledgement batching for stores whose batch operations cost one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from durox.errors import DuroxError

_T = TypeVar("_T")


class AckBatcher(Generic[_T]):
    """Gathers acknowledgements into batch calls (`ack_work_items`, `ack_orchestration_items`).

    The first result goes out at once; those that finish while a call is in flight wait for it
    and go together in the next. So no result waits longer than one store round trip, and the
    number of round trips falls as the load rises.
    """

    MAX_BATCH = 128

    def __init__(
        self, send: Callable[[Sequence[tuple[str, _T]]], Awaitable[list[DuroxError | None]]]
    ) -> None:
        self._send = send
        self._queue: list[tuple[str, _T, asyncio.Future[DuroxError | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, lock_token: str, result: _T) -> DuroxError | None:
        """Acknowledge one item; returns the error it met (it does not raise it)."""
        future: asyncio.Future[DuroxError | None] = asyncio.get_running_loop().create_future()
        self._queue.append((lock_token, result, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="durox-ack-flush")
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.MAX_BATCH]
            del self._queue[: self.MAX_BATCH]
            outcomes: list[DuroxError | None]
            try:
                outcomes = await self._send([(t, r) for t, r, _ in batch])
            except DuroxError as exc:
                outcomes = [exc] * len(batch)
            except BaseException as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    async def drained(self) -> None:
        """Wait for acknowledgements still on their way (at shutdown)."""
        if self._flusher:
            await asyncio.wait([self._flusher])
