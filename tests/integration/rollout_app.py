"""The app of the safe-rollout tests, in three "images" chosen by `DUROX_ROLLOUT_IMAGE`:
`old` registers checkout@1.0.0; `good` adds a healthy checkout@2.0.0; `bad` adds a
checkout@2.0.0 that fails every instance. An input `{"wait": true}` makes an instance wait
for the event "go" first, so a test can keep one running across a rollback."""

from __future__ import annotations

import os
from typing import Any

from durox import ActivityRegistry, OrchestrationContext, OrchestrationRegistry
from durox.worker import App

IMAGE = os.environ.get("DUROX_ROLLOUT_IMAGE", "old")


async def _maybe_wait(ctx: OrchestrationContext, order: Any) -> None:
    if isinstance(order, dict) and order.get("wait"):
        await ctx.wait_for_event("go")


async def checkout_v1(ctx: OrchestrationContext, order: Any) -> str:
    await _maybe_wait(ctx, order)
    return "v1"


async def checkout_v2(ctx: OrchestrationContext, order: Any) -> str:
    await _maybe_wait(ctx, order)
    return "v2"


async def checkout_v2_broken(ctx: OrchestrationContext, order: Any) -> str:
    raise RuntimeError(f"v2 cannot price order {order!r}")


_builder = OrchestrationRegistry.builder().register_versioned("checkout", "1.0.0", checkout_v1)
if IMAGE == "good":
    _builder = _builder.register_versioned("checkout", "2.0.0", checkout_v2)
elif IMAGE == "bad":
    _builder = _builder.register_versioned("checkout", "2.0.0", checkout_v2_broken)

app = App(orchestrations=_builder.build(), activities=ActivityRegistry.builder().build())
