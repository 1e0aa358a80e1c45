"""A turn resumed on kept state decides exactly what a cold replay of the whole history does.

Each workload is driven to its end twice over the same messages: once cold (every turn replays
the history, as `run_turn` always did) and once on the state each turn kept
(`run_turn_keeping`, then `Suspended.resume`). Every turn's decisions must be equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from durox import ActivityFailedError, RetryPolicy
from durox.core import events as ev
from durox.core.context import OrchestrationContext
from durox.core.replay import Suspended, TurnResult, run_turn_keeping
from durox.core.retry import BackoffStrategy
from durox.runtime._orchestrations import _decisions
from tests.unit.histories import ENGINE, T0, resolver, start, turn

Ctx = OrchestrationContext


def decisions(r: TurnResult) -> tuple[Any, ...]:
    """What verify mode compares (the runtime's own list), and the mismatch besides."""
    return (*_decisions(r), r.mismatch)


def first(fn: Any, messages: list[ev.Message], now: int) -> tuple[Any, Suspended | None]:
    return run_turn_keeping(
        instance_id="i",
        execution_id=0,
        history=[],
        messages=messages,
        resolve=resolver({("O", "1.0.0"): fn}),
        now_ms=now,
        engine_version=ENGINE,
        context_factory=OrchestrationContext,
    )


def answer(w: ev.ActivityWork) -> ev.ActivityResult:
    if w.name == "Fail":
        err = ev.ErrorDetails("application", "KeyError", "k")
        return ev.ActivityResult("i", 1, w.event_id, None, err)
    return ev.ActivityResult("i", 1, w.event_id, w.input)


def drive_both(
    fn: Any,
    input: Any = None,
    extra: Mapping[int, Sequence[ev.Message]] | None = None,
    limit: int = 200,
) -> tuple[list[ev.Event], int]:
    """Drive `fn` cold and kept side by side; returns the history and the kept turns run."""
    extra = extra or {}
    history: list[ev.Event] = []
    messages: list[ev.Message] = [start(input), *extra.get(0, [])]
    timers: list[ev.TimerDue] = []
    state: Suspended | None = None
    resumed = 0
    for n in range(limit):
        now = T0 + 1000 * (n + 1)
        cold = turn(fn, history, messages, execution_id=1 if history else 0, now=now)
        if n == 0:
            warm, state = first(fn, messages, now)
        else:
            assert state is not None, f"turn {n}: nothing kept though the execution runs"
            assert state.history_length == len(history)
            warm, state = state.resume(messages, now)
            resumed += 1
        assert isinstance(warm, TurnResult)
        assert decisions(warm) == decisions(cold), f"turn {n} differs"
        history = [*history, *cold.new_events]
        if cold.status != "Running":
            assert state is None, "a finished execution keeps no state"
            return history, resumed
        assert state is not None and state.history_length == len(history)
        messages = [answer(w) for w in cold.activities]
        timers = sorted([*timers, *cold.timers], key=lambda t: t.fire_at)
        messages.extend(extra.get(n + 1, []))
        if not messages and timers:
            messages.append(timers.pop(0))
        assert messages, "stuck"
    raise AssertionError("did not finish")


async def sequence(ctx: Ctx, n: int) -> list[Any]:
    out = []
    for i in range(n):
        ctx.trace_info(f"step {i}")
        ctx.set_custom_status({"step": i, "at": ctx.utc_now().isoformat()})
        out.append(await ctx.schedule_activity("Echo", [i, ctx.new_guid()]))
    return out


async def composite(ctx: Ctx, _: Any) -> Any:
    async def branch(tag: str) -> str:
        await ctx.schedule_timer(timedelta(seconds=1))
        return str(await ctx.schedule_activity("Echo", tag))

    both = await ctx.join([branch("a"), branch("b"), ctx.schedule_activity("Echo", "c")])
    which = await ctx.select(ctx.schedule_timer(timedelta(hours=1)), ctx.schedule_activity("Echo"))
    try:
        await ctx.schedule_activity("Fail")
    except ActivityFailedError as exc:
        failed = exc.details.type
    retried = await ctx.schedule_activity_with_retry(
        "Echo", "r", RetryPolicy(2).with_backoff(BackoffStrategy.fixed(timedelta(seconds=1)))
    )
    got = await ctx.wait_for_event("go")
    early = await ctx.wait_for_event("early")
    return [both, which, failed, retried, got, early]


async def looping(ctx: Ctx, n: int) -> Any:
    await ctx.schedule_activity("Echo", n)
    if n < 3:
        return await ctx.continue_as_new(n + 1)
    return n


async def crashing(ctx: Ctx, _: Any) -> Any:
    await ctx.schedule_activity("Echo")
    await ctx.schedule_activity("Echo")
    raise ValueError("boom")


def test_a_long_sequence_kept_decides_as_cold_every_turn() -> None:
    history, resumed = drive_both(sequence, 30)
    assert resumed == 30 and isinstance(history[-1], ev.OrchestrationCompleted)


def test_joins_selects_failures_retries_and_events_kept_decide_as_cold() -> None:
    events = {
        1: [ev.ExternalEvent("i", "early", 7)],
        2: [ev.ExternalEvent("i", "noise", 0)],
        6: [ev.ExternalEvent("i", "go", "yes")],
    }
    history, resumed = drive_both(composite, extra=events)
    last = history[-1]
    assert isinstance(last, ev.OrchestrationCompleted), last
    assert resumed > 5


def test_continue_as_new_and_failure_keep_nothing_past_the_end() -> None:
    history, _ = drive_both(looping, 0)
    assert isinstance(history[-1], ev.OrchestrationContinuedAsNew)
    history, _ = drive_both(crashing)
    assert isinstance(history[-1], ev.OrchestrationFailed)


def test_a_cancel_request_ends_a_kept_execution_as_cold() -> None:
    history, _ = drive_both(sequence, 10, extra={3: [ev.CancelRequest("i", "stop")]})
    last = history[-1]
    assert isinstance(last, ev.OrchestrationFailed) and last.error.type == "Cancelled", last


def test_stale_and_duplicate_messages_are_dropped_alike() -> None:
    stale = [
        ev.ActivityResult("i", 1, 99, "never scheduled"),
        ev.ActivityResult("i", 7, 2, "old execution"),
        ev.ActivityResult("i", 1, 2, "duplicate of the first step"),
    ]
    drive_both(sequence, 5, extra={2: stale, 3: stale})


def test_a_suspended_state_is_used_once() -> None:
    _, state = first(sequence, [start(3)], T0)
    assert state is not None
    state.resume([ev.ActivityResult("i", 1, 2, None)], T0 + 1)
    with pytest.raises(RuntimeError, match="already resumed"):
        state.resume([], T0 + 2)
