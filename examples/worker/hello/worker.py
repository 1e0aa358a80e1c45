"""The quickstart's worker app: one orchestration, hello::greet 1.0.0, and its one activity.

`durox worker --app hello.worker:app` (the operator's pods run exactly that) registers both;
the OrchestrationRegistry in ../30-registry.yaml names the same orchestration and version.
"""

from __future__ import annotations

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

GREET = "hello::greet"


async def greeting(ctx: ActivityContext, name: str) -> str:
    return f"hello, {name}"


async def greet(ctx: OrchestrationContext, name: str) -> str:
    return str(await ctx.schedule_activity("Greeting", name))


app = App(
    orchestrations=OrchestrationRegistry.builder().register_typed(GREET, greet).build(),
    activities=ActivityRegistry.builder().register_typed("Greeting", greeting).build(),
)
