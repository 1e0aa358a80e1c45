"""Image ramp-v1 of the safe-rollout test's application: PAY@1.0.0, which prices an order with
one activity and completes. Every instance ends, so the test can account for each of them."""

from __future__ import annotations

from typing import Any

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

PAY = "e2e::orchestration::pay"


async def price(ctx: ActivityContext, order: Any) -> str:
    return f"priced {order!r}"


async def pay_1_0_0(ctx: OrchestrationContext, order: Any) -> str:
    await ctx.schedule_activity("Price", order)
    return "v1"


app = App(
    orchestrations=OrchestrationRegistry.builder().register_typed(PAY, pay_1_0_0).build(),
    activities=ActivityRegistry.builder().register_typed("Price", price).build(),
)
