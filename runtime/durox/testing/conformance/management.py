"""Deleting, pruning and reading the store: what an operator does to a live system."""

from __future__ import annotations

from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durox.core import events as ev
from durox.core.versions import SemverRange
from durox.errors import ConfigurationError, InstanceRunningError, LockLostError
from durox.providers import TurnCommit, WorkerRecord
from durox.status import InstanceStatus
from durox.testing.support import Harness, S, next_turn


async def _finish(store: Harness, instance_id: str, status: InstanceStatus = S.COMPLETED) -> None:
    await store.event(instance_id, "finish")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(
        item.lock_token,
        next_turn(item, ev.OrchestrationCompleted(item.history_length + 1, 0, 1), status=status),
    )


async def test_deleting_a_finished_instance_removes_everything_of_it(store: Harness) -> None:
    await store.begin("i1", status=S.COMPLETED)
    await store.begin("keep", status=S.COMPLETED)
    assert await store.p.delete_instance("i1") == 1
    assert await store.p.get_instance("i1") is None
    assert await store.p.read_history("i1", 1) == []
    assert await store.p.list_executions("i1") == []
    assert [i.instance_id for i in await store.p.list_instances()] == ["keep"]


async def test_deleting_a_missing_instance_deletes_nothing(store: Harness) -> None:
    assert await store.p.delete_instance("nobody") == 0


async def test_a_running_instance_is_not_deleted_without_force(store: Harness) -> None:
    await store.begin("i1")
    with pytest.raises(InstanceRunningError):
        await store.p.delete_instance("i1")
    assert await store.p.get_instance("i1") is not None
    assert await store.p.delete_instance("i1", force=True) == 1
    assert await store.p.get_instance("i1") is None


async def test_a_forced_delete_removes_queued_work_and_breaks_the_lock(store: Harness) -> None:
    await store.begin("i1", activities=2)
    await store.event("i1")
    item = await store.must_fetch()
    await store.p.delete_instance("i1", force=True)
    with pytest.raises(LockLostError):
        await store.p.ack_orchestration_item(item.lock_token, TurnCommit(execution_id=1))
    assert await store.p.fetch_work_item(1000) is None
    assert await store.fetch() is None


async def test_deletion_cascades_to_sub_orchestrations(store: Harness) -> None:
    await store.begin("root", status=S.COMPLETED)
    await store.begin("child", status=S.COMPLETED, parent="root")
    await store.begin("grandchild", status=S.COMPLETED, parent="child")
    await store.begin("stranger", status=S.COMPLETED)
    assert await store.p.delete_instance("root") == 3
    assert [i.instance_id for i in await store.p.list_instances()] == ["stranger"]


async def test_a_running_descendant_blocks_deletion_unless_forced(store: Harness) -> None:
    await store.begin("root", status=S.COMPLETED)
    await store.begin("child", parent="root")
    with pytest.raises(InstanceRunningError):
        await store.p.delete_instance("root")
    assert len(await store.p.list_instances()) == 2
    assert await store.p.delete_instance("root", force=True) == 2


async def test_deleting_a_child_leaves_its_parent(store: Harness) -> None:
    await store.begin("root", status=S.COMPLETED)
    await store.begin("child", status=S.COMPLETED, parent="root")
    assert await store.p.delete_instance("child") == 1
    assert await store.p.get_instance("root") is not None


async def test_bulk_delete_takes_finished_instances_only(store: Harness) -> None:
    await store.begin("done", status=S.COMPLETED)
    await store.begin("busy")
    await store.begin("failed")
    await _finish(store, "failed", S.FAILED)
    assert await store.p.delete_instances() == 2
    assert [i.instance_id for i in await store.p.list_instances()] == ["busy"]


async def test_bulk_delete_filters_by_status_and_name(store: Harness) -> None:
    await store.begin("a", name="A", status=S.COMPLETED)
    await store.begin("b", name="B", status=S.COMPLETED)
    await store.begin("c", name="A")
    await _finish(store, "c", S.FAILED)
    assert await store.p.delete_instances(status=S.COMPLETED, name="A") == 1
    assert sorted(i.instance_id for i in await store.p.list_instances()) == ["b", "c"]
    assert await store.p.delete_instances(status=S.RUNNING) == 0
    assert await store.p.delete_instances(name="A") == 1
    assert [i.instance_id for i in await store.p.list_instances()] == ["b"]


async def test_status_filters_take_the_enum_and_its_exact_word(store: Harness) -> None:
    await store.begin("done", status=S.COMPLETED)
    await store.begin("busy")
    by_enum = await store.p.list_instances(status=InstanceStatus.RUNNING)
    by_word = await store.p.list_instances(status="Running")
    assert [i.instance_id for i in by_enum] == [i.instance_id for i in by_word] == ["busy"]
    assert by_enum[0].status is InstanceStatus.RUNNING
    assert await store.p.delete_instances(status=InstanceStatus.COMPLETED) == 1


@pytest.mark.parametrize("word", ["completed", "Done", ""])
async def test_an_unknown_status_filter_is_refused(store: Harness, word: str) -> None:
    await store.begin("done", status=S.COMPLETED)
    with pytest.raises(ConfigurationError, match="unknown instance status"):
        await store.p.list_instances(status=word)
    with pytest.raises(ConfigurationError, match="unknown instance status"):
        await store.p.delete_instances(status=word)
    assert len(await store.p.list_instances()) == 1


async def test_bulk_delete_filters_by_completion_time(store: Harness) -> None:
    await store.begin("old", status=S.COMPLETED)
    store.clock.advance(60_000)
    await store.begin("new", status=S.COMPLETED)
    cut = datetime.fromtimestamp((store.clock.now - 30_000) / 1000, tz=UTC)
    assert await store.p.delete_instances(completed_before=cut) == 1
    assert [i.instance_id for i in await store.p.list_instances()] == ["new"]
    assert await store.p.delete_instances(completed_before=cut - timedelta(days=1)) == 0


async def test_bulk_delete_spares_a_tree_that_still_runs(store: Harness) -> None:
    await store.begin("root", status=S.COMPLETED)
    await store.begin("child", parent="root")
    await store.begin("alone", status=S.COMPLETED)
    assert await store.p.delete_instances() == 1
    assert sorted(i.instance_id for i in await store.p.list_instances()) == ["child", "root"]


async def test_bulk_delete_counts_descendants(store: Harness) -> None:
    await store.begin("root", status=S.COMPLETED)
    await store.begin("child", status=S.COMPLETED, parent="root")
    assert await store.p.delete_instances() == 2
    assert await store.p.list_instances() == []


async def test_pruning_keeps_the_newest_executions(store: Harness) -> None:
    await store.begin("i1")
    for n in range(1, 5):
        await store.continue_as_new("i1", n)
    assert await store.p.prune_executions("i1", keep_last=2) == 3
    assert [x.execution_id for x in await store.p.list_executions("i1")] == [4, 5]
    assert await store.p.read_history("i1", 3) == []
    assert len(await store.p.read_history("i1", 4)) == 3


@pytest.mark.parametrize("keep", [0, 1])
async def test_pruning_never_removes_the_current_execution(store: Harness, keep: int) -> None:
    await store.begin("i1")
    await store.continue_as_new("i1", 1)
    assert await store.p.prune_executions("i1", keep_last=keep) == 1
    (only,) = await store.p.list_executions("i1")
    assert only.execution_id == 2
    await store.event("i1")
    item = await store.must_fetch()
    assert item.execution_id == 2 and len(item.history) == 2


async def test_pruning_a_single_execution_or_nothing_is_a_no_op(store: Harness) -> None:
    await store.begin("i1")
    assert await store.p.prune_executions("i1", keep_last=1) == 0
    assert await store.p.prune_executions("missing", keep_last=1) == 0


async def test_queue_depths_separate_ready_delayed_and_locked(store: Harness) -> None:
    await store.begin("a", activities=3)
    await store.begin("b")
    await store.begin("c")
    await store.event("a")
    await store.event("b")
    await store.p.enqueue_orchestrator_message(ev.ExternalEvent("c", "later", None), 5000)
    locked = await store.must_fetch()
    assert locked.instance_id == "a"
    await store.event("a", "meanwhile")
    wi = await store.p.fetch_work_item(1000)
    assert wi is not None
    await store.p.abandon_work_item(wi.lock_token, 9000)
    await store.p.fetch_work_item(1000)
    d = await store.p.queue_depths()
    assert (d.orchestrator_ready, d.orchestrator_delayed, d.orchestrator_locked) == (1, 1, 2)
    assert (d.worker_ready, d.worker_delayed, d.worker_locked) == (1, 1, 1)
    store.clock.advance(30_001)
    d = await store.p.queue_depths()
    assert (d.orchestrator_ready, d.orchestrator_delayed, d.orchestrator_locked) == (4, 0, 0)
    assert (d.worker_ready, d.worker_delayed, d.worker_locked) == (3, 0, 0)


async def test_system_metrics_count_the_store(store: Harness) -> None:
    await store.begin("a", activities=2)
    await store.begin("b", status=S.COMPLETED)
    await store.begin("c", status=S.COMPLETED)
    await store.event("a")
    await store.must_fetch()
    m = await store.p.system_metrics()
    assert m.instances_by_status == {S.COMPLETED: 2, S.RUNNING: 1}
    assert m.instances == 3
    assert m.executions == 3 and m.history_events == 3 + 2 + 2
    assert m.instance_locks == 1 and m.sessions == 0 and m.workers == 0


async def test_metrics_of_an_empty_store(store: Harness) -> None:
    m = await store.p.system_metrics()
    assert m.instances_by_status == {} and m.instances == 0
    assert (m.executions, m.history_events, m.instance_locks, m.sessions, m.workers) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert astuple(await store.p.queue_depths()) == (0, 0, 0, 0, 0, 0)


async def test_listing_filters_and_limits(store: Harness) -> None:
    for n in range(4):
        await store.begin(f"a{n}", name="A", status=S.COMPLETED if n % 2 else S.RUNNING)
        store.clock.advance(10)
    await store.begin("b", name="B")
    assert [i.instance_id for i in await store.p.list_instances(name="A")] == [
        "a0",
        "a1",
        "a2",
        "a3",
    ]
    assert [i.instance_id for i in await store.p.list_instances(status=S.COMPLETED)] == [
        "a1",
        "a3",
    ]
    assert [i.instance_id for i in await store.p.list_instances(limit=2)] == ["a0", "a1"]
    assert await store.p.list_instances(version="9.9.9") == []
    assert len(await store.p.list_instances(version="1.0.0")) == 5


def _record(worker_id: str, pool: str = "default") -> WorkerRecord:
    now = datetime.now(UTC)
    return WorkerRecord(
        worker_id=worker_id,
        node_id=None,
        pool=pool,
        engine_version="0.1.0",
        replay_min="0.0.0",
        replay_max="0.1.0",
        orchestrations={"O": {"versions": ["1.0.0"], "policy": "latest"}},
        activities=["A"],
        session_activities=[],
        config_revision="7",
        started_at=now,
        heartbeat_at=now,
    )


async def test_worker_records_live_by_heartbeat(store: Harness) -> None:
    await store.p.upsert_worker(_record("w1"))
    await store.p.upsert_worker(_record("w2", pool="gpu"))
    assert [w.worker_id for w in await store.p.list_workers(None, 10_000)] == ["w1", "w2"]
    got = await store.p.list_workers("gpu", 10_000)
    assert [w.worker_id for w in got] == ["w2"] and got[0].has_version("O", "1.0.0")
    store.clock.advance(5000)
    await store.p.upsert_worker(_record("w1"))
    store.clock.advance(6000)
    assert [w.worker_id for w in await store.p.list_workers(None, 10_000)] == ["w1"]
    assert (await store.p.system_metrics()).workers == 1  # the stale row was reaped
    await store.p.remove_worker("w1")
    assert await store.p.list_workers(None, 10_000) == []


async def test_the_drain_report_counts_pins_outside_the_range(store: Harness) -> None:
    await store.begin("old1", engine="0.0.5")
    await store.begin("old2", engine="0.0.5", status=S.COMPLETED)
    await store.begin("new", engine="0.1.0")
    await store.event("old1")
    await store.event("old1")
    (entry,) = await store.p.drain_report(SemverRange("0.1.0", "0.2.0"))
    assert (entry.orchestration_name, entry.pinned_engine_version) == ("O", "0.0.5")
    assert (entry.running_instances, entry.queued_messages, entry.poisoned_instances) == (1, 2, 0)
    assert await store.p.drain_report(SemverRange("0.0.0", "0.2.0")) == []


async def test_listing_by_engine_pin_creation_time_and_offset(store: Harness) -> None:
    t0 = store.clock.now
    for n, engine in enumerate(["0.1.0", "0.2.0", "0.2.0"]):
        await store.begin(f"p{n}", engine=engine)
        store.clock.advance(10)

    async def ids(**filters: Any) -> list[str]:
        return [i.instance_id for i in await store.p.list_instances(**filters)]

    def at(ms: int) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)

    assert await ids(pin="0.2.0") == ["p1", "p2"]
    assert await ids(pin="9.9.9") == []
    assert await ids(created_after=at(t0 + 10)) == ["p1", "p2"]  # the bound included
    assert await ids(created_before=at(t0 + 10)) == ["p0"]  # the bound excluded
    assert await ids(created_after=at(t0 + 9) + timedelta(microseconds=500)) == ["p1", "p2"]
    assert await ids(created_after=at(t0 + 5), created_before=at(t0 + 15)) == ["p1"]
    assert await ids(offset=1) == ["p1", "p2"]
    assert await ids(offset=1, limit=1) == ["p1"]
    assert await ids(offset=3) == []
    assert await ids(pin="0.2.0", offset=1) == ["p2"]
