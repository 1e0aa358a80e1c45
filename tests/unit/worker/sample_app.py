"""An application for `durox worker --app tests.unit.worker.sample_app:app` in the tests.

Its activity leaves marker files (started, finished; which worker, which attempt) so a test in
another process can tell when work is in flight and where it ran, without timing guesses.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.demo import health_monitor as demo
from durox.worker import App

SLEEPY = "worker-test::orchestration::sleepy"
FAILING = "worker-test::orchestration::failing"
SLEEP = "worker-test::activity::sleep"
BOOM = "worker-test::activity::boom"


def _mark(directory: str, what: str, ctx: ActivityContext) -> None:
    name = f"{what}-{ctx.instance_id}-{ctx.worker_id}-{ctx.attempt}.json"
    (Path(directory) / name).write_text(json.dumps({"worker": ctx.worker_id}))


async def sleep(ctx: ActivityContext, arg: dict[str, Any]) -> str:
    """Sleeps `seconds`; writes `started-...` and `finished-...` markers into `dir`."""
    if arg.get("dir"):
        _mark(arg["dir"], "started", ctx)
    await asyncio.sleep(float(arg["seconds"]))
    if arg.get("dir"):
        _mark(arg["dir"], "finished", ctx)
    return f"slept {arg['seconds']}"


async def boom(ctx: ActivityContext, arg: Any) -> None:
    raise ValueError("boom, as asked")


async def sleepy(ctx: OrchestrationContext, arg: dict[str, Any]) -> Any:
    return await ctx.schedule_activity(SLEEP, arg)


async def failing(ctx: OrchestrationContext, arg: Any) -> Any:
    return await ctx.schedule_activity(BOOM, arg)


def make_app() -> App:
    orchestrations = (
        OrchestrationRegistry.builder()
        .register(SLEEPY, sleepy)
        .register_versioned(SLEEPY, "2.0.0", sleepy)
        .register(FAILING, failing)
        .register_typed(demo.HEALTH_MONITOR, demo.health_monitor)
        .register_versioned_typed(demo.HEALTH_MONITOR, "1.0.1", demo.health_monitor_1_0_1)
        .build()
    )
    activities = (
        ActivityRegistry.builder()
        .register(SLEEP, sleep)
        .register(BOOM, boom)
        .register_typed(demo.HEALTH_CHECK, demo.health_check)
        .build()
    )
    return App(orchestrations=orchestrations, activities=activities)


app = make_app()
namespace_app = SimpleNamespace(orchestrations=app.orchestrations, activities=app.activities)
not_an_app = 42


class Unbuilt:
    """Looks like an app, but its registries were never `.build()`-ed."""

    orchestrations = OrchestrationRegistry.builder()
    activities = ActivityRegistry.builder()


def broken() -> App:
    raise RuntimeError("no registries today")
