"""The spec's health monitor, in three versions under one stable NAME.

This module is the versioning pattern in its smallest honest form: the NAME never changes, each
version is its own function with a version suffix and a version prefix in its traces, and all
versions stay registered until no execution runs them. The demo and the replay corpus both use
it, so what the README shows is what the tests check.
"""

from __future__ import annotations

import random
from datetime import timedelta

from pydantic import BaseModel

from durox import (
    ActivityContext,
    ActivityRegistry,
    OrchestrationContext,
    OrchestrationRegistry,
    RetryPolicy,
)

HEALTH_MONITOR = "durox-demo::orchestration::health-monitor"
HEALTH_CHECK = "durox-demo::activity::health-check"


class MonitorState(BaseModel):
    """The monitor's input, carried across `continue_as_new`."""

    target: str
    cycle: int = 0
    max_cycles: int = 6
    interval_ms: int = 2000
    healthy_checks: int = 0


class CheckResult(BaseModel):
    target: str
    healthy: bool
    latency_ms: int


async def health_check(ctx: ActivityContext, target: str) -> CheckResult:
    """A stand-in probe: activities may do anything non-deterministic; orchestrations may not."""
    return CheckResult(target=target, healthy=True, latency_ms=random.randint(2, 40))


async def health_monitor(ctx: OrchestrationContext, state: MonitorState) -> MonitorState | str:
    """Version 1.0.0: the original monitor."""
    ctx.trace_info("Starting health check cycle")
    result = CheckResult.model_validate(await ctx.schedule_activity(HEALTH_CHECK, state.target))
    state.cycle += 1
    state.healthy_checks += int(result.healthy)
    if state.cycle >= state.max_cycles:
        return f"{state.healthy_checks}/{state.cycle} checks healthy"
    await ctx.schedule_timer(timedelta(milliseconds=state.interval_ms))
    return await ctx.continue_as_new(state.model_dump())


async def health_monitor_1_0_1(
    ctx: OrchestrationContext, state: MonitorState
) -> MonitorState | str:
    """Version 1.0.1: hot fix, the probe is retried with a timeout; traces carry the version."""
    ctx.trace_info(f"[v1.0.1] Starting health check cycle {state.cycle + 1} for {state.target}")
    raw = await ctx.schedule_activity_with_retry(
        HEALTH_CHECK, state.target, RetryPolicy(3).with_timeout(timedelta(seconds=30))
    )
    result = CheckResult.model_validate(raw)
    state.cycle += 1
    state.healthy_checks += int(result.healthy)
    if state.cycle >= state.max_cycles:
        ctx.trace_info("[v1.0.1] Monitoring finished")
        return f"{state.healthy_checks}/{state.cycle} checks healthy"
    await ctx.schedule_timer(timedelta(milliseconds=state.interval_ms))
    ctx.trace_info(f"[v1.0.1] Completed cycle {state.cycle}, continuing as new")
    return await ctx.continue_as_new(state.model_dump())


async def health_monitor_1_0_2(
    ctx: OrchestrationContext, state: MonitorState
) -> MonitorState | str:
    """Version 1.0.2: a longer interval, and the latest result shown as custom status."""
    ctx.trace_info(f"[v1.0.2] Starting health check cycle {state.cycle + 1} for {state.target}")
    raw = await ctx.schedule_activity_with_retry(
        HEALTH_CHECK, state.target, RetryPolicy(3).with_timeout(timedelta(seconds=30))
    )
    result = CheckResult.model_validate(raw)
    state.cycle += 1
    state.healthy_checks += int(result.healthy)
    ctx.set_custom_status({"cycle": state.cycle, "healthy": result.healthy})
    if state.cycle >= state.max_cycles:
        ctx.trace_info("[v1.0.2] Monitoring finished")
        return f"{state.healthy_checks}/{state.cycle} checks healthy"
    await ctx.schedule_timer(timedelta(milliseconds=int(state.interval_ms * 1.5)))
    ctx.trace_info(f"[v1.0.2] Completed cycle {state.cycle}, continuing as new")
    return await ctx.continue_as_new(state.model_dump())


def activities() -> ActivityRegistry:
    return ActivityRegistry.builder().register_typed(HEALTH_CHECK, health_check).build()


def orchestrations(*, with_1_0_2: bool) -> OrchestrationRegistry:
    """The registry before (1.0.0, 1.0.1) or after (plus 1.0.2) the demo's upgrade."""
    builder = (
        OrchestrationRegistry.builder()
        .register_typed(HEALTH_MONITOR, health_monitor)
        .register_versioned_typed(HEALTH_MONITOR, "1.0.1", health_monitor_1_0_1)
    )
    if with_1_0_2:
        builder = builder.register_versioned_typed(HEALTH_MONITOR, "1.0.2", health_monitor_1_0_2)
    return builder.build()
