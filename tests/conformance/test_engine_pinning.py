"""Engine pinning, replay-range routing, draining, and the replay-compatibility check, on a
real runtime over every store.

Later engine releases are simulated with `EngineIdentity`, which is exactly what a later
release would declare: its version and the semantic breaks it knows about.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from durox import (
    ActivityRegistry,
    Client,
    OrchestrationContext,
    OrchestrationRegistry,
    RuntimeObserver,
    SemverRange,
)
from durox.core.compat import EngineIdentity, SemanticBreak
from durox.providers import Store
from tests.conformance.support import raw_sql
from tests.unit.scenario_support import eventually, running

OLD = EngineIdentity("0.1.0", ())
NEWER = EngineIdentity("0.2.0", ())
BROKEN = EngineIdentity("0.2.0", (SemanticBreak("0.2.0", "timers fire in a new order"),))
WIDE = SemverRange("0.0.0", "99.0.0")


@pytest.fixture
def store(live: Store) -> tuple[Store, Client]:
    return live, Client(live)


class Turns(RuntimeObserver):
    def __init__(self) -> None:
        self.count = 0

    def on_turn(self, name: str, version: str, status: str, started: bool, seconds: float) -> None:
        self.count += 1


calls: Counter[str] = Counter()


async def waiter(ctx: OrchestrationContext, tag: str) -> Any:
    calls[f"{tag}:{ctx.is_replaying}"] += 1
    return await ctx.wait_for_event("go")


async def looper(ctx: OrchestrationContext, n: int) -> Any:
    await ctx.schedule_timer(timedelta(milliseconds=20))
    if n >= 6:
        return n
    return await ctx.continue_as_new(n + 1)


REG = OrchestrationRegistry.builder().register("Wait", waiter).register("Loop", looper).build()
ACTS = ActivityRegistry.builder().build()


async def test_executions_are_pinned_and_continue_as_new_repins(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(provider, ACTS, REG, engine=OLD):
        await client.start_orchestration("loop", "Loop", 0)
        await eventually(lambda: _executions(client, "loop", 2), what="second execution")
    assert (await client.get_instance_info("loop")).pinned_engine_version == "0.1.0"
    async with running(provider, ACTS, REG, engine=NEWER):
        await client.wait_for_orchestration("loop", 10)
    pins = [e.engine_version for e in await client.list_executions("loop")]
    assert pins[0] == "0.1.0" and pins[-1] == "0.2.0"
    assert (await client.get_instance_info("loop")).pinned_engine_version == "0.2.0"


async def _executions(client: Client, instance: str, n: int) -> bool:
    return len(await client.list_executions(instance)) >= n


async def test_two_ranges_on_one_store_route_each_item_to_its_runtime(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    old_turns, new_turns = Turns(), Turns()
    # Pin one instance to each engine.
    async with running(provider, ACTS, REG, engine=OLD):
        await client.start_orchestration("old", "Wait", "old")
        await eventually(lambda: client.list_executions("old"), what="old pinned")
    async with running(provider, ACTS, REG, engine=NEWER):
        await client.start_orchestration("new", "Wait", "new")
        await eventually(lambda: client.list_executions("new"), what="new pinned")
    only_new = SemverRange("0.2.0", "0.2.0")
    async with (
        running(provider, ACTS, REG, engine=OLD, observer=old_turns),
        running(
            provider,
            ACTS,
            REG,
            engine=NEWER,
            observer=new_turns,
            supported_replay_versions=only_new,
        ),
    ):
        await client.raise_event("old", "go", 1)
        await client.raise_event("new", "go", 2)
        assert (await client.wait_for_orchestration("old", 10)).output == 1
        assert (await client.wait_for_orchestration("new", 10)).output == 2
    assert (old_turns.count, new_turns.count) == (1, 1)


async def test_stuck_newer_item_is_invisible_then_drained_then_filtering_returns(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(provider, ACTS, REG, engine=NEWER):
        await client.start_orchestration("stuck", "Wait", "s")
        await client.start_orchestration("fine", "Wait", "f")
        await eventually(lambda: _executions(client, "fine", 1), what="pinned to 0.2.0")
        await eventually(lambda: _executions(client, "stuck", 1), what="pinned to 0.2.0")
    # The newer engine wrote an event kind this engine has never heard of.
    await raw_sql(
        provider,
        "INSERT INTO history (instance_id, execution_id, event_id, data) VALUES ('stuck', 1, 3,"
        """ '{"k":"EventFromTheFuture","event_id":3,"ts":0}')""",
    )
    await client.raise_event("stuck", "go", 1)
    default = SemverRange("0.0.0", "0.1.0")

    async with running(provider, ACTS, REG, engine=OLD, max_attempts=3) as rt:
        await asyncio.sleep(0.3)  # plenty of polls: the item must not be touched
        report = await client.get_drain_report(default)
        (entry,) = report.entries
        assert (entry.orchestration_name, entry.pinned_engine_version) == ("Wait", "0.2.0")
        assert (entry.running_instances, entry.queued_messages) == (2, 1)
        assert entry.max_attempt_count == 0 and not report.complete

        rt.reconfigure(supported_replay_versions=WIDE)
        stuck = await client.wait_for_orchestration("stuck", 10)
        assert stuck.status == "Failed" and stuck.error is not None
        assert stuck.error.kind == "poison"
        assert "EventFromTheFuture" in stuck.error.message
        after = await client.get_drain_report(default)
        assert after.poisoned == 1 and after.entries[0].queued_messages == 0

        # "fine" reads well but is pinned newer than this engine: refused, never replayed.
        rt.reconfigure(reset_replay_range=True)
        assert rt.replay_range == default
        await client.raise_event("fine", "go", 2)
        await asyncio.sleep(0.3)
        assert (await client.get_orchestration_status("fine")).status == "Running"
    async with running(provider, ACTS, REG, engine=NEWER):
        assert (await client.wait_for_orchestration("fine", 10)).output == 2


async def test_replay_is_refused_across_a_semantic_break_even_in_drain_mode(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    calls.clear()
    async with running(provider, ACTS, REG, engine=OLD):
        await client.start_orchestration("v1", "Wait", "old-pin")
        await eventually(lambda: _executions(client, "v1", 1), what="pinned 0.1.0")
    async with running(provider, ACTS, REG, engine=BROKEN):
        await client.start_orchestration("v2", "Wait", "new-pin")
        await eventually(lambda: _executions(client, "v2", 1), what="pinned 0.2.0")
    await client.raise_event("v1", "go", "a")
    await client.raise_event("v2", "go", "b")
    replays_before = calls["old-pin:True"]
    async with running(provider, ACTS, REG, engine=BROKEN, supported_replay_versions=WIDE):
        assert (await client.wait_for_orchestration("v2", 10)).output == "b"
        await asyncio.sleep(0.3)
        assert (await client.get_orchestration_status("v1")).status == "Running"
    assert calls["old-pin:True"] == replays_before  # never replayed by the broken engine
    async with running(provider, ACTS, REG, engine=OLD):
        assert (await client.wait_for_orchestration("v1", 10)).output == "a"


async def test_newer_pin_is_poisoned_with_a_reason_when_no_compatible_worker_comes(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(provider, ACTS, REG, engine=NEWER):
        await client.start_orchestration("orphan", "Wait", "x")
        await eventually(lambda: _executions(client, "orphan", 1), what="pinned 0.2.0")
    await client.raise_event("orphan", "go", 1)
    async with running(
        provider, ACTS, REG, engine=OLD, supported_replay_versions=WIDE, max_attempts=3
    ):
        status = await client.wait_for_orchestration("orphan", 10)
    assert status.error is not None and status.error.kind == "poison"
    assert (
        "replay refused" in status.error.message
        and "newer than this engine" in status.error.message
    )


async def test_rolling_deployment_of_three_runtimes(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    upgraded = EngineIdentity("0.1.1", ())
    ids = [f"roll-{i}" for i in range(6)]
    async with (
        running(provider, ACTS, REG, engine=OLD, worker_node_id="a") as a,
        running(provider, ACTS, REG, engine=OLD, worker_node_id="b") as b,
        running(provider, ACTS, REG, engine=OLD, worker_node_id="c") as c,
    ):
        for i in ids:
            await client.start_orchestration(i, "Loop", -30)  # ~37 executions: outlives the roll
        fleet = [a, b, c]
        for k, name in enumerate("abc"):
            await asyncio.sleep(0.1)
            await fleet[k].shutdown(timeout=5)
            fleet[k] = await _start(provider, upgraded, name)
        try:
            results = [await client.wait_for_orchestration(i, 20) for i in ids]
        finally:
            for rt in fleet:
                await rt.shutdown(timeout=5)
    assert all(r.status == "Completed" and r.output == 6 for r in results)
    for i in ids:
        pins = [e.engine_version for e in await client.list_executions(i)]
        assert pins[0] == "0.1.0" and pins[-1] == "0.1.1", pins
        # Once an execution ran on the new engine, no later one went back to the old.
        first_new = pins.index("0.1.1")
        assert set(pins[first_new:]) == {"0.1.1"}, pins


async def _start(provider: Store, engine: EngineIdentity, node: str) -> Any:
    from durox import Runtime
    from tests.unit.scenario_support import options

    return await Runtime.start(provider, ACTS, REG, options(worker_node_id=node), engine=engine)
