"""The instance cache on every store that proves turn state: used when current, never otherwise.

Each test drives one worker's `TurnRunner` turn by turn (no dispatch loops), answers the
activities by hand, and does to the store between turns what the cache must notice: another
worker's turn, a lapsed lease, a poison, a `continue_as_new`, a new registry, an instance
deleted and started again. A kept state is used only when the store proves it current
(`hits`); otherwise the turn replays the stored history (`misses`), and the results stay right.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

from durox import OrchestrationRegistry, RuntimeObserver
from durox.core import events as ev
from durox.core.codec import encoded_size
from durox.core.compat import CURRENT_ENGINE
from durox.core.versions import SemverRange
from durox.providers import Provider
from durox.runtime._cache import (
    EVICTED_BY_BYTES,
    KEPT_OVERHEAD_BYTES,
    NOT_KEPT_OVERSIZED,
    Kept,
)
from durox.runtime._orchestrations import TurnRunner
from durox.testing import FakeClock, Harness, StoreFactory
from tests.unit.scenario_support import options

LOCK = 30_000


async def steps(ctx: Any, spec: dict[str, Any]) -> list[Any]:
    out = []
    for i in range(spec["n"]):
        out.append(await ctx.schedule_activity("Step", [spec["tag"], i]))
    return out


async def cycle(ctx: Any, n: int) -> Any:
    await ctx.schedule_activity("Step", n)
    if n < 2:
        return await ctx.continue_as_new(n + 1)
    return n


REG = OrchestrationRegistry.builder().register("Steps", steps).register("Cycle", cycle).build()


def runner(store: Harness, worker: str, registry: OrchestrationRegistry = REG, **kw: Any) -> Any:
    return runner_on(store.p, worker, registry, **kw)


def runner_on(
    provider: Provider, worker: str, registry: OrchestrationRegistry = REG, **kw: Any
) -> Any:
    kw.setdefault("verify_cached_turns", False)
    opts = options(instance_cache_size=kw.pop("size", 100), **kw)
    r = TurnRunner(
        provider,
        opts,
        CURRENT_ENGINE,
        RuntimeObserver(),
        worker,
        registry,
        SemverRange("0.0.0", CURRENT_ENGINE.version),
        batch=False,
    )
    assert provider.proves_turn_state, f"{provider!r} does not prove turn state"
    return r


async def turn(r: TurnRunner) -> Any:
    (item,) = await r.fetch(1)
    await r.run(item)
    return item


async def answer(store: Harness) -> int:
    """Complete every queued activity with its input; returns how many."""
    n = 0
    while (w := await store.p.fetch_work_item(LOCK)) is not None:
        a = w.work
        await store.p.ack_work_item(
            w.lock_token, ev.ActivityResult(a.instance_id, a.execution_id, a.event_id, a.input)
        )
        n += 1
    return n


async def output(store: Harness, instance_id: str) -> Any:
    info = await store.p.get_instance(instance_id)
    assert info is not None
    return info.status, info.output


async def test_a_worker_resumes_what_it_kept_without_reading_the_history(store: Harness) -> None:
    w1 = runner(store, "w1")
    await store.start("i", "Steps", {"n": 4, "tag": "a"})
    await turn(w1)
    for _ in range(4):
        assert await answer(store) == 1
        item = await turn(w1)
        assert item.history_skipped and item.history == []
    assert (w1.cache.hits, w1.cache.misses) == (4, 1)
    assert await output(store, "i") == ("Completed", [["a", i] for i in range(4)])
    assert len(w1.cache) == 0  # a finished execution is not kept


async def test_another_workers_turn_makes_the_kept_state_stale(store: Harness) -> None:
    w1, w2 = runner(store, "w1"), runner(store, "w2")
    await store.start("i", "Steps", {"n": 3, "tag": "a"})
    await turn(w1)
    await answer(store)
    await turn(w2)  # w1's kept state is one turn behind now
    await answer(store)
    item = await turn(w1)
    assert not item.history_skipped
    assert (w1.cache.hits, w1.cache.misses) == (0, 2)
    await answer(store)
    await turn(w1)  # and w1's fresh state is current again
    assert w1.cache.hits == 1
    assert await output(store, "i") == ("Completed", [["a", i] for i in range(3)])


async def test_a_turn_whose_lease_lapsed_keeps_nothing(store: Harness) -> None:
    w1, w2 = runner(store, "w1"), runner(store, "w2")
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    (late,) = await w1.fetch(1)
    store.clock.advance(LOCK + 1)  # w1's lease lapses before its turn is acknowledged
    (taken,) = await w2.fetch(1)
    await w1.run(late)  # resumed, then LockLostError: discarded, state and all
    assert len(w1.cache) == 0 and w1.cache.hits == 1
    await w2.run(taken)
    await answer(store)
    item = await turn(w1)
    assert not item.history_skipped and (w1.cache.hits, w1.cache.misses) == (1, 2)
    assert await output(store, "i") == ("Completed", [["a", 0], ["a", 1]])


async def test_a_poisoned_instance_is_replayed_from_the_store(store: Harness) -> None:
    w1 = runner(store, "w1", max_attempts=1)
    await store.start("i", "Steps", {"n": 3, "tag": "a"})
    await turn(w1)
    await answer(store)
    (item,) = await w1.fetch(1)
    await store.p.abandon_orchestration_item(item.lock_token)  # a crash: one attempt spent
    (item,) = await w1.fetch(1)
    assert item.history_skipped and item.attempt_count == 2
    await w1.run(item)  # poisoned, with the history read after all; nothing kept
    assert len(w1.cache) == 0 and w1.cache.hits == 0
    status, _ = await output(store, "i")
    assert status == "Failed"
    history = await store.p.read_history("i", 1)
    assert type(history[-1]).__name__ == "OrchestrationFailed"
    assert [type(e).__name__ for e in history[:2]] == ["OrchestrationStarted", "ActivityScheduled"]


async def test_continue_as_new_starts_the_next_execution_afresh(store: Harness) -> None:
    w1 = runner(store, "w1")
    await store.start("c", "Cycle", 0)
    await turn(w1)
    for _ in range(5):
        await answer(store)
        await turn(w1)
    assert await output(store, "c") == ("Completed", 2)
    # Each execution's first turn is cold (nothing is kept past a continue_as_new) and its
    # second resumes the state the first kept.
    assert (w1.cache.misses, w1.cache.hits) == (3, 3) and len(w1.cache) == 0


async def test_a_new_registry_replays_from_the_store(store: Harness) -> None:
    w1 = runner(store, "w1")
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    w1.registry = REG.with_policies({})  # what Runtime.reconfigure does with new policies
    await turn(w1)
    assert w1.cache.hits == 0 and w1.cache.misses == 2  # replayed, from a history read anew
    await answer(store)
    await turn(w1)
    assert w1.cache.hits == 1
    assert await output(store, "i") == ("Completed", [["a", 0], ["a", 1]])


async def _recreated(store: Harness, w1: TurnRunner) -> None:
    """`i` ran one turn on w1 (kept), was deleted, and started again with another input, so
    its history has the same execution and length as the kept state, but other events."""
    await store.start("i", "Steps", {"n": 2, "tag": "old"})
    await turn(w1)
    await store.p.delete_instance("i", force=True)
    await answer(store)  # the old activity: its result finds no instance
    await store.start("i", "Steps", {"n": 1, "tag": "new"})
    w2 = runner(store, "w2")
    await turn(w2)
    await answer(store)
    await turn(w1)


async def test_a_deleted_and_recreated_instance_is_never_resumed(store: Harness) -> None:
    w1 = runner(store, "w1")
    await _recreated(store, w1)
    assert w1.cache.hits == 0
    assert await output(store, "i") == ("Completed", [["new", 0]])


async def test_negative_control_without_the_token_a_recreated_instance_is_wrong(
    store: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harm the turn token prevents: trusting execution id and length alone resumes the
    deleted instance's state and completes the new one with the old one's decisions."""

    def trusting(self: Kept, item: Any, registry: Any) -> bool:
        return (item.execution_id, item.history_length) == (self.execution_id, self.history_length)

    monkeypatch.setattr(Kept, "current_for", trusting)
    w1 = runner(store, "w1")
    await _recreated(store, w1)
    assert w1.cache.hits == 1
    assert await output(store, "i") != ("Completed", [["new", 0]])


async def test_an_evicted_state_hands_its_skipped_history_back(store: Harness) -> None:
    w1 = runner(store, "w1", size=1)
    await store.start("a", "Steps", {"n": 2, "tag": "a"})
    await store.start("b", "Steps", {"n": 2, "tag": "b"})
    await turn(w1)
    await turn(w1)
    assert len(w1.cache) == 1  # the least recently used one was evicted
    await answer(store)
    for _ in range(2):
        await turn(w1)
    await answer(store)
    while items := await w1.fetch(1):
        await w1.run(items[0])
        await answer(store)
    assert await output(store, "a") == ("Completed", [["a", 0], ["a", 1]])
    assert await output(store, "b") == ("Completed", [["b", 0], ["b", 1]])


async def test_a_history_skipped_for_a_state_gone_meanwhile_is_read_again(store: Harness) -> None:
    w1 = runner(store, "w1")
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    (item,) = await w1.fetch(1)
    assert item.history_skipped
    w1.forget()  # gone between the fetch and the turn (evicted, or the registry changed)
    await w1.run(item)  # reads the history under its lock and replays it
    assert w1.cache.hits == 0 and len(w1.cache) == 1
    await answer(store)
    item = await turn(w1)
    assert item.history_skipped and w1.cache.hits == 1
    assert await output(store, "i") == ("Completed", [["a", 0], ["a", 1]])


# ---- the byte budget: an estimate that grows with the history, and eviction past it ----------


async def test_a_kept_states_estimate_grows_with_its_history(store: Harness) -> None:
    w1 = runner(store, "w1")
    tag = "x" * 1000  # every step's input and result carry it
    await store.start("i", "Steps", {"n": 4, "tag": tag})
    await turn(w1)
    sizes = [w1.cache.bytes]
    for _ in range(3):
        await answer(store)
        await turn(w1)
        sizes.append(w1.cache.bytes)
    assert (w1.cache.hits, w1.cache.misses, len(w1.cache)) == (3, 1, 1)
    # Each kept turn added what it appended (a result and the next schedule: two tags) ...
    assert all(later - earlier > 2 * len(tag) for earlier, later in pairwise(sizes))
    # ... so the estimate is still the overhead plus the stored history, give or take a comma
    # a turn, though no kept turn read that history.
    stored = encoded_size(await store.p.read_history("i", 1))
    assert abs(sizes[-1] - (KEPT_OVERHEAD_BYTES + stored)) <= 4


async def test_a_tiny_byte_budget_falls_back_to_replay_and_decides_the_same(
    store: Harness,
) -> None:
    budget = KEPT_OVERHEAD_BYTES + 2048  # about one small instance; none after a few steps
    w1 = runner(store, "w1", verify_cached_turns=True, instance_cache_max_bytes=budget)
    tags = {iid: iid * 150 for iid in "abc"}
    for iid, tag in tags.items():
        await store.start(iid, "Steps", {"n": 5, "tag": tag})
    while items := await w1.fetch(1):
        await w1.run(items[0])
        assert w1.cache.bytes <= budget
        await answer(store)
    for iid, tag in tags.items():
        assert await output(store, iid) == ("Completed", [[tag, i] for i in range(5)])
    assert not w1.divergences  # every kept turn decided what a cold replay decided
    assert w1.cache.hits > 0  # some turns did run on kept states ...
    assert w1.cache.evictions[EVICTED_BY_BYTES] > 0  # ... others were evicted for room ...
    assert w1.cache.evictions[NOT_KEPT_OVERSIZED] > 0  # ... or outgrew the budget: replayed


FLIP = {"first": "Step"}


async def fickle(ctx: Any, _: Any) -> Any:
    """Not deterministic: what it schedules first depends on a global the test changes."""
    await ctx.schedule_activity(FLIP["first"], 1)
    return await ctx.schedule_activity("Step", 2)


async def test_verify_mode_catches_a_kept_turn_that_a_cold_replay_would_decide_otherwise(
    store: Harness,
) -> None:
    registry = OrchestrationRegistry.builder().register("Fickle", fickle).build()
    w1 = runner(store, "w1", registry, verify_cached_turns=True)
    await store.start("f", "Fickle")
    await turn(w1)
    await answer(store)
    FLIP["first"] = "Other"  # a deploy changed the code under the kept state
    try:
        item = await turn(w1)
    finally:
        FLIP["first"] = "Step"
    assert not item.history_skipped  # verifying reads every history
    assert len(w1.divergences) == 1 and "cold replay" in w1.divergences[0]
    status, _ = await output(store, "f")
    assert status == "Failed"  # the cold decision (nondeterminism) is the one committed
    assert len(w1.cache) == 0


# ---- sticky routing: the next turn prefers the worker that kept the state ------------------


# Two workers need a store two providers share: SQLite in memory hands back the first provider,
# so these run on a SQLite file and on PostgreSQL (parametrizing `store_kind` overrides the
# conftest's three-store matrix).
shared_stores = pytest.mark.parametrize(
    "store_kind", ["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)]
)


async def two_workers(open_store: StoreFactory, **kw: Any) -> tuple[Harness, Any, Any]:
    clock = FakeClock()
    a = await open_store(clock)
    b = await open_store(clock)
    assert a is not b, "two workers need a store two providers can share"
    return Harness(a, clock), runner_on(a, "w1", **kw), runner_on(b, "w2", **kw)


@shared_stores
async def test_the_next_turn_waits_for_the_worker_that_kept_it(open_store: StoreFactory) -> None:
    store, w1, w2 = await two_workers(open_store, sticky_window=timedelta(seconds=2))
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    assert await w2.fetch(1) == []  # kept by w1, whose window is open
    item = await turn(w1)
    assert item.history_skipped and w1.cache.hits == 1


@shared_stores
async def test_after_the_window_any_worker_takes_the_turn(open_store: StoreFactory) -> None:
    store, w1, w2 = await two_workers(open_store, sticky_window=timedelta(seconds=2))
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    assert await w2.fetch(1) == []
    store.clock.advance(2_001)  # w1 is gone, or busy
    item = await turn(w2)
    assert not item.history_skipped and item.instance_id == "i"
    await answer(store)
    item = await turn(w2)  # and the instance is sticky to w2 now
    assert item.history_skipped and w2.cache.hits == 1
    assert await output(store, "i") == ("Completed", [["a", 0], ["a", 1]])


@shared_stores
async def test_a_sticky_instance_does_not_hold_up_other_work(open_store: StoreFactory) -> None:
    store, w1, w2 = await two_workers(open_store, sticky_window=timedelta(seconds=2))
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)  # i's message is first in the queue, and sticky to w1
    await store.start("j", "Steps", {"n": 1, "tag": "b"})
    item = await turn(w2)
    assert item.instance_id == "j"


@shared_stores
async def test_negative_control_without_a_window_another_worker_takes_it_at_once(
    open_store: StoreFactory,
) -> None:
    store, w1, w2 = await two_workers(open_store, sticky_window=timedelta(0))
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    item = await turn(w2)
    assert item.instance_id == "i" and w1.cache.hits == 0


@shared_stores
async def test_a_worker_that_keeps_nothing_is_not_waited_for(open_store: StoreFactory) -> None:
    store, _, w2 = await two_workers(open_store, sticky_window=timedelta(seconds=2))
    w1 = runner_on(store.p, "w1", size=0)  # keeps no state
    assert w1.cache is None
    await store.start("i", "Steps", {"n": 2, "tag": "a"})
    await turn(w1)
    await answer(store)
    item = await turn(w2)
    assert item.instance_id == "i"


@shared_stores
async def test_two_runtimes_share_the_work_and_every_kept_turn_is_right(
    open_store: StoreFactory,
) -> None:
    """Real dispatch loops on two workers, the cache on (verified when the suite verifies),
    sticky routing on: every instance completes exactly as it should."""
    from durox import ActivityRegistry, Client
    from tests.unit.scenario_support import running

    async def step(ctx: Any, x: Any) -> Any:
        return x

    acts = ActivityRegistry.builder().register("Step", step).build()
    a = await open_store(None)
    b = await open_store(None)
    assert a is not b and a.proves_turn_state
    client = Client(a)
    async with (
        # the cache on whatever DUROX_TEST_INSTANCE_CACHE says: it is what this test is about
        running(a, acts, REG, worker_node_id="a", instance_cache_size=1000) as ra,
        running(b, acts, REG, worker_node_id="b", instance_cache_size=1000) as rb,
    ):
        ids = [f"s{i}" for i in range(12)]
        for i in ids:
            await client.start_orchestration(i, "Steps", {"n": 6, "tag": i})
        for i in ids:
            done = await client.wait_for_orchestration(i, timeout=30)
            assert (done.status, done.output) == ("Completed", [[i, k] for k in range(6)])
        caches = [r._turns.cache for r in (ra, rb)]
        assert all(c is not None for c in caches)
        assert sum(c.hits for c in caches if c is not None) > 0
