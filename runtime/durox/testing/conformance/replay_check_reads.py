"""The reads a replay check makes (`durox.replaycheck`): which orchestration versions have
executions to replay, and a sample of them, longest or most recent first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from durox.core import events as ev
from durox.providers import VersionExecutions
from durox.status import InstanceStatus
from durox.testing.support import ENGINE, Harness, S, first_turn


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def _begin(
    store: Harness,
    instance_id: str,
    *,
    name: str = "O",
    version: str = "1.0.0",
    activities: int = 0,
    status: InstanceStatus = S.RUNNING,
) -> None:
    """Start `instance_id` at NAME@version; its first turn schedules `activities` activities
    (a history of 1 + activities events, one more if it completes), at the store's clock."""
    await store.start(instance_id, name)
    item = await store.must_fetch()
    commit = first_turn(
        instance_id, name=name, status=status, activities=activities, ts=store.clock.now
    )
    started = ev.OrchestrationStarted(1, store.clock.now, name, version, None, ENGINE)
    commit.new_events[0] = started
    assert commit.instance is not None
    commit.instance = replace(commit.instance, version=version)
    await store.p.ack_orchestration_item(item.lock_token, commit)


async def test_running_executions_are_counted_per_name_and_version(store: Harness) -> None:
    await _begin(store, "a", version="1.0.0")
    await _begin(store, "b", version="1.0.0")
    await _begin(store, "c", version="2.0.0")
    await _begin(store, "d", name="Other", version="1.0.0")
    await _begin(store, "done", version="1.0.0", status=S.COMPLETED)
    assert await store.p.execution_versions() == [
        VersionExecutions("O", "1.0.0", 2, 0),
        VersionExecutions("O", "2.0.0", 1, 0),
        VersionExecutions("Other", "1.0.0", 1, 0),
    ]


async def test_ended_executions_count_only_when_asked_for_and_recent_enough(
    store: Harness,
) -> None:
    await _begin(store, "old", version="1.0.0", status=S.COMPLETED)
    store.clock.advance(10_000)
    since = store.clock.now
    await _begin(store, "new", version="1.0.0", status=S.COMPLETED)
    await _begin(store, "failed", version="1.0.0", status=S.FAILED)  # not the code's own end
    assert await store.p.execution_versions() == []
    assert await store.p.execution_versions(ended_since=_at(since)) == [
        VersionExecutions("O", "1.0.0", 0, 1)
    ]
    assert await store.p.execution_versions(ended_since=_at(since - 10_000)) == [
        VersionExecutions("O", "1.0.0", 0, 2)
    ]


async def test_each_execution_counts_at_its_own_version(store: Harness) -> None:
    await store.begin("i1")
    store.clock.advance(1000)
    await store.continue_as_new("i1", 1)  # execution 1 continued as new, execution 2 runs
    versions = await store.p.execution_versions(ended_since=_at(0))
    assert versions == [VersionExecutions("O", "1.0.0", 1, 1)]
    sample = await store.p.sample_executions(
        "O", "1.0.0", order="longest", limit=10, ended_since=_at(0)
    )
    assert [(r.instance_id, r.execution_id, r.status) for r in sample] == [
        ("i1", 2, S.RUNNING),
        ("i1", 1, S.CONTINUED_AS_NEW),
    ]


async def test_a_sample_puts_running_executions_first_longest_or_most_recent(
    store: Harness,
) -> None:
    await _begin(store, "a", activities=3)  # the longest, the least recent
    store.clock.advance(1000)
    await _begin(store, "b", activities=1)
    store.clock.advance(1000)
    await _begin(store, "c", activities=0)  # the shortest, the most recent running one
    store.clock.advance(1000)
    await _begin(store, "z", activities=5, status=S.COMPLETED)  # ended: after the running ones
    await _begin(store, "elsewhere", version="2.0.0", activities=9)
    since = _at(0)

    longest = await store.p.sample_executions(
        "O", "1.0.0", order="longest", limit=10, ended_since=since
    )
    assert [(r.instance_id, r.event_count) for r in longest] == [
        ("a", 4),
        ("b", 2),
        ("c", 1),
        ("z", 7),
    ]
    recent = await store.p.sample_executions(
        "O", "1.0.0", order="recent", limit=10, ended_since=since
    )
    assert [r.instance_id for r in recent] == ["c", "b", "a", "z"]
    assert recent[0].last_active_at > recent[1].last_active_at > recent[2].last_active_at
    assert {r.status for r in recent} == {S.RUNNING, S.COMPLETED}


async def test_a_sample_is_bounded_and_leaves_ended_executions_out_unless_asked(
    store: Harness,
) -> None:
    for n in range(5):
        await _begin(store, f"i{n}", activities=n)
    await _begin(store, "done", status=S.COMPLETED)
    sample = await store.p.sample_executions("O", "1.0.0", order="longest", limit=2)
    assert [r.instance_id for r in sample] == ["i4", "i3"]
    everything = await store.p.sample_executions("O", "1.0.0", order="recent", limit=100)
    assert "done" not in {r.instance_id for r in everything} and len(everything) == 5
    assert await store.p.sample_executions("O", "9.9.9", order="recent", limit=100) == []
    assert await store.p.sample_executions("Nobody", "1.0.0", order="recent", limit=100) == []


async def test_the_replay_check_reads_change_nothing(store: Harness) -> None:
    await _begin(store, "a", activities=2)
    await _begin(store, "done", status=S.COMPLETED)
    before = (await store.p.system_metrics(), await store.p.queue_depths())
    await store.p.execution_versions(ended_since=_at(0))
    await store.p.sample_executions("O", "1.0.0", order="longest", limit=10, ended_since=_at(0))
    await store.p.sample_executions("O", "1.0.0", order="recent", limit=10)
    assert (await store.p.system_metrics(), await store.p.queue_depths()) == before
