"""The orchestration queue: enqueue, FIFO, delayed visibility, and where instance rows appear."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.errors import InstanceAlreadyExistsError
from durox.providers import TurnCommit
from durox.testing.support import Harness, S, first_turn


async def test_an_empty_store_has_nothing_to_fetch(store: Harness) -> None:
    assert await store.fetch() is None
    assert await store.p.fetch_work_item(1000) is None


async def test_a_started_instance_is_fetched_with_its_start_message(store: Harness) -> None:
    await store.start("i1", "Greeter", {"who": "x"})
    item = await store.must_fetch()
    assert item.instance_id == "i1"
    assert item.execution_id == 0
    assert item.status is None and item.orchestration_name is None
    assert item.history == [] and item.history_length == 0
    assert item.attempt_count == 1
    assert item.messages == [ev.StartOrchestration("i1", "Greeter", None, {"who": "x"})]
    assert item.history_error is None


async def test_enqueue_does_not_create_the_instance_row(store: Harness) -> None:
    await store.start("i1")
    await store.event("i1")
    assert await store.p.get_instance("i1") is None
    assert await store.p.list_instances() == []
    assert await store.p.list_executions("i1") == []


async def test_the_instance_row_appears_at_the_first_acknowledgement(store: Harness) -> None:
    await store.begin("i1", name="Flow")
    info = await store.p.get_instance("i1")
    assert info is not None
    assert (info.orchestration_name, info.orchestration_version) == ("Flow", "1.0.0")
    assert info.status == S.RUNNING and info.current_execution_id == 1
    assert info.pinned_engine_version == "0.1.0"
    assert [e.execution_id for e in await store.p.list_executions("i1")] == [1]


async def test_a_turn_without_an_instance_update_creates_no_row(store: Harness) -> None:
    await store.event("ghost")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=0))
    assert await store.p.get_instance("ghost") is None
    assert await store.fetch() is None  # the message was consumed


async def test_starting_a_pending_instance_twice_is_refused(store: Harness) -> None:
    await store.start("i1")
    with pytest.raises(InstanceAlreadyExistsError):
        await store.start("i1")


async def test_starting_an_existing_instance_is_refused(store: Harness) -> None:
    await store.begin("i1", status=S.COMPLETED)
    with pytest.raises(InstanceAlreadyExistsError):
        await store.start("i1")


async def test_instances_are_served_first_in_first_out(store: Harness) -> None:
    for n in range(5):
        await store.start(f"i{n}")
    seen = []
    for _ in range(5):
        item = await store.must_fetch()
        seen.append(item.instance_id)
    assert seen == [f"i{n}" for n in range(5)]


async def test_messages_of_one_instance_come_in_enqueue_order(store: Harness) -> None:
    await store.begin("i1")
    for n in range(6):
        await store.event("i1", f"e{n}", n)
    item = await store.must_fetch()
    assert [m.name for m in item.messages if isinstance(m, ev.ExternalEvent)] == [
        f"e{n}" for n in range(6)
    ]


async def test_the_oldest_message_decides_which_instance_goes_first(store: Harness) -> None:
    await store.begin("a")
    await store.begin("b")
    await store.event("b", "first")
    await store.event("a", "second")
    await store.event("b", "third")
    item = await store.must_fetch()
    assert item.instance_id == "b"
    assert [m.name for m in item.messages] == ["first", "third"]  # type: ignore[union-attr]


@pytest.mark.parametrize("delay", [1, 250, 60_000])
async def test_a_delayed_message_is_invisible_until_its_time(store: Harness, delay: int) -> None:
    await store.begin("i1")
    await store.p.enqueue_orchestrator_message(ev.ExternalEvent("i1", "late", None), delay)
    assert await store.fetch() is None
    store.clock.advance(delay - 1)
    assert await store.fetch() is None
    store.clock.advance(1)
    item = await store.must_fetch()
    assert [type(m) for m in item.messages] == [ev.ExternalEvent]


async def test_a_delayed_message_does_not_hold_back_other_instances(store: Harness) -> None:
    await store.begin("a")
    await store.p.enqueue_orchestrator_message(ev.ExternalEvent("a", "late", None), 5000)
    await store.start("b")
    item = await store.must_fetch()
    assert item.instance_id == "b"


async def test_only_visible_messages_are_taken_and_the_delayed_one_stays(store: Harness) -> None:
    await store.begin("i1")
    await store.p.enqueue_orchestrator_message(ev.ExternalEvent("i1", "late", None), 5000)
    await store.event("i1", "now")
    item = await store.must_fetch()
    assert [m.name for m in item.messages] == ["now"]  # type: ignore[union-attr]
    await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=1))
    assert await store.fetch() is None
    store.clock.advance(5000)
    later = await store.must_fetch()
    assert [m.name for m in later.messages] == ["late"]  # type: ignore[union-attr]


async def test_timers_from_an_ack_fire_at_their_time(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    fire_at = store.clock.now + 10_000
    commit = first_turn("i1", ts=store.clock.now)
    commit.new_events.append(ev.TimerCreated(2, store.clock.now, fire_at))
    commit.timers.append(ev.TimerDue("i1", 1, 2, fire_at))
    await store.p.ack_orchestration_item(item.lock_token, commit)
    assert await store.fetch() is None
    store.clock.advance(9_999)
    assert await store.fetch() is None
    store.clock.advance(1)
    due = await store.must_fetch()
    assert due.messages == [ev.TimerDue("i1", 1, 2, fire_at)]


async def test_messages_sent_by_a_turn_are_visible_at_once(store: Harness) -> None:
    await store.start("parent")
    item = await store.must_fetch()
    commit = first_turn("parent", ts=store.clock.now)
    child = ev.StartOrchestration("child", "C", None, 7, parent=ev.ParentRef("parent", 1, 2))
    commit.messages.append(child)
    await store.p.ack_orchestration_item(item.lock_token, commit)
    got = await store.must_fetch()
    assert got.instance_id == "child" and got.messages == [child]


async def test_every_message_kind_round_trips(store: Harness) -> None:
    await store.begin("i1")
    err = ev.ErrorDetails("application", "ValueError", "bad")
    sent: list[ev.Message] = [
        ev.ExternalEvent("i1", "e", {"nested": [1, 2.5, "x", None, True]}),
        ev.ActivityResult("i1", 1, 2, None, err),
        ev.SubOrchestrationResult("i1", 1, 3, "ok"),
        ev.CancelRequest("i1", "why not"),
        ev.TimerDue("i1", 1, 4, 123),
    ]
    for m in sent:
        await store.p.enqueue_orchestrator_message(m)
    item = await store.must_fetch()
    assert item.messages == sent


async def test_unicode_and_large_payloads_round_trip(store: Harness) -> None:
    await store.begin("i1")
    big = {"text": "žluťoučký kůň 🐎" * 2000, "list": list(range(5000))}
    await store.event("i1", "big", big)
    item = await store.must_fetch()
    assert item.messages == [ev.ExternalEvent("i1", "big", big)]
