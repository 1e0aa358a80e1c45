"""The spec's behaviour, end to end, on a real runtime over the embedded SQLite store."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durox import (
    ActivityContext,
    ActivityFailedError,
    ActivityRegistry,
    Client,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    OrchestrationContext,
    OrchestrationRegistry,
    VersionPolicy,
)
from durox.core import events as ev
from durox.providers import SqliteProvider
from tests.unit.scenario_support import eventually, execution_count, running

Ctx = OrchestrationContext
NAME = "tests::orchestration::monitor"


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[SqliteProvider]:
    p = await SqliteProvider.open(tmp_path / "store.db")
    yield p
    await p.close()


@pytest.fixture
def client(provider: SqliteProvider) -> Client:
    return Client(provider)


async def echo(ctx: ActivityContext, value: Any) -> Any:
    return value


ACTS = ActivityRegistry.builder().register("Echo", echo).build()


def monitor(tag: str, interval_ms: int = 150) -> Any:
    async def fn(ctx: Ctx, cycle: int) -> Any:
        ctx.trace_info(f"[{tag}] cycle {cycle}")
        await ctx.schedule_activity("Echo", cycle)
        if cycle >= 3:
            return f"{tag} done"
        await ctx.schedule_timer(timedelta(milliseconds=interval_ms))
        return await ctx.continue_as_new(cycle + 1)

    return fn


def registry(*versions: str, policy: VersionPolicy | None = None, interval_ms: int = 150) -> Any:
    b = OrchestrationRegistry.builder()
    for v in versions:
        b = b.register_versioned(NAME, v, monitor(f"v{v}", interval_ms))
    if policy is not None:
        b = b.set_policy(NAME, policy)
    return b.build()


async def versions_of(client: Client, instance: str) -> list[str]:
    return [e.orchestration_version for e in await client.list_executions(instance)]


# ---- the upgrade timeline ---------------------------------------------------------------------


async def test_restart_keeps_the_running_execution_and_upgrades_at_continue_as_new(
    provider: SqliteProvider, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="durox.orchestration")
    async with running(provider, ACTS, registry("1.0.0", "1.0.1", interval_ms=600)):
        await client.start_orchestration("m", NAME, 0)

        async def timer_pending() -> bool:
            h = await client.read_execution_history("m", 1)
            return any(isinstance(e, ev.TimerCreated) for e in h)

        await eventually(timer_pending, what="the first cycle's timer")
    # Deploy: the new worker also has 1.0.2; the execution in flight is untouched.
    info = await client.get_instance_info("m")
    assert (info.orchestration_version, info.current_execution_id) == ("1.0.1", 1)
    async with running(provider, ACTS, registry("1.0.0", "1.0.1", "1.0.2")):
        status = await client.wait_for_orchestration("m", timeout=15)
    assert (status.status, status.output) == ("Completed", "v1.0.2 done")
    assert await versions_of(client, "m") == ["1.0.1", "1.0.2", "1.0.2", "1.0.2"]
    info = await client.get_instance_info("m")
    assert info.orchestration_version == "1.0.2" and info.current_execution_id == 4
    traces = [r.getMessage() for r in caplog.records if r.name == "durox.orchestration"]
    assert traces == [
        "[v1.0.1] cycle 0",
        "[v1.0.2] cycle 1",
        "[v1.0.2] cycle 2",
        "[v1.0.2] cycle 3",
    ]
    rec = next(r for r in caplog.records if r.name == "durox.orchestration")
    assert (rec.instance_id, rec.orchestration_version) == ("m", "1.0.1")  # type: ignore[attr-defined]


async def test_latest_is_the_default_policy(provider: SqliteProvider, client: Client) -> None:
    async with running(provider, ACTS, registry("1.0.0", "1.2.0", "1.10.0")):
        await client.start_orchestration("a", NAME, 3)
        status = await client.wait_for_orchestration("a", 10)
    assert status.output == "v1.10.0 done"  # semver order, not string order


async def test_exact_policy_pins_new_starts_and_continue_as_new(
    provider: SqliteProvider, client: Client
) -> None:
    reg = registry("1.0.0", "1.0.1", policy=VersionPolicy.exact("1.0.0"), interval_ms=10)
    async with running(provider, ACTS, reg):
        await client.start_orchestration("p", NAME, 1)
        status = await client.wait_for_orchestration("p", 10)
    assert status.output == "v1.0.0 done"
    assert await versions_of(client, "p") == ["1.0.0", "1.0.0", "1.0.0"]


async def test_explicit_start_version_beats_the_policy(
    provider: SqliteProvider, client: Client
) -> None:
    async with running(provider, ACTS, registry("1.0.0", "1.0.1", interval_ms=10)):
        await client.start_orchestration_versioned("x", NAME, "1.0.0", 3)
        status = await client.wait_for_orchestration("x", 10)
    assert status.output == "v1.0.0 done"


async def test_continue_as_new_versioned_overrides_latest(
    provider: SqliteProvider, client: Client
) -> None:
    async def stay(ctx: Ctx, n: int) -> Any:
        if n >= 2:
            return f"{ctx.orchestration_version} at {n}"
        return await ctx.continue_as_new_versioned("1.0.0", n + 1)

    reg = (
        OrchestrationRegistry.builder()
        .register(NAME, stay)
        .register_versioned(NAME, "1.0.1", stay)
        .build()
    )
    async with running(provider, ACTS, reg):
        await client.start_orchestration("s", NAME, 0)
        status = await client.wait_for_orchestration("s", 10)
    assert status.output == "1.0.0 at 2"
    assert await versions_of(client, "s") == ["1.0.1", "1.0.0", "1.0.0"]


async def test_hot_fix_takes_effect_at_the_next_cycle(
    provider: SqliteProvider, client: Client
) -> None:
    attempts: dict[str, int] = {}

    async def probe(ctx: ActivityContext, target: str) -> str:
        attempts[target] = attempts.get(target, 0) + 1
        if attempts[target] % 2 == 1:
            raise TimeoutError("probe timed out")
        return "healthy"

    async def v1_0_0(ctx: Ctx, cycle: int) -> Any:
        try:
            result = await ctx.schedule_activity("Probe", f"c{cycle}")
        except ActivityFailedError:
            result = "unhealthy"
        if cycle >= 2:
            return result
        await ctx.schedule_timer(timedelta(milliseconds=400))
        return await ctx.continue_as_new(cycle + 1)

    async def v1_0_1(ctx: Ctx, cycle: int) -> Any:
        from durox import RetryPolicy
        from durox.core.retry import BackoffStrategy

        result = await ctx.schedule_activity_with_retry(
            "Probe", f"c{cycle}", RetryPolicy(3).with_backoff(BackoffStrategy.none())
        )
        if cycle >= 2:
            return result
        await ctx.schedule_timer(timedelta(milliseconds=10))
        return await ctx.continue_as_new(cycle + 1)

    acts = ActivityRegistry.builder().register("Probe", probe).build()
    old = OrchestrationRegistry.builder().register(NAME, v1_0_0).build()
    new = (
        OrchestrationRegistry.builder()
        .register(NAME, v1_0_0)
        .register_versioned(NAME, "1.0.1", v1_0_1)
        .build()
    )
    async with running(provider, acts, old):
        await client.start_orchestration("h", NAME, 0)
        await eventually(lambda: attempts.get("c0"), what="first probe")
    async with running(provider, acts, new):
        status = await client.wait_for_orchestration("h", 10)
    assert status.output == "healthy"
    assert await versions_of(client, "h") == ["1.0.0", "1.0.1", "1.0.1"]


async def test_state_migration_between_major_versions(
    provider: SqliteProvider, client: Client
) -> None:
    async def v1(ctx: Ctx, state: Any) -> Any:
        await ctx.schedule_timer(timedelta(milliseconds=300))
        return await ctx.continue_as_new({"v1": {"count": state["count"] + 1}})

    async def v2(ctx: Ctx, state: Any) -> Any:
        if "v1" in state:
            ctx.trace_info("[v2.0.0] Migrating from v1 state format")
            state = {"version": 2, "counter": state["v1"]["count"], "history": []}
        return state

    reg1 = OrchestrationRegistry.builder().register(NAME, v1).build()
    reg2 = (
        OrchestrationRegistry.builder()
        .register(NAME, v1)
        .register_versioned(NAME, "2.0.0", v2)
        .build()
    )
    async with running(provider, ACTS, reg1):
        await client.start_orchestration("mig", NAME, {"count": 41})
        await eventually(lambda: execution_count(client, "mig"), what="first execution")
    async with running(provider, ACTS, reg2):
        status = await client.wait_for_orchestration("mig", 10)
    assert status.output == {"version": 2, "counter": 42, "history": []}


async def test_instance_info_shows_the_version_and_the_record(
    provider: SqliteProvider, client: Client
) -> None:
    async def child(ctx: Ctx, x: int) -> int:
        return x * 2

    async def parent(ctx: Ctx, x: int) -> int:
        ctx.set_custom_status("working")
        out: int = await ctx.schedule_sub_orchestration("Child", x, instance_id="kid")
        return out

    reg = (
        OrchestrationRegistry.builder()
        .register_versioned("Parent", "3.1.4", parent)
        .register("Child", child)
        .build()
    )
    async with running(provider, ACTS, reg):
        await client.start_orchestration("dad", "Parent", 21)
        status = await client.wait_for_orchestration("dad", 10)
    assert status.output == 42
    info = await client.get_instance_info("dad")
    assert (info.orchestration_name, info.orchestration_version, info.status) == (
        "Parent",
        "3.1.4",
        "Completed",
    )
    assert info.output == 42 and info.custom_status == "working"
    assert info.created_at <= info.updated_at
    kid = await client.get_instance_info("kid")
    assert kid.parent_instance_id == "dad" and kid.output == 42
    listed = await client.list_instances(name="Parent", version="3.1.4", status="Completed")
    assert [i.instance_id for i in listed] == ["dad"]
    with pytest.raises(InstanceNotFoundError):
        await client.get_instance_info("nobody")
    assert (await client.get_orchestration_status("nobody")).status == "NotFound"


# ---- events, cancellation, sub-orchestrations -------------------------------------------------


async def test_external_events_and_cancellation_cascade(
    provider: SqliteProvider, client: Client
) -> None:
    async def waiter(ctx: Ctx, _: Any) -> Any:
        return await ctx.wait_for_event("approve")

    async def boss(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_sub_orchestration("Waiter", None, instance_id="worker-1")

    reg = OrchestrationRegistry.builder().register("Waiter", waiter).register("Boss", boss).build()
    async with running(provider, ACTS, reg):
        await client.start_orchestration("w", "Waiter")
        await client.raise_event("w", "approve", {"by": "alice"})
        assert (await client.wait_for_orchestration("w", 10)).output == {"by": "alice"}
        await client.start_orchestration("b", "Boss")
        await eventually(lambda: client.get_orchestration_status("worker-1"), what="child started")
        await eventually(lambda: _status_is(client, "worker-1", "Running"), what="child running")
        await client.cancel_instance("b", "no longer needed")
        boss_status = await client.wait_for_orchestration("b", 10)
        kid_status = await client.wait_for_orchestration("worker-1", 10)
    assert boss_status.status == "Cancelled" and boss_status.error is not None
    assert boss_status.error.message == "no longer needed"
    assert kid_status.status == "Cancelled"


async def _status_is(client: Client, instance: str, status: str) -> bool:
    return (await client.get_orchestration_status(instance)).status == status


async def test_starting_an_existing_instance_is_refused(
    provider: SqliteProvider, client: Client
) -> None:
    await client.start_orchestration("dup", NAME, 0)
    with pytest.raises(InstanceAlreadyExistsError):
        await client.start_orchestration("dup", NAME, 0)


async def test_wait_for_orchestration_times_out(provider: SqliteProvider, client: Client) -> None:
    await client.start_orchestration("idle", NAME, 0)
    assert (await client.get_orchestration_status("idle")).status == "Pending"
    with pytest.raises(TimeoutError, match="still Pending"):
        await client.wait_for_orchestration("idle", 0.05)


async def test_plain_activities_run_in_a_thread(provider: SqliteProvider, client: Client) -> None:
    import threading

    def blocking(ctx: ActivityContext, _: Any) -> str:
        time.sleep(0.01)
        return threading.current_thread().name

    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("Blocking")

    acts = ActivityRegistry.builder().register("Blocking", blocking).build()
    reg = OrchestrationRegistry.builder().register("F", fn).build()
    async with running(provider, acts, reg):
        await client.start_orchestration("t", "F")
        status = await client.wait_for_orchestration("t", 10)
    assert status.output != threading.main_thread().name


# ---- bad input ---------------------------------------------------------------------------------


async def test_changed_code_fails_only_that_instance_with_nondeterminism(
    provider: SqliteProvider, client: Client
) -> None:
    async def before(ctx: Ctx, _: Any) -> Any:
        await ctx.schedule_activity("Echo", 1)
        return await ctx.wait_for_event("go")

    async def after(ctx: Ctx, _: Any) -> Any:
        await ctx.schedule_activity("Renamed", 1)
        return await ctx.wait_for_event("go")

    async with running(
        provider, ACTS, OrchestrationRegistry.builder().register("D", before).build()
    ):
        await client.start_orchestration("nd", "D")

        async def scheduled() -> bool:
            h = await client.read_execution_history("nd", 1)
            return any(isinstance(e, ev.ActivityCompleted) for e in h)

        await eventually(scheduled, what="activity done")
    reg = (
        OrchestrationRegistry.builder()
        .register("D", after)
        .register(NAME, monitor("ok", 10))
        .build()
    )
    async with running(provider, ACTS, reg):
        await client.raise_event("nd", "go")
        await client.start_orchestration("healthy", NAME, 3)
        bad = await client.wait_for_orchestration("nd", 10)
        good = await client.wait_for_orchestration("healthy", 10)
    assert bad.status == "Failed" and bad.error is not None
    assert bad.error.kind == "nondeterminism"
    assert "'Renamed'" in bad.error.message and "'Echo'" in bad.error.message
    assert good.status == "Completed"


async def test_input_that_fails_validation_fails_the_instance(
    provider: SqliteProvider, client: Client
) -> None:
    async def typed(ctx: Ctx, count: int) -> int:
        return count + 1

    reg = OrchestrationRegistry.builder().register_typed("Typed", typed).build()
    async with running(provider, ACTS, reg):
        await client.start_orchestration("ok", "Typed", "41")
        await client.start_orchestration("bad", "Typed", "forty-one")
        ok = await client.wait_for_orchestration("ok", 10)
        bad = await client.wait_for_orchestration("bad", 10)
    assert ok.output == 42
    assert bad.status == "Failed" and bad.error is not None
    assert bad.error.kind == "validation" and "failed validation" in bad.error.message


@pytest.mark.parametrize("version", [None, "9.9.9"])
async def test_unregistered_orchestration_is_retried_then_poisoned(
    provider: SqliteProvider, client: Client, version: str | None
) -> None:
    async with running(provider, ACTS, registry("1.0.0"), max_attempts=3):
        if version is None:
            await client.start_orchestration("ghost", "NoSuchOrchestration", 1)
        else:
            await client.start_orchestration_versioned("ghost", NAME, version, 1)
        status = await client.wait_for_orchestration("ghost", 10)
    assert status.status == "Failed" and status.error is not None
    assert status.error.kind == "poison"
    assert "is registered on this worker" in status.error.message
    assert "after 3 attempts" in status.error.message


async def test_unregistered_activity_is_poisoned_and_reported_to_the_orchestration(
    provider: SqliteProvider, client: Client
) -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        try:
            await ctx.schedule_activity("Missing")
        except ActivityFailedError as exc:
            return [exc.details.kind, exc.details.message]
        return "no"

    reg = OrchestrationRegistry.builder().register("F", fn).build()
    async with running(provider, ACTS, reg, max_attempts=3):
        await client.start_orchestration("f", "F")
        status = await client.wait_for_orchestration("f", 10)
    kind, message = status.output
    assert kind == "poison" and "'Missing'" in message


async def test_a_corrupt_history_row_fails_only_its_instance(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corrupt.db"
    provider = await SqliteProvider.open(path)
    client = Client(provider)

    async def waits(ctx: Ctx, _: Any) -> Any:
        return await ctx.wait_for_event("go")

    reg2 = (
        OrchestrationRegistry.builder()
        .register("W", waits)
        .register(NAME, monitor("ok", 10))
        .build()
    )
    try:
        async with running(provider, ACTS, reg2):
            await client.start_orchestration("victim", "W")
            await eventually(lambda: execution_count(client, "victim"), what="victim started")
        raw = sqlite3.connect(path)
        raw.execute(
            "UPDATE history SET data = '{\"k\":\"FutureEvent\"}' WHERE instance_id = 'victim'"
            " AND event_id = 2"
        )
        raw.commit()
        raw.close()
        async with running(provider, ACTS, reg2, max_attempts=2):
            await client.raise_event("victim", "go", 1)
            await client.start_orchestration("bystander", NAME, 2)
            victim = await client.wait_for_orchestration("victim", 10)
            bystander = await client.wait_for_orchestration("bystander", 10)
        assert bystander.status == "Completed"
        assert victim.status == "Failed" and victim.error is not None
        assert victim.error.kind == "poison" and "FutureEvent" in victim.error.message
        # The unreadable row is still there, untouched; the failure was appended after it.
        rows = (
            sqlite3.connect(path)
            .execute(
                "SELECT event_id, data FROM history WHERE instance_id='victim' ORDER BY event_id"
            )
            .fetchall()
        )
        assert rows[1] == (2, '{"k":"FutureEvent"}')
        assert '"OrchestrationFailed"' in rows[-1][1] and rows[-1][0] == len(rows)
    finally:
        await provider.close()


# ---- shutdown and at-least-once ----------------------------------------------------------------


async def test_shutdown_returns_promptly_when_idle(provider: SqliteProvider) -> None:
    async with running(
        provider, ACTS, registry("1.0.0"), poll_interval=timedelta(seconds=30)
    ) as rt:
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await rt.shutdown(timeout=30)
        assert time.monotonic() - began < 5


@pytest.mark.parametrize("batches", [False, True])
async def test_shutdown_releases_every_running_activity_without_counting_attempts(
    provider: SqliteProvider, client: Client, batches: bool
) -> None:
    provider.batches_in_one_round_trip = batches  # True: the runtime's batching path
    first_round: list[int] = []
    attempts: list[int] = []
    all_started = asyncio.Event()

    async def slow(ctx: ActivityContext, n: int) -> int:
        attempts.append(ctx.attempt)
        if len(first_round) < 4:
            first_round.append(n)
            if len(first_round) == 4:
                all_started.set()
            await asyncio.sleep(60)
        return n

    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.join([ctx.schedule_activity("Slow", n) for n in range(4)])

    acts = ActivityRegistry.builder().register("Slow", slow).build()
    reg = OrchestrationRegistry.builder().register("F", fn).build()
    async with running(provider, acts, reg, activity_concurrency=4) as rt:
        await client.start_orchestration("batch", "F")
        await asyncio.wait_for(all_started.wait(), 10)
        began = time.monotonic()
        await rt.shutdown(timeout=0.2)
        assert time.monotonic() - began < 5
    async with running(provider, acts, reg):
        status = await client.wait_for_orchestration("batch", 10)
    assert status.output == [0, 1, 2, 3]
    assert attempts == [1] * 8  # all four released uncounted, and each ran again


async def test_shutdown_releases_a_long_activity_which_another_worker_reruns(
    provider: SqliteProvider, client: Client
) -> None:
    started = asyncio.Event()
    runs: list[int] = []

    async def slow(ctx: ActivityContext, _: Any) -> str:
        runs.append(ctx.attempt)
        if len(runs) == 1:
            started.set()
            await asyncio.sleep(60)
        return "finished"

    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("Slow")

    acts = ActivityRegistry.builder().register("Slow", slow).build()
    reg = OrchestrationRegistry.builder().register("F", fn).build()
    async with running(provider, acts, reg) as rt:
        await client.start_orchestration("long", "F")
        await asyncio.wait_for(started.wait(), 10)
        began = time.monotonic()
        await rt.shutdown(timeout=0.2)
        assert time.monotonic() - began < 5
    async with running(provider, acts, reg):
        status = await client.wait_for_orchestration("long", 10)
    assert status.output == "finished"
    assert runs == [1, 1]  # released without counting an attempt; ran again at least once
