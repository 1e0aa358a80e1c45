"""A real runtime on every store: the same orchestrations give the same results everywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from durox import ActivityRegistry, Client, InstanceNotFoundError, OrchestrationRegistry
from durox.core import events as ev
from durox.providers import Store
from tests.unit.scenario_support import eventually, running


async def double(ctx: Any, x: int) -> int:
    return x * 2


async def explode(ctx: Any, x: Any) -> None:
    raise ValueError(f"boom {x}")


ACTS = ActivityRegistry.builder().register("Double", double).register("Explode", explode).build()


async def chain(ctx: Any, x: int) -> int:
    for _ in range(3):
        x = await ctx.schedule_activity("Double", x)
    return x


async def fan_out(ctx: Any, n: int) -> list[int]:
    return list(await ctx.join([ctx.schedule_activity("Double", i) for i in range(n)]))


async def sleeper(ctx: Any, ms: int) -> str:
    await ctx.schedule_timer(timedelta(milliseconds=ms))
    return "woke"


async def waiter(ctx: Any, _: Any) -> Any:
    return await ctx.wait_for_event("go")


async def racer(ctx: Any, _: Any) -> list[Any]:
    idx, value = await ctx.select(
        ctx.wait_for_event("go"), ctx.schedule_timer(timedelta(seconds=30))
    )
    return [idx, value]


async def parent(ctx: Any, n: int) -> list[int]:
    return list(
        await ctx.join([ctx.schedule_sub_orchestration("Chain", i) for i in range(1, n + 1)])
    )


async def counter(ctx: Any, n: int) -> int:
    if n >= 4:
        return n
    await ctx.schedule_activity("Double", n)
    return await ctx.continue_as_new(n + 1)  # type: ignore[no-any-return]


async def boss(ctx: Any, _: Any) -> Any:
    return await ctx.schedule_sub_orchestration("Waiter", None, instance_id="boss::child")


async def _known(live: Store, instance_id: str) -> bool:
    return await live.get_instance(instance_id) is not None or await live.start_pending(instance_id)


async def failing(ctx: Any, _: Any) -> None:
    await ctx.schedule_activity("Explode", 1)


async def catching(ctx: Any, _: Any) -> str:
    try:
        await ctx.schedule_activity("Explode", 2)
    except Exception as exc:
        return f"caught {type(exc).__name__}"
    return "not reached"


ORCHS = (
    OrchestrationRegistry.builder()
    .register("Chain", chain)
    .register("FanOut", fan_out)
    .register("Sleeper", sleeper)
    .register("Waiter", waiter)
    .register("Racer", racer)
    .register("Parent", parent)
    .register("Counter", counter)
    .register("Failing", failing)
    .register("Catching", catching)
    .register("Boss", boss)
    .build()
)


async def _run(live: Store, name: str, arg: Any, instance_id: str = "i1") -> Any:
    client = Client(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration(instance_id, name, arg)
        return await client.wait_for_orchestration(instance_id, 20)


async def test_a_chain_of_activities(live: Store) -> None:
    status = await _run(live, "Chain", 3)
    assert status.status == "Completed" and status.output == 24


async def test_a_fan_out_and_join(live: Store) -> None:
    status = await _run(live, "FanOut", 10)
    assert status.output == [2 * i for i in range(10)]


async def test_a_durable_timer(live: Store) -> None:
    status = await _run(live, "Sleeper", 150)
    assert status.output == "woke"
    history = await live.read_history("i1", 1)
    assert [type(e) for e in history if isinstance(e, ev.TimerFired | ev.TimerCreated)] == [
        ev.TimerCreated,
        ev.TimerFired,
    ]


async def test_an_external_event(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Waiter")
        await eventually(
            lambda: _status_is(client, "i1", "Running"), what="the orchestration to start"
        )
        await client.raise_event("i1", "go", {"payload": 42})
        status = await client.wait_for_orchestration("i1", 20)
    assert status.output == {"payload": 42}


async def test_an_event_wins_a_race_against_a_timer(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Racer")
        await client.raise_event("i1", "go", "fast")
        status = await client.wait_for_orchestration("i1", 20)
    assert status.output == [0, "fast"]


async def test_an_event_for_an_instance_that_does_not_exist_fails_at_the_call_site(
    live: Store,
) -> None:
    client = Client(live)
    with pytest.raises(InstanceNotFoundError, match="'nobody'"):
        await client.raise_event("nobody", "go", 1)
    depths = await client.get_queue_depths()
    assert (depths.orchestrator_ready, depths.orchestrator_delayed) == (0, 0)  # nothing sent


async def test_an_event_raised_before_the_first_turn_is_kept_and_delivered(live: Store) -> None:
    client = Client(live)
    await client.start_orchestration("early", "Waiter")
    assert (await client.get_orchestration_status("early")).status == "Pending"
    await client.raise_event("early", "go", "raised before any worker ran")
    async with running(live, ACTS, ORCHS):
        status = await client.wait_for_orchestration("early", 20)
    assert status.output == "raised before any worker ran"


async def test_a_sub_orchestration_receives_an_event_raised_before_its_first_turn(
    live: Store,
) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS, orchestration_concurrency=1):
        await client.start_orchestration("boss", "Boss")
        # The child's start is queued by the parent's turn; raise as soon as it is.
        await eventually(lambda: _known(live, "boss::child"), what="the child's start")
        await client.raise_event("boss::child", "go", "to the child")
        status = await client.wait_for_orchestration("boss", 20)
    assert status.output == "to the child"


async def test_sub_orchestrations(live: Store) -> None:
    status = await _run(live, "Parent", 3)
    assert status.output == [8, 16, 24]
    children = [i for i in await live.list_instances() if i.parent_instance_id == "i1"]
    assert len(children) == 3 and all(c.status == "Completed" for c in children)


async def test_continue_as_new_runs_executions_in_turn(live: Store) -> None:
    status = await _run(live, "Counter", 0)
    assert status.output == 4
    executions = await live.list_executions("i1")
    assert [x.execution_id for x in executions] == [1, 2, 3, 4, 5]
    assert [x.status for x in executions] == ["ContinuedAsNew"] * 4 + ["Completed"]
    assert await Client(live).prune_executions("i1", keep_last=1) == 4
    assert [x.execution_id for x in await live.list_executions("i1")] == [5]


async def test_a_failed_activity_fails_the_orchestration(live: Store) -> None:
    status = await _run(live, "Failing", None)
    assert status.status == "Failed"
    assert status.error is not None and "boom 1" in status.error.message


async def test_a_failed_activity_can_be_caught(live: Store) -> None:
    status = await _run(live, "Catching", None)
    assert status.output == "caught ActivityFailedError"


async def test_cancelling_a_waiting_instance(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("i1", "Waiter")
        await eventually(lambda: _status_is(client, "i1", "Running"), what="a running instance")
        await client.cancel_instance("i1", "no longer needed")
        status = await client.wait_for_orchestration("i1", 20)
    assert status.status == "Cancelled"


async def test_cancelling_an_instance_that_does_not_exist_fails_at_the_call_site(
    live: Store,
) -> None:
    client = Client(live)
    with pytest.raises(InstanceNotFoundError, match=r"'nobody'.*to cancel"):
        await client.cancel_instance("nobody", "typo")
    depths = await client.get_queue_depths()
    assert (depths.orchestrator_ready, depths.orchestrator_delayed) == (0, 0)  # nothing sent


async def test_a_cancel_before_the_first_turn_is_kept_and_cancels_it(live: Store) -> None:
    client = Client(live)
    await client.start_orchestration("early", "Waiter")
    await client.cancel_instance("early", "changed my mind")
    async with running(live, ACTS, ORCHS):
        status = await client.wait_for_orchestration("early", 20)
    assert status.status == "Cancelled"


async def test_an_unknown_orchestration_is_poisoned_after_max_attempts(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS, max_attempts=3):
        await client.start_orchestration("i1", "NoSuchThing")
        status = await client.wait_for_orchestration("i1", 20)
    assert status.status == "Failed"
    assert status.error is not None and status.error.kind == "poison"
    assert "gave up after 3 attempts" in status.error.message


async def test_many_instances_at_once_each_complete_once(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS, orchestration_concurrency=4, activity_concurrency=8):
        await asyncio.gather(*(client.start_orchestration(f"i{n}", "Chain", n) for n in range(30)))
        done = await asyncio.gather(
            *(client.wait_for_orchestration(f"i{n}", 30) for n in range(30))
        )
    assert [s.output for s in done] == [n * 8 for n in range(30)]
    for n in range(30):
        history = await live.read_history(f"i{n}", 1)
        assert sum(isinstance(e, ev.ActivityCompleted) for e in history) == 3
        assert sum(isinstance(e, ev.OrchestrationCompleted) for e in history) == 1


async def test_finished_instances_can_be_deleted_through_the_client(live: Store) -> None:
    client = Client(live)
    async with running(live, ACTS, ORCHS):
        await client.start_orchestration("p", "Parent", 2)
        await client.wait_for_orchestration("p", 20)
    assert await client.delete_instance("p") == 3
    assert (await client.get_orchestration_status("p")).status == "NotFound"
    assert (await client.get_system_metrics()).instances == 0
    depths = await client.get_queue_depths()
    assert depths.orchestrator_ready == depths.worker_ready == 0


async def _status_is(client: Client, instance_id: str, status: str) -> bool:
    return (await client.get_orchestration_status(instance_id)).status == status


async def test_a_queued_start_is_pending_until_a_worker_takes_it(live: Store) -> None:
    client = Client(live)
    assert (await client.get_orchestration_status("later")).status == "NotFound"
    await client.start_orchestration("later", "Parent", 1)
    assert (await client.get_orchestration_status("later")).status == "Pending"
    async with running(live, ACTS, ORCHS):
        done = await client.wait_for_orchestration("later", 20)
    assert done.status == "Completed"
