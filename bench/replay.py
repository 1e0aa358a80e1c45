"""Replay speed: a history of N events decoded from its stored JSON form and replayed by the pure
engine (`run_turn`) to its last decision, the work a worker does when it picks up an instance
it has no cache for. Reported as events per second, decode included ("cold")."""

from __future__ import annotations

import time
from typing import Any

from durox.core import events as ev
from durox.core.codec import decode_events, encode_event
from durox.core.context import OrchestrationContext
from durox.core.replay import TurnResult, run_turn
from durox.registry import OrchestrationRegistry

T0 = 1_700_000_000_000


def _stored_history(events: int) -> tuple[list[str], int]:
    """A sequence of activities, as the store holds it: JSON texts, one per event."""
    activities = (events - 1) // 2
    history: list[Any] = [ev.OrchestrationStarted(1, T0, "Loop", "1.0.0", activities, "0.1.0")]
    for k in range(activities):
        eid = len(history) + 1
        history.append(ev.ActivityScheduled(eid, T0 + eid, "Noop", k))
        history.append(ev.ActivityCompleted(eid + 1, T0 + eid + 1, eid, k))
    return [encode_event(e) for e in history], activities


async def _loop(ctx: OrchestrationContext, n: int) -> int:
    for k in range(n):
        await ctx.schedule_activity("Noop", k)
    return n


def replay_once(texts: list[str]) -> float:
    registry = OrchestrationRegistry.builder().register("Loop", _loop).build()
    began = time.perf_counter()
    history = decode_events(texts)
    result = run_turn(
        instance_id="replay",
        execution_id=1,
        history=history,
        messages=[],
        resolve=registry.resolve,
        now_ms=T0 + len(texts) + 1,
        engine_version="0.1.0",
        context_factory=OrchestrationContext,
    )
    took = time.perf_counter() - began
    if not isinstance(result, TurnResult) or result.status != "Completed":
        raise RuntimeError(f"replay did not complete: {result!r}")
    return took


def measure(sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        texts, _ = _stored_history(size)
        times = [replay_once(texts) for _ in range(repeats)]
        first, rest = times[0], sorted(times[1:] or times)
        median = rest[len(rest) // 2]
        out.append(
            {
                "events": len(texts),
                "first_s": first,
                "median_s": median,
                "events_per_s_first": len(texts) / first,
                "events_per_s": len(texts) / median,
            }
        )
    return out
