"""Batched activity operations: the same rules as one item at a time, per item, in one call."""

from __future__ import annotations

from durox.core import events as ev
from durox.errors import LockLostError
from durox.testing.support import Harness, first_turn


async def test_a_batch_fetch_takes_items_in_order_up_to_its_size(store: Harness) -> None:
    await store.work(5)
    got = await store.p.fetch_work_items(1000, 3)
    assert [wi.work.event_id for wi in got] == [2, 3, 4]
    assert len({wi.lock_token for wi in got}) == 3
    assert all(wi.attempt_count == 1 for wi in got)
    rest = await store.p.fetch_work_items(1000, 10)
    assert [wi.work.event_id for wi in rest] == [5, 6]
    assert await store.p.fetch_work_items(1000, 10) == []
    assert await store.p.fetch_work_item(1000) is None


async def test_a_batch_fetch_of_nothing_is_empty(store: Harness) -> None:
    await store.work(2)
    assert await store.p.fetch_work_items(1000, 0) == []
    assert len(await store.p.fetch_work_items(1000, 5)) == 2


async def test_batch_fetched_items_expire_and_return_like_single_ones(store: Harness) -> None:
    await store.work(2)
    first = await store.p.fetch_work_items(100, 2)
    store.clock.advance(101)
    again = await store.p.fetch_work_items(1000, 5)
    assert [(wi.work.event_id, wi.attempt_count) for wi in again] == [(2, 2), (3, 2)]
    outcomes = await store.p.ack_work_items(
        [(wi.lock_token, ev.ActivityResult("i1", 1, wi.work.event_id, 0)) for wi in first]
    )
    assert all(isinstance(o, LockLostError) for o in outcomes)


async def test_a_batch_ack_isolates_each_item(store: Harness) -> None:
    await store.work(3)
    a, b, c = await store.p.fetch_work_items(1000, 3)
    await store.p.ack_work_item(b.lock_token, ev.ActivityResult("i1", 1, 3, "b"))
    outcomes = await store.p.ack_work_items(
        [
            (a.lock_token, ev.ActivityResult("i1", 1, 2, "a")),
            (b.lock_token, ev.ActivityResult("i1", 1, 3, "again")),  # already acknowledged
            ("nope", ev.ActivityResult("i1", 1, 9, "x")),  # never issued
            (c.lock_token, ev.ActivityResult("i1", 1, 4, "c")),
        ]
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], LockLostError) and isinstance(outcomes[2], LockLostError)
    item = await store.must_fetch()
    assert sorted(m.result for m in item.messages if isinstance(m, ev.ActivityResult)) == [
        "a",
        "b",
        "c",
    ]
    assert await store.p.fetch_work_item(1000) is None


async def test_a_batch_ack_checks_each_lease(store: Harness) -> None:
    await store.work(2)
    short = await store.p.fetch_work_items(100, 1)
    long = await store.p.fetch_work_items(10_000, 1)
    store.clock.advance(101)
    outcomes = await store.p.ack_work_items(
        [
            (short[0].lock_token, ev.ActivityResult("i1", 1, 2, 1)),
            (long[0].lock_token, ev.ActivityResult("i1", 1, 3, 1)),
        ]
    )
    assert isinstance(outcomes[0], LockLostError) and outcomes[1] is None
    again = await store.p.fetch_work_item(1000)  # the lapsed one comes back
    assert again is not None and again.work.event_id == 2
    assert await store.p.ack_work_items([]) == []


async def test_a_batch_fetch_keeps_session_rules(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    commit = first_turn("i1")
    commit.activities = [
        ev.ActivityWork("i1", 1, 2, "A", 0, "s0"),
        ev.ActivityWork("i1", 1, 3, "A", 1, "s1"),
        ev.ActivityWork("i1", 1, 4, "A", 2, "s2"),
        ev.ActivityWork("i1", 1, 5, "A", 3, "s0"),
        ev.ActivityWork("i1", 1, 6, "A", 4, None),
    ]
    await store.p.ack_orchestration_item(item.lock_token, commit)
    got = await store.p.fetch_work_items(1000, 10, worker_id="w1", max_sessions=2)
    assert [wi.work.event_id for wi in got] == [2, 3, 5, 6]  # s2 would be a third session
    other = await store.p.fetch_work_items(1000, 10, worker_id="w2", max_sessions=0)
    assert other == []
    last = await store.p.fetch_work_items(1000, 10, worker_id="w2")
    assert [wi.work.session_id for wi in last] == ["s2"]
