"""The runtime's acknowledgement batching: nothing waits for a batch to fill, and outcomes stay
per item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from durox.errors import DuroxError, LockLostError, StoreUnavailableError
from durox.runtime._acks import AckBatcher


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_acks_finishing_while_a_batch_is_in_flight_go_in_the_next() -> None:
    calls: list[list[str]] = []
    gate = asyncio.Event()

    async def send(items: Sequence[tuple[str, int]]) -> list[DuroxError | None]:
        calls.append([token for token, _ in items])
        if len(calls) == 1:
            await gate.wait()
        return [LockLostError("gone") if token == "bad" else None for token, _ in items]

    batcher: AckBatcher[int] = AckBatcher(send)
    first = asyncio.create_task(batcher.ack("a", 1))
    await _settle()
    assert calls == [["a"]]  # the first went out at once, alone
    rest = [asyncio.create_task(batcher.ack(t, 1)) for t in ("b", "bad", "c")]
    await _settle()
    assert calls == [["a"]]  # waiting for the call in flight
    gate.set()
    outcomes = await asyncio.gather(first, *rest)
    assert calls == [["a"], ["b", "bad", "c"]]
    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], LockLostError)
    await batcher.drained()


async def test_a_failed_batch_call_is_every_item_s_outcome() -> None:
    async def send(items: Sequence[tuple[str, int]]) -> list[DuroxError | None]:
        raise StoreUnavailableError("down")

    batcher: AckBatcher[int] = AckBatcher(send)
    outcomes = await asyncio.gather(batcher.ack("a", 1), batcher.ack("b", 2))
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
