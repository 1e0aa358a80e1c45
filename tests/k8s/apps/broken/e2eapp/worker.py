"""A broken image of the end-to-end application: LOOP@1.0.0 with its two activities swapped.

The version number did not change, so every running 1.0.0 execution that a worker of this image
replays takes another path than its history: the replay check before a rollout must catch it
and hold the image (tests/k8s/test_k8s_real_replay_check.py), and a rollout that skips the
check must break those instances (its negative control).
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import timedelta
from typing import Any

import asyncpg

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

LOOP = "e2e::orchestration::loop"
STEPS = "e2e::orchestration::steps"
IMAGE = "broken"
CYCLE = timedelta(seconds=float(os.environ.get("E2E_CYCLE_SECONDS", "10")))

_pool: asyncpg.Pool | None = None
_lock = asyncio.Lock()


async def record(ctx: ActivityContext, what: dict[str, Any]) -> str:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(os.environ["DUROX_STORE_URL"], min_size=1, max_size=4)
    await _pool.execute(
        "INSERT INTO e2e_activity_runs (instance_id, execution_id, activity, "
        "orchestration_version, session_id, worker_id, image) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        ctx.instance_id, ctx.execution_id, ctx.name, what["version"], ctx.session_id,
        ctx.worker_id or socket.gethostname(), IMAGE,
    )  # fmt: skip
    return IMAGE


async def loop_1_0_0(ctx: OrchestrationContext, cycle: int) -> Any:
    what = {"version": ctx.orchestration_version, "cycle": cycle}
    await ctx.schedule_activity("Note", what)  # was second: the history has Touch first
    await ctx.schedule_activity_on_session("Touch", what, f"s-{ctx.instance_id}")
    await ctx.schedule_timer(CYCLE)
    return await ctx.continue_as_new(cycle + 1)


async def steps(ctx: OrchestrationContext, count: int) -> int:
    """A finite one, for the fault tests: `count` activities a second apart, then done."""
    for step in range(count):
        await ctx.schedule_activity("Note", {"version": ctx.orchestration_version, "cycle": step})
        await ctx.schedule_timer(timedelta(seconds=1))
    return count


app = App(
    orchestrations=(
        OrchestrationRegistry.builder()
        .register_typed(LOOP, loop_1_0_0)
        .register_typed(STEPS, steps)
        .build()
    ),
    activities=(
        ActivityRegistry.builder()
        .register_typed("Touch", record, session=True)
        .register_typed("Note", record)
        .build()
    ),
)
