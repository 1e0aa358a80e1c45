"""One acknowledgement, one transaction: everything a turn decided lands together or not at all.
Histories are append-only and keyed by execution, so continue-as-new starts a clean one."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.errors import LockLostError, PermanentError
from durox.providers import InstanceUpdate, TurnCommit
from tests.conformance.support import Store, first_turn, next_turn, raw_sql


async def test_an_ack_appends_history_in_event_order(store: Store) -> None:
    await store.begin("i1", activities=3)
    history = await store.p.read_history("i1", 1)
    assert [e.event_id for e in history] == [1, 2, 3, 4]
    assert isinstance(history[0], ev.OrchestrationStarted)
    assert all(isinstance(e, ev.ActivityScheduled) for e in history[1:])


async def test_an_ack_enqueues_its_activities_in_order(store: Store) -> None:
    await store.begin("i1", activities=3)
    got = []
    while (wi := await store.p.fetch_work_item(1000)) is not None:
        got.append(wi.work)
    assert got == [ev.ActivityWork("i1", 1, 2 + n, "A", n) for n in range(3)]


async def test_the_next_fetch_sees_the_whole_stored_history(store: Store) -> None:
    await store.begin("i1", activities=2)
    await store.event("i1")
    item = await store.must_fetch()
    assert item.execution_id == 1 and item.status == "Running"
    assert [e.event_id for e in item.history] == [1, 2, 3]
    assert item.history_length == 3
    assert item.orchestration_name == "O" and item.orchestration_version == "1.0.0"


async def test_a_failing_ack_applies_nothing_and_keeps_the_lock(store: Store) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    bad = first_turn("i1", activities=1)
    bad.new_events.append(ev.ActivityScheduled(2, 0, "dup", None))  # event id 2 twice
    bad.messages.append(ev.ExternalEvent("other", "x", None))
    with pytest.raises(PermanentError):
        await store.p.ack_orchestration_item(item.lock_token, bad)
    assert await store.p.get_instance("i1") is None
    assert await store.p.read_history("i1", 1) == []
    assert await store.p.list_executions("i1") == []
    assert await store.p.fetch_work_item(1000) is None
    assert await store.fetch() is None  # "other" was not sent; i1 is still locked
    await store.p.ack_orchestration_item(item.lock_token, first_turn("i1", activities=1))
    assert (await store.p.get_instance("i1")) is not None
    assert await store.p.fetch_work_item(1000) is not None


async def test_a_failing_ack_can_be_followed_by_an_abandon(store: Store) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    bad = first_turn("i1")
    bad.new_events.append(ev.OrchestrationStarted(1, 0, "O", "1.0.0", None, "0.1.0"))
    with pytest.raises(PermanentError):
        await store.p.ack_orchestration_item(item.lock_token, bad)
    await store.p.abandon_orchestration_item(item.lock_token)
    again = await store.must_fetch()
    assert again.attempt_count == 2 and again.execution_id == 0


async def test_an_event_id_is_never_rewritten(store: Store) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    with pytest.raises(PermanentError):
        await store.p.ack_orchestration_item(
            item.lock_token, next_turn(item, ev.EventRaised(1, 0, "e", "overwrite?"))
        )
    assert isinstance((await store.p.read_history("i1", 1))[0], ev.OrchestrationStarted)


async def test_a_finished_execution_records_output_and_completion(store: Store) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    store.clock.advance(5000)
    await store.p.ack_orchestration_item(
        item.lock_token,
        next_turn(
            item, ev.OrchestrationCompleted(2, 0, {"r": 1}), status="Completed", output={"r": 1}
        ),
    )
    info = await store.p.get_instance("i1")
    assert info is not None and info.status == "Completed" and info.output == {"r": 1}
    assert info.updated_at > info.created_at
    (ex,) = await store.p.list_executions("i1")
    assert ex.status == "Completed" and ex.output == {"r": 1} and ex.event_count == 2
    assert ex.completed_at is not None and ex.engine_version == "0.1.0"


async def test_a_finished_instance_is_fetched_without_history(store: Store) -> None:
    await store.begin("i1", status="Completed")
    await store.event("i1", "late")
    item = await store.must_fetch()
    assert item.status == "Completed" and item.history == []
    assert item.history_length == 2


async def test_errors_and_custom_status_round_trip(store: Store) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    err = ev.ErrorDetails("application", "KeyError", "missing 'x'")
    commit = first_turn("i1")
    commit.new_events.append(ev.OrchestrationFailed(2, 0, err))
    assert commit.instance is not None
    commit.instance.status = "Failed"
    commit.instance.error = err
    commit.instance.custom_status = {"stage": 3, "note": "ünïcode"}
    await store.p.ack_orchestration_item(item.lock_token, commit)
    info = await store.p.get_instance("i1")
    assert info is not None and info.error == err
    assert info.custom_status == {"stage": 3, "note": "ünïcode"}


async def test_the_parent_of_a_sub_orchestration_is_recorded(store: Store) -> None:
    await store.begin("child", parent="parent")
    info = await store.p.get_instance("child")
    assert info is not None and info.parent_instance_id == "parent"


async def test_cancelled_activities_leave_the_worker_queue(store: Store) -> None:
    await store.begin("i1", activities=3)
    await store.event("i1")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(
        item.lock_token, next_turn(item, cancelled_activities=[2, 4])
    )
    left = await store.p.fetch_work_item(1000)
    assert left is not None and left.work.event_id == 3
    assert await store.p.fetch_work_item(1000) is None


async def test_cancelling_a_running_activity_makes_its_ack_fail(store: Store) -> None:
    await store.begin("i1", activities=1)
    wi = await store.p.fetch_work_item(10_000)
    assert wi is not None
    await store.event("i1")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(item.lock_token, next_turn(item, cancelled_activities=[2]))
    with pytest.raises(LockLostError):
        await store.p.renew_work_item_lock(wi.lock_token, 1000)
    with pytest.raises(LockLostError):
        await store.p.ack_work_item(wi.lock_token, ev.ActivityResult("i1", 1, 2, "late"))
    assert await store.p.fetch_work_item(1000) is None


async def _continue_as_new(store: Store, instance_id: str, execution_id: int) -> None:
    """Acknowledge a turn that ends `execution_id` and queues the next execution's start."""
    await store.event(instance_id, "next")
    item = await store.must_fetch()
    assert item.execution_id == execution_id
    commit = next_turn(
        item,
        ev.OrchestrationContinuedAsNew(item.history_length + 1, 0, execution_id + 1, None),
        status="ContinuedAsNew",
        messages=[
            ev.StartOrchestration(instance_id, "O", "1.0.0", execution_id + 1, execution_id + 1)
        ],
    )
    await store.p.ack_orchestration_item(item.lock_token, commit)
    start = await store.must_fetch()
    assert start.status == "ContinuedAsNew" and start.history == []
    await store.p.ack_orchestration_item(
        start.lock_token, first_turn(instance_id, execution_id=execution_id + 1, activities=1)
    )


async def test_continue_as_new_starts_an_isolated_execution(store: Store) -> None:
    await store.begin("i1", activities=2)
    await _continue_as_new(store, "i1", 1)
    info = await store.p.get_instance("i1")
    assert info is not None and info.current_execution_id == 2 and info.status == "Running"
    first = await store.p.read_history("i1", 1)
    second = await store.p.read_history("i1", 2)
    assert [e.event_id for e in first] == [1, 2, 3, 4]
    assert isinstance(first[-1], ev.OrchestrationContinuedAsNew)
    assert [e.event_id for e in second] == [1, 2]
    executions = await store.p.list_executions("i1")
    assert [(x.execution_id, x.status) for x in executions] == [
        (1, "ContinuedAsNew"),
        (2, "Running"),
    ]
    assert executions[0].completed_at is not None and executions[1].completed_at is None


async def test_a_fetch_after_continue_as_new_loads_only_the_current_history(store: Store) -> None:
    await store.begin("i1", activities=2)
    await _continue_as_new(store, "i1", 1)
    await store.event("i1")
    item = await store.must_fetch()
    assert item.execution_id == 2
    assert [e.event_id for e in item.history] == [1, 2]
    assert item.history_length == 2


async def test_work_of_an_old_execution_stays_addressed_to_it(store: Store) -> None:
    await store.begin("i1", activities=1)
    await _continue_as_new(store, "i1", 1)
    works = []
    while (wi := await store.p.fetch_work_item(1000)) is not None:
        works.append((wi.work.execution_id, wi.work.event_id))
    assert works == [(1, 2), (2, 2)]


async def test_many_executions_keep_their_own_histories(store: Store) -> None:
    await store.begin("i1")
    for n in range(1, 5):
        await _continue_as_new(store, "i1", n)
    sizes = [len(await store.p.read_history("i1", n)) for n in range(1, 6)]
    assert sizes == [2, 3, 3, 3, 2]  # started (+ activity) + continued-as-new
    assert [x.execution_id for x in await store.p.list_executions("i1")] == [1, 2, 3, 4, 5]


async def test_history_length_is_the_highest_event_id(store: Store) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    commit = first_turn("i1")
    commit.new_events.append(ev.EventSubscribed(7, 0, "gap"))  # ids need not be dense
    await store.p.ack_orchestration_item(item.lock_token, commit)
    await store.event("i1")
    assert (await store.must_fetch()).history_length == 7


async def test_an_unreadable_event_is_reported_not_raised(store: Store) -> None:
    await store.begin("i1")
    await raw_sql(store.p, 'UPDATE history SET data = \'{"k":"FromTheFuture"}\' WHERE event_id = 1')
    await store.event("i1")
    item = await store.must_fetch()
    assert item.history == [] and item.history_error is not None
    assert "FromTheFuture" in item.history_error
    assert item.history_length == 1


async def test_an_unreadable_message_is_reported_not_raised(store: Store) -> None:
    await store.begin("i1")
    await store.event("i1")
    await raw_sql(store.p, "UPDATE orchestrator_queue SET data = 'not json'")
    item = await store.must_fetch()
    assert item.history_error is not None and item.history == []


async def test_an_update_without_started_execution_keeps_the_execution(store: Store) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    commit = TurnCommit(
        execution_id=1,
        new_events=[ev.EventRaised(2, 0, "e", None)],
        instance=InstanceUpdate("O", "1.0.0", "Running", custom_status="x", engine_version="0.1.0"),
    )
    await store.p.ack_orchestration_item(item.lock_token, commit)
    (ex,) = await store.p.list_executions("i1")
    assert ex.event_count == 2
