"""Instance-level peek-lock: exclusivity, lock tokens, expiry, abandon, attempts."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.errors import LockLostError
from durox.providers import TurnCommit
from durox.testing.support import LOCK, Harness, next_turn


async def test_a_locked_instance_is_not_fetched_again(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    await store.must_fetch()
    await store.event("i1", "more")
    assert await store.fetch() is None


async def test_other_instances_are_fetched_while_one_is_locked(store: Harness) -> None:
    await store.start("a")
    await store.start("b")
    first = await store.must_fetch()
    second = await store.must_fetch()
    assert {first.instance_id, second.instance_id} == {"a", "b"}
    assert first.lock_token != second.lock_token


async def test_an_unknown_token_cannot_acknowledge(store: Harness) -> None:
    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item("no-such-token", TurnCommit(execution_id=1))


async def test_a_token_acknowledges_once(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=0))
    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=0))


async def test_an_expired_lock_cannot_acknowledge_and_writes_nothing(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch(lock_ms=1000)
    store.clock.advance(1001)
    from durox.testing.support import first_turn

    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item(item.lock_token, first_turn("i1"))
    assert await store.p.get_instance("i1") is None
    assert await store.p.read_history("i1", 1) == []


async def test_a_lock_is_good_up_to_its_deadline(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch(lock_ms=1000)
    store.clock.advance(999)
    assert await store.fetch() is None
    await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=1))


async def test_an_expired_lock_lets_another_fetch_take_the_instance(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    old = await store.must_fetch(lock_ms=1000)
    store.clock.advance(1001)
    new = await store.must_fetch()
    assert new.instance_id == "i1" and new.lock_token != old.lock_token
    assert new.attempt_count == 2
    assert [type(m) for m in new.messages] == [ev.ExternalEvent]
    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item(old.lock_token, TurnCommit(execution_id=1))
    await store.p.ack_orchestration_item(new.lock_token, TurnCommit(execution_id=1))
    assert await store.fetch() is None


async def test_an_expired_lock_is_taken_by_a_second_worker(
    store: Harness, open_store: object
) -> None:
    other = await open_store(store.clock)  # type: ignore[operator]
    await store.begin("i1")
    await store.event("i1")
    old = await store.must_fetch(lock_ms=500)
    assert await other.fetch_orchestration_item(LOCK) is None
    store.clock.advance(501)
    new = await other.fetch_orchestration_item(LOCK)
    assert new is not None and new.instance_id == "i1"
    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item(old.lock_token, TurnCommit(execution_id=1))
    await other.ack_orchestration_item(new.lock_token, TurnCommit(execution_id=1))


async def test_completions_arriving_while_locked_wait_for_the_next_fetch(store: Harness) -> None:
    begun = await store.begin("i1", activities=2)
    assert begun.execution_id == 0
    await store.p.enqueue_orchestrator_message(ev.ActivityResult("i1", 1, 2, "r2"))
    item = await store.must_fetch()
    await store.p.enqueue_orchestrator_message(ev.ActivityResult("i1", 1, 3, "r3"))
    assert item.messages == [ev.ActivityResult("i1", 1, 2, "r2")]
    assert await store.fetch() is None  # locked
    await store.p.ack_orchestration_item(
        item.lock_token, next_turn(item, ev.ActivityCompleted(4, 0, 2, "r2"))
    )
    later = await store.must_fetch()
    assert later.messages == [ev.ActivityResult("i1", 1, 3, "r3")]
    assert later.attempt_count == 1
    assert later.history_length == 4


async def test_a_message_arriving_while_locked_survives_an_abandon(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1", "a")
    item = await store.must_fetch()
    await store.event("i1", "b")
    await store.p.abandon_orchestration_item(item.lock_token)
    again = await store.must_fetch()
    assert [m.name for m in again.messages] == ["a", "b"]  # type: ignore[union-attr]


async def test_abandon_releases_the_lock_at_once_and_counts_the_attempt(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    await store.p.abandon_orchestration_item(item.lock_token)
    again = await store.must_fetch()
    assert again.instance_id == "i1" and again.attempt_count == 2


async def test_abandon_ignoring_the_attempt_leaves_the_count(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    await store.p.abandon_orchestration_item(item.lock_token, ignore_attempt=True)
    again = await store.must_fetch()
    assert again.attempt_count == 1


@pytest.mark.parametrize("ignore", [False, True])
async def test_abandon_with_a_delay_hides_the_messages(store: Harness, ignore: bool) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    await store.p.abandon_orchestration_item(item.lock_token, 2000, ignore_attempt=ignore)
    assert await store.fetch() is None
    store.clock.advance(1999)
    assert await store.fetch() is None
    store.clock.advance(1)
    again = await store.must_fetch()
    assert again.attempt_count == (1 if ignore else 2)


async def test_abandon_never_makes_a_later_message_visible_sooner(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1", "now")
    item = await store.must_fetch()
    await store.p.abandon_orchestration_item(item.lock_token, 100)
    await store.p.enqueue_orchestrator_message(ev.ExternalEvent("i1", "later", None), 10_000)
    store.clock.advance(100)
    got = await store.must_fetch()
    assert [m.name for m in got.messages] == ["now"]  # type: ignore[union-attr]


async def test_abandon_with_a_stale_token_does_not_disturb_the_new_holder(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    old = await store.must_fetch(lock_ms=100)
    store.clock.advance(101)
    new = await store.must_fetch()
    await store.p.abandon_orchestration_item(old.lock_token)
    assert await store.fetch() is None
    await store.p.ack_orchestration_item(new.lock_token, TurnCommit(execution_id=1))


async def test_abandon_with_an_unknown_token_is_harmless(store: Harness) -> None:
    await store.p.abandon_orchestration_item("nope", 10)
    await store.p.abandon_work_item("nope", 10)
    assert await store.fetch() is None


async def test_every_fetch_counts_an_attempt(store: Harness) -> None:
    await store.start("i1")
    for attempt in range(1, 6):
        item = await store.must_fetch(lock_ms=10)
        assert item.attempt_count == attempt
        store.clock.advance(11)


async def test_the_attempt_count_is_the_highest_among_the_messages(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1", "old")
    item = await store.must_fetch()
    await store.p.abandon_orchestration_item(item.lock_token)
    await store.event("i1", "new")
    again = await store.must_fetch()
    assert again.attempt_count == 2
    assert len(again.messages) == 2


async def test_an_acknowledged_message_does_not_carry_its_attempts_forward(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1", "a")
    for _ in range(3):
        item = await store.must_fetch()
        await store.p.abandon_orchestration_item(item.lock_token)
    item = await store.must_fetch()
    assert item.attempt_count == 4
    await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=1))
    await store.event("i1", "b")
    assert (await store.must_fetch()).attempt_count == 1


async def test_an_instance_behind_many_locked_ones_is_still_fetched(store: Harness) -> None:
    """Many workers hold many instances at the head of the queue; the next one is still found."""
    for n in range(80):
        await store.start(f"busy-{n}")
    held = [await store.must_fetch() for _ in range(80)]
    assert len({item.instance_id for item in held}) == 80
    await store.start("behind")
    item = await store.must_fetch()
    assert item.instance_id == "behind"
