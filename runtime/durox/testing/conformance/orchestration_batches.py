"""Batched orchestration operations: per instance the same rules as one at a time, in one call."""

from __future__ import annotations

from durox.core import events as ev
from durox.core.versions import SemverRange
from durox.errors import LockLostError
from durox.providers import TurnCommit
from durox.testing.support import Harness, S, first_turn, next_turn


async def test_a_batch_fetch_locks_instances_in_queue_order(store: Harness) -> None:
    for i in ("a", "b", "c", "d"):
        await store.start(i)
    got = await store.p.fetch_orchestration_items(30_000, None, 3)
    assert [item.instance_id for item in got] == ["a", "b", "c"]
    assert len({item.lock_token for item in got}) == 3
    assert all(isinstance(item.messages[0], ev.StartOrchestration) for item in got)
    assert all(item.attempt_count == 1 and item.execution_id == 0 for item in got)
    rest = await store.p.fetch_orchestration_items(30_000, None, 10)
    assert [item.instance_id for item in rest] == ["d"]
    assert await store.p.fetch_orchestration_items(30_000, None, 10) == []
    assert await store.p.fetch_orchestration_items(30_000, None, 0) == []


async def test_a_batch_fetch_skips_locked_instances_and_reads_each_history(store: Harness) -> None:
    await store.begin("a")
    await store.begin("b", activities=1)
    await store.event("a")
    await store.event("b")
    await store.start("c")
    held = await store.must_fetch()
    assert held.instance_id == "a"
    got = await store.p.fetch_orchestration_items(30_000, None, 5)
    assert [item.instance_id for item in got] == ["b", "c"]
    b = got[0]
    assert b.status == S.RUNNING and b.history_length == 2 and len(b.history) == 2
    assert [type(m).__name__ for m in b.messages] == ["ExternalEvent"]


async def test_each_instance_of_a_batch_carries_only_its_own_state(store: Harness) -> None:
    # A running instance, then a new one, then another running one, messages interleaved: each
    # comes once, with all of its messages, and a new instance carries nothing of the
    # instance before it in the batch.
    await store.begin("b", name="Billing", activities=1)
    await store.begin("d", name="Dunning")
    await store.event("b", "first")
    await store.start("c", "Fresh", "in")
    await store.event("d", "first")
    await store.event("b", "second")
    got = await store.p.fetch_orchestration_items(30_000, None, 5)
    assert [item.instance_id for item in got] == ["b", "c", "d"]
    b, c, d = got
    assert [m.name for m in b.messages if isinstance(m, ev.ExternalEvent)] == ["first", "second"]
    assert (b.status, b.history_length, b.execution_id) == (S.RUNNING, 2, 1)
    assert (c.status, c.history_length, c.execution_id, c.history) == (None, 0, 0, [])
    assert c.orchestration_name is None and c.orchestration_version is None
    assert c.messages == [ev.StartOrchestration("c", "Fresh", None, "in")]
    assert (d.status, d.orchestration_name, d.execution_id) == (S.RUNNING, "Dunning", 1)


async def test_a_batch_fetch_keeps_to_the_replay_range(store: Harness) -> None:
    await store.begin("old", engine="0.1.0")
    await store.begin("new", engine="0.3.0")
    await store.event("old")
    await store.event("new")
    got = await store.p.fetch_orchestration_items(30_000, SemverRange("0.2.0", "0.9.0"), 5)
    assert [item.instance_id for item in got] == ["new"]


async def test_a_batch_ack_isolates_each_turn(store: Harness) -> None:
    for i in ("a", "b", "c"):
        await store.start(i)
    short = await store.p.fetch_orchestration_items(1000, None, 1)
    rest = await store.p.fetch_orchestration_items(60_000, None, 2)
    store.clock.advance(1001)  # the first lease lapses
    a, (b, c) = short[0], rest
    outcomes = await store.p.ack_orchestration_items(
        [
            (a.lock_token, first_turn("a")),
            (b.lock_token, first_turn("b", activities=1)),
            ("no-such-token", TurnCommit(execution_id=1)),
            (c.lock_token, first_turn("c", status=S.COMPLETED)),
        ]
    )
    assert isinstance(outcomes[0], LockLostError) and isinstance(outcomes[2], LockLostError)
    assert outcomes[1] is None and outcomes[3] is None
    assert await store.p.get_instance("a") is None
    assert await store.p.read_history("a", 1) == []
    info_b, info_c = await store.p.get_instance("b"), await store.p.get_instance("c")
    assert info_b is not None and info_b.status == S.RUNNING
    assert info_c is not None and info_c.status == S.COMPLETED
    wi = await store.p.fetch_work_item(1000)
    assert wi is not None and wi.work.instance_id == "b"
    again = await store.must_fetch()  # the lapsed one comes back, counted twice
    assert again.instance_id == "a" and again.attempt_count == 2


async def test_a_batch_ack_applies_later_turns_and_releases_locks(store: Harness) -> None:
    await store.begin("a")
    await store.begin("b")
    await store.event("a")
    await store.event("b")
    items = await store.p.fetch_orchestration_items(30_000, None, 2)
    now = store.clock.now
    outcomes = await store.p.ack_orchestration_items(
        [
            (item.lock_token, next_turn(item, ev.EventRaised(item.history_length + 1, now, "e", 0)))
            for item in items
        ]
    )
    assert outcomes == [None, None]
    for i in ("a", "b"):
        assert len(await store.p.read_history(i, 1)) == 2
    await store.event("a")
    assert (await store.must_fetch()).instance_id == "a"  # unlocked by the ack
    assert await store.p.ack_orchestration_items([]) == []
