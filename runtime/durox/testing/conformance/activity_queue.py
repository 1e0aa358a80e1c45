"""The activity queue: per-item peek-lock, expiry and renewal, abandon, and session affinity."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.errors import LockLostError
from durox.testing.support import Harness, first_turn


async def test_a_work_item_is_locked_while_it_runs(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    assert wi.attempt_count == 1 and wi.work.name == "A"
    assert await store.p.fetch_work_item(1000) is None


async def test_work_items_are_served_in_order(store: Harness) -> None:
    await store.work(5)
    assert [(await store.take()).work.event_id for _ in range(5)] == [2, 3, 4, 5, 6]


async def test_acking_work_enqueues_its_result_atomically(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, {"v": 1}))
    assert await store.p.fetch_work_item(1000) is None
    item = await store.must_fetch()
    assert item.messages == [ev.ActivityResult("i1", 1, 2, {"v": 1})]


async def test_a_work_item_is_acknowledged_once(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    with pytest.raises(LockLostError):
        await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    item = await store.must_fetch()
    assert len(item.messages) == 1


async def test_an_expired_work_lock_cannot_ack_and_the_item_comes_back(store: Harness) -> None:
    await store.work()
    wi = await store.take(1000)
    store.clock.advance(1001)
    with pytest.raises(LockLostError):
        await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    again = await store.take()
    assert again.attempt_count == 2 and again.work == wi.work
    assert await store.fetch() is None  # no result was enqueued


async def test_a_work_lock_is_good_up_to_its_deadline(store: Harness) -> None:
    await store.work()
    wi = await store.take(1000)
    store.clock.advance(999)
    assert await store.p.fetch_work_item(1000) is None
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))


async def test_renewal_keeps_a_long_activity_locked(store: Harness) -> None:
    await store.work()
    wi = await store.take(1000)
    for _ in range(4):
        store.clock.advance(800)
        await store.p.renew_work_item_lock(wi.lock_token, 1000)
        assert await store.p.fetch_work_item(1000) is None
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))


async def test_a_lapsed_work_lock_cannot_be_renewed(store: Harness) -> None:
    await store.work()
    wi = await store.take(1000)
    store.clock.advance(1001)
    with pytest.raises(LockLostError):
        await store.p.renew_work_item_lock(wi.lock_token, 1000)


async def test_an_unknown_work_token_is_refused(store: Harness) -> None:
    with pytest.raises(LockLostError):
        await store.p.renew_work_item_lock("nope", 1000)
    with pytest.raises(LockLostError):
        await store.p.ack_work_item("nope", ev.ActivityResult("i1", 1, 2, 1))


async def test_a_work_token_cannot_be_renewed_after_its_ack(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    with pytest.raises(LockLostError):
        await store.p.renew_work_item_lock(wi.lock_token, 1000)


async def test_a_new_holder_is_not_disturbed_by_the_old_token(store: Harness) -> None:
    await store.work()
    old = await store.take(100)
    store.clock.advance(101)
    new = await store.take()
    with pytest.raises(LockLostError):
        await store.p.renew_work_item_lock(old.lock_token, 1000)
    await store.p.abandon_work_item(old.lock_token)
    assert await store.p.fetch_work_item(1000) is None
    await store.p.ack_work_item(new.lock_token, ev.ActivityResult("i1", 1, 2, 1))


@pytest.mark.parametrize("ignore", [False, True])
async def test_abandoned_work_returns_after_its_delay(store: Harness, ignore: bool) -> None:
    await store.work()
    wi = await store.take()
    await store.p.abandon_work_item(wi.lock_token, 500, ignore_attempt=ignore)
    assert await store.p.fetch_work_item(1000) is None
    store.clock.advance(499)
    assert await store.p.fetch_work_item(1000) is None
    store.clock.advance(1)
    assert (await store.take()).attempt_count == (1 if ignore else 2)


async def test_abandoned_work_without_delay_is_available_at_once(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    await store.p.abandon_work_item(wi.lock_token)
    assert (await store.take()).attempt_count == 2


async def test_abandoned_work_loses_its_lock(store: Harness) -> None:
    await store.work()
    wi = await store.take()
    await store.p.abandon_work_item(wi.lock_token)
    with pytest.raises(LockLostError):
        await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))


async def test_each_item_counts_its_own_attempts(store: Harness) -> None:
    await store.work(2)
    first = await store.take(10)
    store.clock.advance(11)
    a = await store.take()
    b = await store.take()
    assert (a.work.event_id, a.attempt_count) == (first.work.event_id, 2)
    assert b.attempt_count == 1


# ---- sessions ---------------------------------------------------------------------------


async def test_a_session_item_goes_to_its_owner_only(store: Harness) -> None:
    await store.work(2, session="s1")
    a = await store.take(worker_id="w1")
    assert await store.p.fetch_work_item(1000, worker_id="w2") is None
    b = await store.take(worker_id="w1")
    assert (a.work.event_id, b.work.event_id) == (2, 3)


async def test_plain_work_goes_to_anyone_while_a_session_is_pinned(store: Harness) -> None:
    await store.work(1, session="s1")
    await store.begin("other", activities=1)
    await store.take(worker_id="w1")
    got = await store.take(worker_id="w2")
    assert got.work.instance_id == "other"


async def test_a_lapsed_session_is_claimed_by_another_worker(store: Harness) -> None:
    await store.work(2, session="s1")
    first = await store.take(worker_id="w1", session_lock_ms=1000)
    await store.p.ack_work_item(first.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    assert await store.p.fetch_work_item(1000, worker_id="w2") is None
    store.clock.advance(1001)
    got = await store.take(worker_id="w2")
    assert got.work.event_id == 3


async def test_a_worker_capped_at_zero_sessions_takes_no_session_work(store: Harness) -> None:
    await store.work(1, session="s1")
    assert await store.p.fetch_work_item(1000, worker_id="w1", max_sessions=0) is None
    assert (await store.take(worker_id="w2", max_sessions=None)).work.session_id == "s1"


async def test_a_worker_claims_no_more_sessions_than_its_cap(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    commit = first_turn("i1")
    commit.activities = [ev.ActivityWork("i1", 1, 2 + n, "A", n, f"s{n}") for n in range(3)]
    await store.p.ack_orchestration_item(item.lock_token, commit)
    a = await store.take(worker_id="w1", max_sessions=2)
    b = await store.take(worker_id="w1", max_sessions=2)
    assert {a.work.session_id, b.work.session_id} == {"s0", "s1"}
    assert await store.p.fetch_work_item(1000, worker_id="w1", max_sessions=2) is None
    c = await store.take(worker_id="w2", max_sessions=2)
    assert c.work.session_id == "s2"


async def test_renewing_sessions_keeps_busy_ones_and_drops_idle_ones(store: Harness) -> None:
    await store.work(1, session="busy")
    await store.take(60_000, worker_id="w1", session_lock_ms=1000)
    store.clock.advance(500)
    assert await store.p.renew_sessions("w1", 1000, idle_timeout_ms=100) == 1
    assert await store.p.renew_sessions("w2", 1000, idle_timeout_ms=100) == 0


async def test_an_idle_session_is_not_renewed_and_unpins(store: Harness) -> None:
    await store.work(2, session="s1")
    wi = await store.take(worker_id="w1", session_lock_ms=1000)
    await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, 1))
    store.clock.advance(600)
    assert await store.p.renew_sessions("w1", 1000, idle_timeout_ms=500) == 0
    store.clock.advance(401)
    assert (await store.take(worker_id="w2")).work.event_id == 3
