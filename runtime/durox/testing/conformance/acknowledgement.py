"""One acknowledgement, one transaction: everything a turn decided lands together or not at all.
Histories are append-only and keyed by execution, so continue-as-new starts a clean one."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.errors import LockLostError, PermanentError
from durox.providers import InstanceUpdate, TurnCommit
from durox.testing.support import Harness, S, first_turn, next_turn


async def test_an_ack_appends_history_in_event_order(store: Harness) -> None:
    await store.begin("i1", activities=3)
    history = await store.p.read_history("i1", 1)
    assert [e.event_id for e in history] == [1, 2, 3, 4]
    assert isinstance(history[0], ev.OrchestrationStarted)
    assert all(isinstance(e, ev.ActivityScheduled) for e in history[1:])


async def test_an_ack_enqueues_its_activities_in_order(store: Harness) -> None:
    await store.begin("i1", activities=3)
    got = []
    while (wi := await store.p.fetch_work_item(1000)) is not None:
        got.append(wi.work)
    assert got == [ev.ActivityWork("i1", 1, 2 + n, "A", n) for n in range(3)]


async def test_the_next_fetch_sees_the_whole_stored_history(store: Harness) -> None:
    await store.begin("i1", activities=2)
    await store.event("i1")
    item = await store.must_fetch()
    assert item.execution_id == 1 and item.status == S.RUNNING
    assert [e.event_id for e in item.history] == [1, 2, 3]
    assert item.history_length == 3
    assert item.orchestration_name == "O" and item.orchestration_version == "1.0.0"


async def test_a_failing_ack_applies_nothing_and_keeps_the_lock(store: Harness) -> None:
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


async def test_a_failing_ack_can_be_followed_by_an_abandon(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    bad = first_turn("i1")
    bad.new_events.append(ev.OrchestrationStarted(1, 0, "O", "1.0.0", None, "0.1.0"))
    with pytest.raises(PermanentError):
        await store.p.ack_orchestration_item(item.lock_token, bad)
    await store.p.abandon_orchestration_item(item.lock_token)
    again = await store.must_fetch()
    assert again.attempt_count == 2 and again.execution_id == 0


async def test_an_event_id_is_never_rewritten(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    with pytest.raises(PermanentError):
        await store.p.ack_orchestration_item(
            item.lock_token, next_turn(item, ev.EventRaised(1, 0, "e", "overwrite?"))
        )
    assert isinstance((await store.p.read_history("i1", 1))[0], ev.OrchestrationStarted)


async def test_a_finished_execution_records_output_and_completion(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    store.clock.advance(5000)
    await store.p.ack_orchestration_item(
        item.lock_token,
        next_turn(
            item, ev.OrchestrationCompleted(2, 0, {"r": 1}), status=S.COMPLETED, output={"r": 1}
        ),
    )
    info = await store.p.get_instance("i1")
    assert info is not None and info.status == S.COMPLETED and info.output == {"r": 1}
    assert info.updated_at > info.created_at
    (ex,) = await store.p.list_executions("i1")
    assert ex.status == S.COMPLETED and ex.output == {"r": 1} and ex.event_count == 2
    assert ex.completed_at is not None and ex.engine_version == "0.1.0"


async def test_a_finished_instance_is_fetched_without_history(store: Harness) -> None:
    await store.begin("i1", status=S.COMPLETED)
    await store.event("i1", "late")
    item = await store.must_fetch()
    assert item.status == S.COMPLETED and item.history == []
    assert item.history_length == 2


async def test_errors_and_custom_status_round_trip(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    err = ev.ErrorDetails("application", "KeyError", "missing 'x'")
    commit = first_turn("i1")
    commit.new_events.append(ev.OrchestrationFailed(2, 0, err))
    assert commit.instance is not None
    commit.instance.status = S.FAILED
    commit.instance.error = err
    commit.instance.custom_status = {"stage": 3, "note": "ünïcode"}
    await store.p.ack_orchestration_item(item.lock_token, commit)
    info = await store.p.get_instance("i1")
    assert info is not None and info.error == err
    assert info.custom_status == {"stage": 3, "note": "ünïcode"}


async def test_the_parent_of_a_sub_orchestration_is_recorded(store: Harness) -> None:
    await store.begin("child", parent="parent")
    info = await store.p.get_instance("child")
    assert info is not None and info.parent_instance_id == "parent"


async def test_cancelled_activities_leave_the_worker_queue(store: Harness) -> None:
    await store.begin("i1", activities=3)
    await store.event("i1")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(
        item.lock_token, next_turn(item, cancelled_activities=[2, 4])
    )
    left = await store.p.fetch_work_item(1000)
    assert left is not None and left.work.event_id == 3
    assert await store.p.fetch_work_item(1000) is None


async def test_cancelling_a_running_activity_makes_its_ack_fail(store: Harness) -> None:
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


async def test_continue_as_new_starts_an_isolated_execution(store: Harness) -> None:
    await store.begin("i1", activities=2)
    await store.continue_as_new("i1", 1)
    info = await store.p.get_instance("i1")
    assert info is not None and info.current_execution_id == 2 and info.status == S.RUNNING
    first = await store.p.read_history("i1", 1)
    second = await store.p.read_history("i1", 2)
    assert [e.event_id for e in first] == [1, 2, 3, 4]
    assert isinstance(first[-1], ev.OrchestrationContinuedAsNew)
    assert [e.event_id for e in second] == [1, 2]
    executions = await store.p.list_executions("i1")
    assert [(x.execution_id, x.status) for x in executions] == [
        (1, S.CONTINUED_AS_NEW),
        (2, S.RUNNING),
    ]
    assert executions[0].completed_at is not None and executions[1].completed_at is None


async def test_a_fetch_after_continue_as_new_loads_only_the_current_history(store: Harness) -> None:
    await store.begin("i1", activities=2)
    await store.continue_as_new("i1", 1)
    await store.event("i1")
    item = await store.must_fetch()
    assert item.execution_id == 2
    assert [e.event_id for e in item.history] == [1, 2]
    assert item.history_length == 2


async def test_work_of_an_old_execution_stays_addressed_to_it(store: Harness) -> None:
    await store.begin("i1", activities=1)
    await store.continue_as_new("i1", 1)
    works = []
    while (wi := await store.p.fetch_work_item(1000)) is not None:
        works.append((wi.work.execution_id, wi.work.event_id))
    assert works == [(1, 2), (2, 2)]


async def test_many_executions_keep_their_own_histories(store: Harness) -> None:
    await store.begin("i1")
    for n in range(1, 5):
        await store.continue_as_new("i1", n)
    sizes = [len(await store.p.read_history("i1", n)) for n in range(1, 6)]
    assert sizes == [2, 3, 3, 3, 2]  # started (+ activity) + continued-as-new
    assert [x.execution_id for x in await store.p.list_executions("i1")] == [1, 2, 3, 4, 5]


async def test_history_length_is_the_highest_event_id(store: Harness) -> None:
    await store.start("i1")
    item = await store.must_fetch()
    commit = first_turn("i1")
    commit.new_events.append(ev.EventSubscribed(7, 0, "gap"))  # ids need not be dense
    await store.p.ack_orchestration_item(item.lock_token, commit)
    await store.event("i1")
    assert (await store.must_fetch()).history_length == 7


async def test_an_update_without_started_execution_keeps_the_execution(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    item = await store.must_fetch()
    commit = TurnCommit(
        execution_id=1,
        new_events=[ev.EventRaised(2, 0, "e", None)],
        instance=InstanceUpdate("O", "1.0.0", S.RUNNING, custom_status="x", engine_version="0.1.0"),
    )
    await store.p.ack_orchestration_item(item.lock_token, commit)
    (ex,) = await store.p.list_executions("i1")
    assert ex.event_count == 2
