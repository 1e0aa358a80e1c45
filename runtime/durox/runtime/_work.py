"""What both kinds of store-backed work share: lock tokens, wake-ups, releases and acks.

`TurnRunner` and `ActivityRunner` are the `Work` that dispatch loops run; this base gives them
the store-facing half they have in common, so each is left with only what its kind does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from durox.errors import DuroxError
from durox.providers._base import Provider, QueueKind
from durox.runtime._acks import AckBatcher
from durox.runtime._options import RuntimeObserver, RuntimeOptions


class _Locked(Protocol):
    @property
    def lock_token(self) -> str: ...


ItemT = TypeVar("ItemT", bound=_Locked)
ResultT = TypeVar("ResultT")


class _Abandon(Protocol):
    def __call__(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> Awaitable[None]: ...


class StoreWork(Generic[ItemT, ResultT]):
    """A kind of work the store queues, locks and acknowledges (`kind` names its queue)."""

    def __init__(
        self,
        kind: QueueKind,
        provider: Provider,
        options: RuntimeOptions,
        observer: RuntimeObserver,
        worker_id: str,
        *,
        batch: bool,
        ack_one: Callable[[str, ResultT], Awaitable[None]],
        ack_many: Callable[[Sequence[tuple[str, ResultT]]], Awaitable[list[DuroxError | None]]],
        abandon: _Abandon,
    ) -> None:
        self.kind: QueueKind = kind
        self.provider = provider
        self.options = options
        self.observer = observer
        self.worker_id = worker_id
        self._batch = batch
        self._ack_one = ack_one
        self._acks = AckBatcher(ack_many)
        self._abandon = abandon

    def token(self, item: ItemT) -> str:
        return item.lock_token

    async def wait_for_work(self, seconds: float) -> bool:
        return await self.provider.wait_for_work(self.kind, seconds)

    def fetching(self, covers: int | None) -> None:
        self.provider.fetch_covers_wakeups(self.kind, covers)

    async def release(self, item: ItemT) -> None:
        """Hand back an item that never started (or was cut short), counting no attempt."""
        await self._abandon(item.lock_token, ignore_attempt=True)

    async def _retry_later(self, item: ItemT, delay_ms: int, store_failed: bool = False) -> None:
        """Hand `item` back, visible again after `delay_ms`. `store_failed`: the store, not the
        item, was at fault (a full disk, a lost connection), so the fetch does not count
        towards `max_attempts`: an outage must not poison the work it interrupted."""
        await self._abandon(item.lock_token, delay_ms, ignore_attempt=store_failed)

    async def _ack(self, lock_token: str, result: ResultT) -> None:
        """Acknowledge one item: batched with others where a batch costs one round trip."""
        if not self._batch:
            await self._ack_one(lock_token, result)
            return
        failed = await self._acks.ack(lock_token, result)
        if failed is not None:
            raise failed

    async def drained(self) -> None:
        """Wait for acknowledgements still on their way (at shutdown)."""
        await self._acks.drained()
