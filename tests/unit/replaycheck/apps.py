"""A small shop app for the replay-check tests, as deployed (`app`) and as five candidate
images: unchanged, with two activities swapped, with a timer added, with another input to an
activity, with a version removed.

`durox replay-check --app tests.unit.replaycheck.apps:changed_order` and so on load them.
ORDER 1.0.0 reserves, charges and waits for "shipped"; ORDER 1.1.0 adds a receipt. REFUND is
untouched in every variant.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from durox import ActivityContext, ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

ORDER = "rc-test::orchestration::order"
REFUND = "rc-test::orchestration::refund"


async def reserve(ctx: ActivityContext, item: str) -> str:
    return f"reserved {item}"


async def charge(ctx: ActivityContext, item: str) -> str:
    return f"charged {item}"


async def receipt(ctx: ActivityContext, item: str) -> str:
    return f"receipt for {item}"


async def order(ctx: OrchestrationContext, item: str) -> list[Any]:
    """1.0.0 as deployed."""
    r = await ctx.schedule_activity("Reserve", item)
    c = await ctx.schedule_activity("Charge", item)
    shipped = await ctx.wait_for_event("shipped")
    return [r, c, shipped]


async def order_1_1_0(ctx: OrchestrationContext, item: str) -> list[Any]:
    """1.1.0: also sends a receipt once shipped."""
    r = await ctx.schedule_activity("Reserve", item)
    c = await ctx.schedule_activity("Charge", item)
    shipped = await ctx.wait_for_event("shipped")
    await ctx.schedule_activity("Receipt", item)
    return [r, c, shipped]


async def order_charge_first(ctx: OrchestrationContext, item: str) -> list[Any]:
    """A broken edit of 1.0.0: the two activities swapped."""
    c = await ctx.schedule_activity("Charge", item)
    r = await ctx.schedule_activity("Reserve", item)
    shipped = await ctx.wait_for_event("shipped")
    return [r, c, shipped]


async def order_with_timer(ctx: OrchestrationContext, item: str) -> list[Any]:
    """A broken edit of 1.0.0: a pause added between reserving and charging."""
    r = await ctx.schedule_activity("Reserve", item)
    await ctx.schedule_timer(timedelta(seconds=1))
    c = await ctx.schedule_activity("Charge", item)
    shipped = await ctx.wait_for_event("shipped")
    return [r, c, shipped]


async def order_reserve_two(ctx: OrchestrationContext, item: str) -> list[Any]:
    """A broken edit of 1.0.0: it reserves two of the item (another input, the same names)."""
    r = await ctx.schedule_activity("Reserve", {"item": item, "quantity": 2})
    c = await ctx.schedule_activity("Charge", item)
    shipped = await ctx.wait_for_event("shipped")
    return [r, c, shipped]


async def refund(ctx: OrchestrationContext, item: str) -> str:
    await ctx.schedule_activity("Charge", f"-{item}")
    return "refunded"


def _app(order_1_0_0: Any | None) -> App:
    builder = OrchestrationRegistry.builder()
    if order_1_0_0 is not None:
        builder = builder.register(ORDER, order_1_0_0)
    orchestrations = (
        builder.register_versioned(ORDER, "1.1.0", order_1_1_0).register(REFUND, refund).build()
    )
    activities = (
        ActivityRegistry.builder()
        .register("Reserve", reserve)
        .register("Charge", charge)
        .register("Receipt", receipt)
        .build()
    )
    return App(orchestrations=orchestrations, activities=activities)


app = _app(order)
"""What runs today."""
unchanged = _app(order)
changed_order = _app(order_charge_first)
added_timer = _app(order_with_timer)
changed_input = _app(order_reserve_two)
removed_version = _app(None)
