"""Image ramp-v2 of the safe-rollout test's application: PAY@1.0.0 unchanged, and a bad
PAY@2.0.0 whose `Charge` activity always raises. An activity's exception is not retried, so
every 2.0.0 instance (the gate's too) ends Failed: the deploy a gate and a ramp must catch."""

from __future__ import annotations

from typing import Any

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

PAY = "e2e::orchestration::pay"


async def price(ctx: ActivityContext, order: Any) -> str:
    return f"priced {order!r}"


async def charge(ctx: ActivityContext, order: Any) -> str:
    raise RuntimeError(f"v2 cannot charge order {order!r}: no payment provider configured")


async def pay_1_0_0(ctx: OrchestrationContext, order: Any) -> str:  # unchanged from ramp-v1
    await ctx.schedule_activity("Price", order)
    return "v1"


async def pay_2_0_0(ctx: OrchestrationContext, order: Any) -> str:
    await ctx.schedule_activity("Price", order)
    await ctx.schedule_activity("Charge", order)
    return "v2"


app = App(
    orchestrations=(
        OrchestrationRegistry.builder()
        .register_typed(PAY, pay_1_0_0)
        .register_versioned_typed(PAY, "2.0.0", pay_2_0_0)
        .build()
    ),
    activities=(
        ActivityRegistry.builder()
        .register_typed("Price", price)
        .register_typed("Charge", charge)
        .build()
    ),
)
