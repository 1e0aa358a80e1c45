"""Session affinity through rolling upgrades, and worker capability records, on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from durox import (
    ActivityContext,
    ActivityFailedError,
    ActivityRegistry,
    Client,
    OrchestrationContext,
    OrchestrationRegistry,
    VersionPolicy,
)
from durox.providers import Store
from tests.conformance.support import FakeClock, raw_value
from tests.unit.scenario_support import eventually, running

Ctx = OrchestrationContext
SESSIONS: dict[str, Any] = dict(
    heartbeat_interval=timedelta(milliseconds=50),
    session_lock_timeout=timedelta(milliseconds=400),
    session_idle_timeout=timedelta(milliseconds=200),
)


@pytest.fixture
def store(live: Store) -> tuple[Store, Client]:
    return live, Client(live)


async def where(ctx: ActivityContext, _: Any) -> str:
    assert ctx.session_id is not None
    return ctx.worker_id


def acts(*extra: str) -> ActivityRegistry:
    b = ActivityRegistry.builder().register("Where", where, session=True)
    for name in extra:
        b = b.register(name, where, session=True)
    return b.build()


async def on_session(ctx: Ctx, n: int) -> list[str]:
    return [await ctx.schedule_activity_on_session("Where", i, "s1") for i in range(n)]


async def across_can(ctx: Ctx, state: list[Any]) -> Any:
    state.append(await ctx.schedule_activity_on_session("Where", None, "s-can"))
    if len(state) >= 4:
        return state
    return await ctx.continue_as_new(state)


async def gated(ctx: Ctx, _: Any) -> Any:
    first = await ctx.schedule_activity_on_session("Where", None, "s-up")
    await ctx.wait_for_event("deployed")
    try:
        second = await ctx.schedule_activity_on_session("NewHandler", None, "s-up")
    except ActivityFailedError as exc:
        return ["failed", first, exc.details.kind, exc.details.message]
    return ["ok", first, second]


REG = (
    OrchestrationRegistry.builder()
    .register("OnSession", on_session)
    .register("AcrossCan", across_can)
    .register("Gated", gated)
    .build()
)


async def test_every_activity_of_a_session_runs_on_its_owner(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with (
        running(provider, acts(), REG, worker_node_id="w1", **SESSIONS),
        running(provider, acts(), REG, worker_node_id="w2", **SESSIONS),
    ):
        await client.start_orchestration("o", "OnSession", 12)
        status = await client.wait_for_orchestration("o", 10)
    assert len(set(status.output)) == 1 and len(status.output) == 12


async def test_sessions_survive_continue_as_new(store: tuple[Store, Client]) -> None:
    provider, client = store
    async with (
        running(provider, acts(), REG, worker_node_id="w1", **SESSIONS),
        running(provider, acts(), REG, worker_node_id="w2", **SESSIONS),
    ):
        await client.start_orchestration("c", "AcrossCan", [])
        status = await client.wait_for_orchestration("c", 10)
    assert len(status.output) == 4 and len(set(status.output)) == 1
    assert len(await client.list_executions("c")) == 4


async def test_a_runtime_capped_at_zero_sessions_takes_no_session_work(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with (
        running(
            provider, acts(), REG, worker_node_id="none", max_sessions_per_runtime=0, **SESSIONS
        ),
        running(provider, acts(), REG, worker_node_id="some", **SESSIONS),
    ):
        await client.start_orchestration("z", "OnSession", 6)
        status = await client.wait_for_orchestration("z", 10)
    assert set(status.output) == {"some"}


async def test_a_dead_owner_unpins_and_a_restarted_pod_reclaims(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(provider, acts(), REG, worker_node_id="pod-a", **SESSIONS):
        await client.start_orchestration("first", "OnSession", 1)
        assert (await client.wait_for_orchestration("first", 10)).output == ["pod-a"]
    # pod-a restarts under the same name while its session lock is alive: it gets it back.
    async with (
        running(provider, acts(), REG, worker_node_id="pod-a", **SESSIONS),
        running(provider, acts(), REG, worker_node_id="pod-b", **SESSIONS),
    ):
        await client.start_orchestration("again", "OnSession", 3)
        assert set((await client.wait_for_orchestration("again", 10)).output) == {"pod-a"}
    # pod-a is gone for good: once its lock lapses, another worker owns the session.
    await asyncio.sleep(0.5)
    async with running(provider, acts(), REG, worker_node_id="pod-b", **SESSIONS):
        await client.start_orchestration("moved", "OnSession", 2)
        assert set((await client.wait_for_orchestration("moved", 10)).output) == {"pod-b"}


async def test_an_idle_session_unpins_while_its_owner_lives(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(provider, acts(), REG, worker_node_id="w1", **SESSIONS):
        await client.start_orchestration("one", "OnSession", 1)
        await client.wait_for_orchestration("one", 10)
        await asyncio.sleep(0.8)  # idle timeout passes; the lock is no longer renewed
        owners = await raw_value(provider, "SELECT count(*) FROM sessions")
    assert owners == 0  # the lapsed row was cleaned up


async def test_missing_session_handler_on_the_owner_poisons_without_failing_over(
    store: tuple[Store, Client],
) -> None:
    """The hazard the operator's sequenced rollout prevents."""
    provider, client = store
    async with running(provider, acts(), REG, worker_node_id="old", max_attempts=3, **SESSIONS):
        await client.start_orchestration("g", "Gated")
        await eventually(lambda: _session_owned(provider, "s-up"), what="session owned")
        # A new worker with the new handler joins; the owner does not have it.
        async with running(
            provider, acts("NewHandler"), REG, worker_node_id="new", max_attempts=3, **SESSIONS
        ):
            await client.raise_event("g", "deployed")
            status = await client.wait_for_orchestration("g", 10)
    verdict, first, kind, message = status.output
    assert (verdict, first, kind) == ("failed", "old", "poison")
    assert "no activity 'NewHandler' is registered on this worker" in message


async def test_same_upgrade_succeeds_when_the_handler_is_on_every_worker_first(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with (
        running(provider, acts("NewHandler"), REG, worker_node_id="old", **SESSIONS),
        running(provider, acts("NewHandler"), REG, worker_node_id="new", **SESSIONS),
    ):
        await client.start_orchestration("g", "Gated")
        workers = await client.list_workers()
        assert all(w.has_session_handler("NewHandler") for w in workers) and len(workers) == 2
        await eventually(lambda: _session_owned(provider, "s-up"), what="session owned")
        await client.raise_event("g", "deployed")
        status = await client.wait_for_orchestration("g", 10)
    verdict, first, second = status.output
    assert verdict == "ok" and first == second


async def _session_owned(provider: Store, session: str) -> bool:
    owner = await raw_value(
        provider, f"SELECT owner_id FROM sessions WHERE session_id = '{session}'"
    )
    return owner is not None


# ---- capability records ---------------------------------------------------------------------


async def test_capability_records_say_what_each_live_worker_can_do(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    reg = (
        OrchestrationRegistry.builder()
        .register("Gated", gated)
        .register_versioned("Gated", "1.1.0", gated)
        .set_policy("Gated", VersionPolicy.exact("1.0.0"))
        .build()
    )
    async with (
        running(
            provider, acts("NewHandler"), reg, worker_node_id="pod-1", pool="blue", **SESSIONS
        ) as rt,
        running(provider, acts(), REG, worker_node_id="pod-2", pool="green", **SESSIONS),
    ):
        blue = await client.list_workers("blue")
        assert [w.worker_id for w in blue] == ["pod-1"]
        (w,) = blue
        assert w.node_id == "pod-1" and w.pool == "blue"
        assert w.orchestrations == {
            "Gated": {"versions": ["1.0.0", "1.1.0"], "policy": "exact 1.0.0"}
        }
        assert w.activities == ["NewHandler", "Where"]
        assert w.session_activities == ["NewHandler", "Where"]
        assert w.has_version("Gated", "1.1.0") and not w.has_version("Gated", "2.0.0")
        assert (w.replay_min, w.config_revision) == ("0.0.0", "0")
        assert len(await client.list_workers()) == 2

        rt.reconfigure(policies={"Gated": VersionPolicy.latest()}, revision="r7")

        async def applied() -> bool:
            (again,) = await client.list_workers("blue")
            return again.config_revision == "r7" and "latest" in str(again.orchestrations)

        await eventually(applied, what="revision r7 reported")
    assert await client.list_workers() == []  # clean shutdown removes the rows


async def test_an_observation_shows_real_workers_and_what_their_instances_run(
    store: tuple[Store, Client],
) -> None:
    """`Client.observe_store` over a real runtime: its own capability record, and the instances
    it started, counted by the version and engine pin the runtime wrote."""
    provider, client = store
    reg = (
        OrchestrationRegistry.builder()
        .register("Gated", gated)
        .register_versioned("Gated", "1.1.0", gated)
        .set_policy("Gated", VersionPolicy.exact("1.0.0"))
        .build()
    )
    async with running(
        provider, acts("NewHandler"), reg, worker_node_id="pod-1", pool="blue", **SESSIONS
    ) as rt:
        await client.start_orchestration("g1", "Gated")
        await client.start_orchestration_versioned("g2", "Gated", "1.1.0")

        async def both_waiting() -> bool:
            seen = await client.observe_store("blue")
            return seen.instances == 2 and len(seen.live_workers) == 1

        await eventually(both_waiting, what="two instances running, one live worker")
        seen = await client.observe_store("blue", stale_after=timedelta(seconds=5))
        assert [(v.key, v.instances) for v in seen.versions] == [
            ("Gated@1.0.0", 1),
            ("Gated@1.1.0", 1),
        ]
        assert seen.by_pin == {rt.engine.version: 2}
        (w,) = seen.workers
        assert w.live and w.heartbeat_age < timedelta(seconds=5)
        assert (w.record.node_id, w.record.config_revision) == ("pod-1", "0")
        assert w.record.has_version("Gated", "1.1.0")
        assert w.record.session_activities == ["NewHandler", "Where"]
        assert (await client.observe_store("green")).workers == ()
        await client.raise_event("g1", "deployed")
        await client.wait_for_orchestration("g1", 10)
        seen = await client.observe_store()
        assert [(v.key, v.instances) for v in seen.versions] == [("Gated@1.1.0", 1)]
        assert seen.failures == ()


async def test_stale_capability_records_are_ignored_and_removed(
    open_store: Callable[[FakeClock | None], Awaitable[Store]],
) -> None:
    clock = FakeClock()
    provider = await open_store(clock)
    client = Client(provider)
    async with running(
        provider,
        acts(),
        REG,
        worker_node_id="ghost",
        heartbeat_interval=timedelta(hours=1),
        session_lock_timeout=timedelta(hours=3),
    ):
        assert [w.worker_id for w in await client.list_workers()] == ["ghost"]
        clock.advance(31_000)  # no heartbeat for 31 s
        assert await client.list_workers() == []
        assert await raw_value(provider, "SELECT count(*) FROM workers") == 0


async def test_reconfigure_is_reported_at_once_not_at_the_next_heartbeat(
    store: tuple[Store, Client],
) -> None:
    provider, client = store
    async with running(
        provider,
        acts(),
        REG,
        worker_node_id="slow-beat",
        heartbeat_interval=timedelta(hours=1),
        session_lock_timeout=timedelta(hours=3),
    ) as rt:
        rt.reconfigure(revision="r9")

        async def reported() -> bool:
            (w,) = await client.list_workers()
            return w.config_revision == "r9"

        await eventually(reported, timeout=2, what="revision r9 reported without waiting an hour")
