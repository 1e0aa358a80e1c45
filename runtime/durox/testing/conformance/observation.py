"""Observing the store (`ProviderAdmin.observe`): what an operator decides a rollout from.

Which `NAME@version`s and engine pins still have instances, the oldest of each version, what
failed or was poisoned lately, and the workers with the age of their heartbeats, all in one read
that writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durox.core import events as ev
from durox.providers import StoreObservation, WorkerRecord
from durox.testing.support import ENGINE, Harness, S, first_turn, next_turn

_STALE_MS = 10_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


async def _begin(
    store: Harness,
    instance_id: str,
    *,
    name: str = "O",
    version: str = "1.0.0",
    engine: str = ENGINE,
) -> None:
    """Start `instance_id` running `name@version`, pinned to `engine`."""
    await store.start(instance_id, name)
    item = await store.must_fetch()
    commit = first_turn(instance_id, name=name, engine=engine, ts=store.clock.now)
    assert commit.instance is not None
    commit.instance.version = version
    await store.p.ack_orchestration_item(item.lock_token, commit)


async def _end(store: Harness, instance_id: str, kind: str | None = None) -> None:
    """End `instance_id`: completed, or failed with an error of `kind` ("poison", ...)."""
    await store.event(instance_id, "end")
    item = await store.must_fetch()
    n = item.history_length + 1
    if kind is None:
        commit = next_turn(item, ev.OrchestrationCompleted(n, 0, None), status=S.COMPLETED)
    else:
        error = ev.ErrorDetails(kind, "Boom", "it failed")
        commit = next_turn(item, ev.OrchestrationFailed(n, 0, error), status=S.FAILED)
        assert commit.instance is not None
        commit.instance.error = error
    await store.p.ack_orchestration_item(item.lock_token, commit)


async def _observe(
    store: Harness, *, pool: str | None = None, failed_since: int | None = None
) -> StoreObservation:
    since = _at(store.clock.now - 60_000 if failed_since is None else failed_since)
    return await store.p.observe(pool=pool, failed_since=since, stale_after_ms=_STALE_MS)


def _worker(worker_id: str, *, pool: str = "main", node: str | None = None) -> WorkerRecord:
    now = datetime.now(UTC)
    return WorkerRecord(
        worker_id=worker_id,
        node_id=node,
        pool=pool,
        engine_version="0.2.0",
        replay_min="0.1.0",
        replay_max="0.2.0",
        orchestrations={"O": {"versions": ["1.0.0", "1.1.0"], "policy": "latest"}},
        activities=["A", "Reserve"],
        session_activities=["Reserve"],
        config_revision="r42",
        started_at=now,
        heartbeat_at=now,
    )


async def test_an_empty_store_is_observed_as_empty(store: Harness) -> None:
    seen = await _observe(store)
    assert seen.versions == () and seen.failures == () and seen.workers == ()
    assert seen.instances == 0 and seen.by_pin == {}
    assert seen.observed_at == _at(store.clock.now)


async def test_instances_are_counted_per_version_and_per_engine_pin(store: Harness) -> None:
    await _begin(store, "a1", version="1.0.0", engine="0.1.0")
    await _begin(store, "a2", version="1.0.0", engine="0.2.0")
    await _begin(store, "a3", version="1.0.0", engine="0.2.0")
    await _begin(store, "b1", version="1.1.0", engine="0.2.0")
    await _begin(store, "p1", name="P", version="2.0.0", engine="0.2.0")
    seen = await _observe(store)
    assert [(v.key, v.instances, v.by_pin) for v in seen.versions] == [
        ("O@1.0.0", 3, {"0.1.0": 1, "0.2.0": 2}),
        ("O@1.1.0", 1, {"0.2.0": 1}),
        ("P@2.0.0", 1, {"0.2.0": 1}),
    ]
    assert seen.instances == 5 and seen.by_pin == {"0.1.0": 1, "0.2.0": 4}
    usage = seen.usage("O", "1.1.0")
    assert usage is not None and usage.oldest_instance_id == "b1"
    assert seen.usage("O", "9.9.9") is None


async def test_versions_are_ordered_by_semver_precedence(store: Harness) -> None:
    await _begin(store, "x", version="1.10.0")
    await _begin(store, "y", version="1.9.0")
    seen = await _observe(store)
    assert [v.orchestration_version for v in seen.versions] == ["1.9.0", "1.10.0"]


async def test_instances_that_ended_are_not_counted(store: Harness) -> None:
    for n in range(4):
        await _begin(store, f"i{n}")
    await _end(store, "i0")
    await _end(store, "i1", "application")
    await store.p.enqueue_orchestrator_message(ev.CancelRequest("i2", "stop"))
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(
        item.lock_token, next_turn(item, ev.OrchestrationCompleted(3, 0, None), status=S.CANCELLED)
    )
    await _begin(store, "gone", version="0.9.0")
    await _end(store, "gone")
    seen = await _observe(store)
    assert [(v.key, v.instances, v.oldest_instance_id) for v in seen.versions] == [
        ("O@1.0.0", 1, "i3")
    ]


async def test_an_instance_between_executions_has_not_ended(store: Harness) -> None:
    await _begin(store, "i1")
    await store.event("i1", "next")
    item = await store.must_fetch()
    await store.p.ack_orchestration_item(
        item.lock_token,
        next_turn(
            item,
            ev.OrchestrationContinuedAsNew(item.history_length + 1, 0, 2, None),
            status=S.CONTINUED_AS_NEW,
            messages=[ev.StartOrchestration("i1", "O", "1.0.0", None, 2)],
        ),
    )
    between = await store.p.get_instance("i1")
    assert between is not None and between.status == S.CONTINUED_AS_NEW
    seen = await _observe(store)
    assert [(v.key, v.instances) for v in seen.versions] == [("O@1.0.0", 1)]


async def test_the_oldest_instance_of_each_version_is_named(store: Harness) -> None:
    await _begin(store, "late-1.0", version="1.0.0")
    first = store.clock.now
    store.clock.advance(1000)
    await _begin(store, "b-1.1", version="1.1.0")
    await _begin(store, "a-1.1", version="1.1.0")  # same time as b: the id decides
    store.clock.advance(1000)
    await _begin(store, "new-1.0", version="1.0.0")
    seen = await _observe(store)
    old = seen.usage("O", "1.0.0")
    assert old is not None
    assert (old.oldest_instance_id, old.oldest_created_at) == ("late-1.0", _at(first))
    new = seen.usage("O", "1.1.0")
    assert new is not None
    assert (new.oldest_instance_id, new.oldest_created_at) == ("a-1.1", _at(first + 1000))
    await _end(store, "late-1.0")
    old = (await _observe(store)).usage("O", "1.0.0")
    assert old is not None and old.oldest_instance_id == "new-1.0"


async def test_the_oldest_is_the_versions_own_across_engine_pins(store: Harness) -> None:
    await _begin(store, "old", engine="0.2.0")
    store.clock.advance(1000)
    await _begin(store, "older-pin", engine="0.1.0")
    (usage,) = (await _observe(store)).versions
    assert usage.oldest_instance_id == "old" and usage.by_pin == {"0.1.0": 1, "0.2.0": 1}


async def test_failures_are_counted_within_the_window(store: Harness) -> None:
    for n in range(5):
        await _begin(store, f"i{n}", version="1.0.0" if n < 4 else "2.0.0")
    await _end(store, "i0", "application")  # before the window
    store.clock.advance(60_000)
    since = store.clock.now
    await _end(store, "i1", "application")
    await _end(store, "i2", "poison")
    await _end(store, "i3")  # completed: no failure
    store.clock.advance(5000)
    await _end(store, "i4", "poison")
    seen = await _observe(store, failed_since=since)
    assert seen.failed_since == _at(since)
    assert [
        (f.orchestration_name, f.orchestration_version, f.failed, f.poisoned) for f in seen.failures
    ] == [("O", "1.0.0", 2, 1), ("O", "2.0.0", 1, 1)]
    later = await _observe(store, failed_since=since + 1)
    assert [(f.orchestration_version, f.failed, f.poisoned) for f in later.failures] == [
        ("2.0.0", 1, 1)
    ]
    assert seen.versions == ()


async def test_workers_are_observed_with_their_heartbeat_age(store: Harness) -> None:
    await store.p.upsert_worker(_worker("w-stale", node="pod-a"))
    await store.p.upsert_worker(_worker("w-other-pool", pool="batch"))
    store.clock.advance(25_000)
    await store.p.upsert_worker(_worker("w-live", node="pod-b"))
    store.clock.advance(4000)
    await store.p.upsert_worker(_worker("w-fresh", node="pod-c"))
    seen = await _observe(store, pool="main")
    assert seen.pool == "main" and seen.stale_after == timedelta(milliseconds=_STALE_MS)
    assert [(w.record.worker_id, w.heartbeat_age, w.live) for w in seen.workers] == [
        ("w-fresh", timedelta(0), True),
        ("w-live", timedelta(seconds=4), True),
        ("w-stale", timedelta(seconds=29), False),
    ]
    assert [w.worker_id for w in seen.live_workers] == ["w-fresh", "w-live"]
    assert [w.worker_id for w in seen.stale_workers] == ["w-stale"]
    live = seen.live_workers[1]
    assert (live.node_id, live.config_revision, live.replay_min, live.replay_max) == (
        "pod-b",
        "r42",
        "0.1.0",
        "0.2.0",
    )
    assert live.has_version("O", "1.1.0") and live.has_session_handler("Reserve")
    assert live.activities == ["A", "Reserve"]
    every = await _observe(store)
    assert [w.record.worker_id for w in every.workers] == [
        "w-fresh",
        "w-live",
        "w-other-pool",
        "w-stale",
    ]


async def test_observing_writes_nothing(store: Harness) -> None:
    await store.p.upsert_worker(_worker("w-stale"))
    store.clock.advance(60_000)
    for _ in range(2):
        seen = await _observe(store)
        assert [(w.record.worker_id, w.live) for w in seen.workers] == [("w-stale", False)]
    assert (await store.p.system_metrics()).workers == 1  # still there: not reaped
    assert await store.p.list_workers(None, _STALE_MS) == []  # the runtime's read reaps it
    assert (await _observe(store)).workers == ()


async def test_outcomes_count_the_instances_created_in_a_window_per_version(
    store: Harness,
) -> None:
    """What a ramp's analysis reads: per NAME@version, of the instances created since a moment,
    how many started, ended, failed and were poisoned. Older instances are left out, however
    they ended; an instance still running counts as started but not as ended."""
    await _begin(store, "old", version="1.0.0")
    await _end(store, "old", "application")
    store.clock.advance(60_000)
    since = store.clock.now
    for n in range(4):
        await _begin(store, f"a{n}", version="1.0.0")
    await _end(store, "a0")
    await _end(store, "a1", "application")
    for n in range(3):
        await _begin(store, f"b{n}", version="2.0.0")
    await _end(store, "b0", "poison")
    await _end(store, "b1", "application")
    await _end(store, "b2")
    await _begin(store, "p0", name="P", version="1.10.0")
    outcomes = await store.p.outcomes(since=_at(since))
    assert [(o.key, o.started, o.ended, o.failed, o.poisoned) for o in outcomes] == [
        ("O@1.0.0", 4, 2, 1, 0),
        ("O@2.0.0", 3, 3, 2, 1),
        ("P@1.10.0", 1, 0, 0, 0),
    ]
    assert await store.p.outcomes(since=_at(store.clock.now + 1)) == []
    # Writes nothing: the observation after it is unchanged.
    assert (await _observe(store)).instances == 3
