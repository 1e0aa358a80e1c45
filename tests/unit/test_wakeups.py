"""The shared wake-up mechanism: one waiter per item, kept wake-ups, timers per queue."""

from __future__ import annotations

import asyncio

from durox.providers._wakeups import Wakeups


async def test_delayed_visibility_wakes_only_its_own_queue() -> None:
    now = [1_000]
    w = Wakeups(lambda: now[0])
    w.notify("activity", visible_at=1_050)  # an activity backoff, not an orchestration timer
    now[0] = 1_100
    orchestration = asyncio.create_task(w.wait("orchestration", 0.2))
    await asyncio.sleep(0.05)
    assert not orchestration.done()  # nothing for the orchestration queue
    await asyncio.wait_for(w.wait("activity", 5), 0.5)  # the due backoff wakes its own queue
    await orchestration


async def test_a_waiter_sleeps_only_until_the_next_due_item() -> None:
    now = [1_000]
    w = Wakeups(lambda: now[0])
    w.notify("orchestration", visible_at=1_030)
    began = asyncio.get_running_loop().time()
    await w.wait("orchestration", 10)  # times out at the due time, not after 10 s
    assert asyncio.get_running_loop().time() - began < 5
    now[0] = 1_030
    await asyncio.wait_for(w.wait("orchestration", 10), 0.5)
    assert w.pending("orchestration") == 0


async def test_wait_says_whether_a_wake_up_came() -> None:
    w = Wakeups(lambda: 1_000)
    assert await w.wait("activity", 0.01) is False  # the timeout ran out
    w.notify("activity")
    assert await w.wait("activity", 5) is True  # a kept wake-up


async def test_a_fetch_covers_the_wake_ups_kept_before_it_and_no_more() -> None:
    w = Wakeups(lambda: 1_000)
    w.notify("orchestration", count=3)
    w.covered("orchestration", 2)  # a fetch of two, sent after all three wake-ups
    assert w.pending("orchestration") == 1
    w.covered("orchestration", 5)
    assert w.pending("orchestration") == 0
    w.notify("orchestration")  # delivered while that fetch was in flight: kept
    assert w.pending("orchestration") == 1
    w.covered("activity", 5)  # another queue's fetch covers nothing here
    assert w.pending("orchestration") == 1
