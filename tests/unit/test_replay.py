"""The pure engine, driven with hand-built histories: no store, no event loop."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durox import ActivityFailedError, ActivityTimeoutError, RetryPolicy
from durox.core import events as ev
from durox.core.context import OrchestrationContext
from durox.core.replay import Dropped, Mismatch, TurnResult, Unresolved
from durox.core.retry import BackoffStrategy
from tests.unit.histories import ENGINE, T0, History, kinds, start, turn, turn_any

Ctx = OrchestrationContext


def simulate(fn: Any, input: Any = None, activity: Any = None, limit: int = 100) -> list[ev.Event]:
    """Drive an orchestration to its end as a store would, one turn per batch of results.

    Activities answer through `activity(name, input)` (default: echo); timers fire at once.
    Returns the final history; every turn replays everything before it.
    """
    answer = activity or (lambda name, value: value)
    history: list[ev.Event] = []
    messages: list[ev.Message] = [start(input)]
    timers: list[ev.TimerDue] = []
    for _ in range(limit):
        r = turn(fn, history, messages, execution_id=1 if history else 0)
        history = [*history, *r.new_events]
        if r.status != "Running":
            return history
        messages = []
        for w in r.activities:
            try:
                messages.append(ev.ActivityResult("i", 1, w.event_id, answer(w.name, w.input)))
            except Exception as exc:
                err = ev.ErrorDetails("application", type(exc).__name__, str(exc))
                messages.append(ev.ActivityResult("i", 1, w.event_id, None, err))
        timers = sorted([*timers, *r.timers], key=lambda t: t.fire_at)
        if not messages and timers:  # activities are faster than any timer
            messages.append(timers.pop(0))
        assert messages, "orchestration is stuck waiting for something the simulator lacks"
    raise AssertionError("did not finish")


def assert_replays_cleanly(fn: Any, history: list[ev.Event]) -> TurnResult:
    """Replaying all but the terminal event reproduces exactly that terminal event."""
    *body, last = history
    r = turn(fn, body)
    assert r.new_events == [
        type(last)(**{**_fields(last), "event_id": last.event_id, "ts": r.new_events[0].ts})
    ]
    return r


def _fields(e: Any) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__slots__}


# ---- first turn and replay -------------------------------------------------------------------


async def one_activity(ctx: Ctx, input: Any) -> Any:
    return await ctx.schedule_activity("Echo", input)


def test_first_turn_records_start_and_schedules_the_activity() -> None:
    r = turn(one_activity, messages=[start("x")])
    assert kinds(r.new_events) == ["OrchestrationStarted", "ActivityScheduled"]
    assert r.started_execution and r.status == "Running" and r.execution_id == 1
    assert r.activities == [ev.ActivityWork("i", 1, 2, "Echo", "x")]
    started = r.new_events[0]
    assert isinstance(started, ev.OrchestrationStarted)
    assert (started.version, started.engine_version) == ("1.0.0", ENGINE)


def test_completion_replays_and_finishes() -> None:
    h = History(input="x")
    sid = h.add(ev.ActivityScheduled, "Echo", "x")
    r = turn(one_activity, h.events, [ev.ActivityResult("i", 1, sid, "done")])
    assert kinds(r.new_events) == ["ActivityCompleted", "OrchestrationCompleted"]
    assert r.new_events[0].event_id == 3 and r.new_events[1].event_id == 4
    assert (r.status, r.output, r.activities) == ("Completed", "done", [])


def test_activity_failure_raises_in_the_orchestration() -> None:
    h = History()
    sid = h.add(ev.ActivityScheduled, "Echo", None)
    err = ev.ErrorDetails("application", "ValueError", "boom")
    r = turn(one_activity, h.events, [ev.ActivityResult("i", 1, sid, None, err)])
    assert r.status == "Failed"
    assert r.error is not None and r.error.type == "ActivityFailedError"
    assert "boom" in r.error.message


def test_caught_activity_failure_lets_the_orchestration_go_on() -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        try:
            await ctx.schedule_activity("Flaky")
        except ActivityFailedError as exc:
            return f"handled {exc.details.type}"
        return "no error"

    history = simulate(fn, activity=lambda n, v: (_ for _ in ()).throw(KeyError("k")))
    last = history[-1]
    assert isinstance(last, ev.OrchestrationCompleted) and last.output == "handled KeyError"


def test_a_long_sequence_replays_to_the_same_result() -> None:
    async def fn(ctx: Ctx, n: int) -> list[int]:
        out = []
        for i in range(n):
            out.append(await ctx.schedule_activity("Inc", i))
        return out

    history = simulate(fn, 20, activity=lambda n, v: v + 1)
    assert history[-1] == ev.OrchestrationCompleted(42, history[-1].ts, list(range(1, 21)))
    assert_replays_cleanly(fn, history)


# ---- nondeterminism --------------------------------------------------------------------------


def test_a_different_activity_than_the_history_is_nondeterminism_naming_both() -> None:
    async def changed(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("NewName")

    h = History()
    sid = h.add(ev.ActivityScheduled, "OldName", None)
    r = turn(changed, h.events, [ev.ActivityResult("i", 1, sid, 1)])
    assert r.status == "Failed" and r.error is not None
    assert r.error.kind == "nondeterminism"
    assert "'NewName'" in r.error.message and "'OldName'" in r.error.message
    assert r.activities == [] and kinds(r.new_events)[-1] == "OrchestrationFailed"
    assert r.mismatch == Mismatch(sid, "scheduled activity 'NewName'", "activity 'OldName'")


def test_history_the_code_no_longer_schedules_is_nondeterminism() -> None:
    async def fewer(ctx: Ctx, _: Any) -> str:
        await ctx.schedule_timer(timedelta(seconds=1))
        return "done"

    h = History()
    tid = h.add(ev.TimerCreated, T0 + 1000)
    h.add(ev.ActivityScheduled, "Extra", None)
    r = turn(fewer, h.events, [ev.TimerDue("i", 1, tid, T0 + 1000)])
    assert r.error is not None and r.error.kind == "nondeterminism"
    assert "no longer schedules" in r.error.message
    assert r.mismatch == Mismatch(3, "schedules nothing there", "activity 'Extra'")


def test_scheduling_more_while_replaying_is_nondeterminism() -> None:
    async def more(ctx: Ctx, _: Any) -> str:
        await ctx.join([ctx.schedule_activity("A"), ctx.schedule_activity("B")])
        return "x"

    h = History()
    a = h.add(ev.ActivityScheduled, "A", None)
    h.add(ev.ActivityCompleted, a, 1)
    r = turn(more, h.events, [ev.ExternalEvent("i", "poke", None)])
    assert r.error is not None and r.error.kind == "nondeterminism"
    assert "'B'" in r.error.message
    assert r.mismatch == Mismatch(None, "scheduled activity 'B'", "nothing scheduled there")


def test_user_code_cannot_swallow_nondeterminism() -> None:
    async def sneaky(ctx: Ctx, _: Any) -> str:
        try:
            await ctx.schedule_activity("Different")
        except Exception:
            return "swallowed"
        return "no"

    h = History()
    sid = h.add(ev.ActivityScheduled, "Original", None)
    r = turn(sneaky, h.events, [ev.ActivityResult("i", 1, sid, 1)])
    assert r.status == "Failed" and r.error is not None and r.error.kind == "nondeterminism"


def test_a_completion_for_something_never_scheduled_is_nondeterminism() -> None:
    async def waits(ctx: Ctx, _: Any) -> Any:
        return await ctx.wait_for_event("go")

    h = History()
    h.add(ev.EventSubscribed, "go")
    stray = h.add(ev.ActivityCompleted, 99, "stray")
    r = turn(waits, h.events, [ev.ExternalEvent("i", "go", 1)])
    assert r.error is not None and r.error.kind == "nondeterminism"
    assert r.mismatch == Mismatch(
        stray, "has not scheduled event 99", "ActivityCompleted for event 99"
    )


def test_a_turn_that_replays_cleanly_has_no_mismatch() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("A")

    h = History()
    sid = h.add(ev.ActivityScheduled, "A", None)
    r = turn(fn, h.events, [ev.ActivityResult("i", 1, sid, 1)])
    assert r.status == "Completed" and r.mismatch is None


# ---- timers, clock, ids, traces --------------------------------------------------------------


def test_timer_fires_at_orchestration_time_plus_delay() -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        await ctx.schedule_timer(timedelta(seconds=5))
        return ctx.utc_now().isoformat()

    r1 = turn(fn, messages=[start()], now=T0)
    assert r1.timers == [ev.TimerDue("i", 1, 2, T0 + 5000)]
    history = r1.new_events
    r2 = turn(fn, history, [ev.TimerDue("i", 1, 2, T0 + 5000)], now=T0 + 5003)
    assert r2.output == datetime.fromtimestamp((T0 + 5003) / 1000, UTC).isoformat()


def test_clock_and_guids_are_the_same_on_every_replay() -> None:
    seen: list[tuple[Any, ...]] = []

    async def fn(ctx: Ctx, _: Any) -> str:
        g1, now1 = ctx.new_guid(), ctx.utc_now()
        await ctx.schedule_timer(timedelta(seconds=1))
        seen.append((g1, now1, ctx.new_guid(), ctx.utc_now()))
        return "ok"

    r1 = turn(fn, messages=[start()], now=T0)
    h = [*r1.new_events, ev.TimerFired(3, T0 + 1500, 2)]
    turn(fn, h[:2], [ev.TimerDue("i", 1, 2, T0 + 1000)], now=T0 + 1500)
    turn(fn, h, [], now=T0 + 99_000)
    assert seen[0] == seen[1]
    g1, now1, g2, now2 = seen[0]
    assert g1 != g2 and now1 < now2


def test_traces_are_silent_while_replaying() -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        ctx.trace_info(f"first replaying={ctx.is_replaying}")
        await ctx.schedule_timer(timedelta(seconds=1))
        ctx.trace_warn(f"second replaying={ctx.is_replaying}")
        return "ok"

    r1 = turn(fn, messages=[start()])
    assert r1.traces == [("info", "first replaying=False")]
    r2 = turn(fn, r1.new_events, [ev.TimerDue("i", 1, 2, 0)])
    assert r2.traces == [("warning", "second replaying=False")]


def test_custom_status_is_the_last_value_set() -> None:
    async def fn(ctx: Ctx, _: Any) -> str:
        ctx.set_custom_status({"phase": 1})
        await ctx.schedule_timer(timedelta(seconds=1))
        ctx.set_custom_status({"phase": 2})
        await ctx.wait_for_event("never")
        return "x"

    r1 = turn(fn, messages=[start()])
    assert r1.custom_status == {"phase": 1}
    r2 = turn(fn, r1.new_events, [ev.TimerDue("i", 1, 2, 0)])
    assert r2.custom_status == {"phase": 2}


# ---- external events -------------------------------------------------------------------------


async def two_events(ctx: Ctx, _: Any) -> list[Any]:
    first = await ctx.wait_for_event("e")
    second = await ctx.wait_for_event("e")
    return [first, second]


def test_events_are_delivered_in_order_to_subscriptions_in_order() -> None:
    r1 = turn(two_events, messages=[start()])
    r2 = turn(
        two_events, r1.new_events, [ev.ExternalEvent("i", "e", 1), ev.ExternalEvent("i", "e", 2)]
    )
    assert (r2.status, r2.output) == ("Completed", [1, 2])


def test_an_event_raised_before_anyone_waits_is_kept_for_the_next_wait() -> None:
    async def later(ctx: Ctx, _: Any) -> Any:
        await ctx.schedule_timer(timedelta(seconds=1))
        return await ctx.wait_for_event("e")

    r1 = turn(later, messages=[start(), ev.ExternalEvent("i", "e", "early")])
    assert r1.status == "Running"
    assert kinds(r1.new_events) == ["OrchestrationStarted", "EventRaised", "TimerCreated"]
    r2 = turn(later, r1.new_events, [ev.TimerDue("i", 1, r1.timers[0].event_id, 0)])
    assert (r2.status, r2.output) == ("Completed", "early")


# ---- composition -----------------------------------------------------------------------------


async def race(ctx: Ctx, _: Any) -> Any:
    index, value = await ctx.select(
        ctx.schedule_activity("Slow"), ctx.schedule_timer(timedelta(seconds=10))
    )
    return ["activity", value] if index == 0 else ["timeout", None]


def test_select_timer_wins_and_the_losing_activity_is_withdrawn() -> None:
    r1 = turn(race, messages=[start()])
    act, timer = r1.activities[0].event_id, r1.timers[0].event_id
    r2 = turn(race, r1.new_events, [ev.TimerDue("i", 1, timer, 0)])
    assert r2.output == ["timeout", None]
    assert r2.cancelled_activities == [act]
    cancelled = [e for e in r2.new_events if isinstance(e, ev.ScheduledCancelled)]
    assert [c.source_event_id for c in cancelled] == [act]
    # The loser's result arriving later is dropped; nothing replays differently.
    history = [*r1.new_events, *r2.new_events[:-1]]
    r3 = turn(race, history, [ev.ActivityResult("i", 1, act, "late")])
    assert r3.output == ["timeout", None] and kinds(r3.new_events) == ["OrchestrationCompleted"]
    assert any("not awaited" in d for d in r3.dropped)


def test_select_when_both_complete_in_one_batch_takes_the_first_recorded() -> None:
    r1 = turn(race, messages=[start()])
    act, timer = r1.activities[0].event_id, r1.timers[0].event_id
    r2 = turn(
        race, r1.new_events, [ev.ActivityResult("i", 1, act, "fast"), ev.TimerDue("i", 1, timer, 0)]
    )
    assert r2.output == ["activity", "fast"]
    assert_replays_cleanly(race, [*r1.new_events, *r2.new_events])


def test_select_over_coroutine_branches_with_several_awaits() -> None:
    async def branch(ctx: Ctx, tag: str) -> str:
        a: str = await ctx.schedule_activity("Step", f"{tag}1")
        b: str = await ctx.schedule_activity("Step", f"{tag}2")
        return a + b

    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.select(branch(ctx, "x"), ctx.schedule_timer(timedelta(hours=1)))

    history = simulate(fn)
    assert history[-1].output == [0, "x1x2"]  # type: ignore[union-attr]
    assert_replays_cleanly(fn, history)


def test_select_cancels_a_losing_branch_and_what_it_awaits() -> None:
    async def branch(ctx: Ctx) -> str:
        await ctx.schedule_timer(timedelta(hours=1))
        return "branch"

    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.select(ctx.wait_for_event("go"), branch(ctx))

    r1 = turn(fn, messages=[start()])
    timer = r1.timers[0].event_id
    r2 = turn(fn, r1.new_events, [ev.ExternalEvent("i", "go", 7)])
    assert r2.output == [0, 7]
    cancelled = [e.source_event_id for e in r2.new_events if isinstance(e, ev.ScheduledCancelled)]
    assert cancelled == [timer]


def test_join_returns_results_in_item_order_whatever_the_completion_order() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        async def two(ctx: Ctx) -> int:
            n: int = await ctx.schedule_activity("N", 2)
            return n * 10

        return await ctx.join(
            [ctx.schedule_activity("N", 1), two(ctx), ctx.schedule_activity("N", 3)]
        )

    r1 = turn(fn, messages=[start()])
    results = [ev.ActivityResult("i", 1, w.event_id, w.input) for w in r1.activities]
    r2 = turn(fn, r1.new_events, list(reversed(results)))
    assert r2.output == [1, 20, 3]


def test_join_raises_the_first_failure() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        try:
            await ctx.join([ctx.schedule_activity("Ok"), ctx.schedule_activity("Bad")])
        except ActivityFailedError as exc:
            return exc.details.message
        return "no"

    def act(name: str, value: Any) -> Any:
        if name == "Bad":
            raise RuntimeError("bad one")
        return 1

    assert simulate(fn, activity=act)[-1].output == "bad one"  # type: ignore[union-attr]


def test_join_of_nothing_is_an_empty_list() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.join([])

    assert turn(fn, messages=[start()]).output == []


# ---- retries ---------------------------------------------------------------------------------


def test_retry_backs_off_with_durable_timers_then_succeeds() -> None:
    calls = {"n": 0}

    def flaky(name: str, value: Any) -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("try again")
        return "ok"

    async def fn(ctx: Ctx, _: Any) -> Any:
        policy = RetryPolicy(5).with_backoff(BackoffStrategy.fixed(timedelta(seconds=2)))
        return await ctx.schedule_activity_with_retry("Flaky", None, policy)

    history = simulate(fn, activity=flaky)
    assert history[-1].output == "ok"  # type: ignore[union-attr]
    timers = [e for e in history if isinstance(e, ev.TimerCreated)]
    assert len(timers) == 2 and all(t.fire_at - t.ts == 2000 for t in timers)
    assert_replays_cleanly(fn, history)


def test_retry_gives_up_after_max_attempts() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity_with_retry(
            "Bad", None, RetryPolicy(3).with_backoff(BackoffStrategy.none())
        )

    def bad(name: str, value: Any) -> Any:
        raise ValueError("always")

    history = simulate(fn, activity=bad)
    assert isinstance(history[-1], ev.OrchestrationFailed)
    assert sum(isinstance(e, ev.ActivityScheduled) for e in history) == 3


def test_a_timed_out_attempt_is_not_retried() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        try:
            await ctx.schedule_activity_with_retry(
                "Hang", None, RetryPolicy(3).with_timeout(timedelta(seconds=30))
            )
        except ActivityTimeoutError as exc:
            return exc.details.kind
        return "no"

    r1 = turn(fn, messages=[start()])
    timer = r1.timers[0].event_id
    assert r1.timers[0].fire_at - r1.new_events[-1].ts == 30_000
    r2 = turn(fn, r1.new_events, [ev.TimerDue("i", 1, timer, 0)])
    assert r2.output == "timeout" and r2.activities == []
    assert r2.cancelled_activities == [r1.activities[0].event_id]


# ---- continue_as_new and versions ------------------------------------------------------------


async def loop(ctx: Ctx, n: int) -> Any:
    await ctx.schedule_timer(timedelta(seconds=1))
    return await ctx.continue_as_new(n + 1)


def test_continue_as_new_ends_the_execution_and_starts_the_next() -> None:
    r1 = turn(loop, messages=[start(0)])
    r2 = turn(loop, r1.new_events, [ev.TimerDue("i", 1, 2, 0)])
    assert r2.status == "ContinuedAsNew"
    assert isinstance(r2.new_events[-1], ev.OrchestrationContinuedAsNew)
    assert r2.messages == [ev.StartOrchestration("i", "O", None, 1, 2)]
    # The next turn sees the ended history and the start for execution 2.
    r3 = turn(loop, [*r1.new_events, *r2.new_events], r2.messages)
    assert (r3.execution_id, r3.started_execution) == (2, True)
    assert kinds(r3.new_events) == ["OrchestrationStarted", "TimerCreated"]
    assert r3.new_events[0].event_id == 1


def test_new_execution_resolves_latest_but_running_one_keeps_its_version() -> None:
    async def v1(ctx: Ctx, n: int) -> Any:
        await ctx.schedule_timer(timedelta(seconds=1))
        return await ctx.continue_as_new(n)

    async def v2(ctx: Ctx, n: int) -> Any:
        return f"v2 got {n}"

    table = {("O", "1.0.0"): v1, ("O", "1.0.1"): v2}
    h = History(version="1.0.0", input=5)
    h.add(ev.TimerCreated, T0)
    r = turn(table, h.events, [ev.TimerDue("i", 1, 2, 0)])
    assert r.version == "1.0.0" and r.status == "ContinuedAsNew"
    r2 = turn(table, [*h.events, *r.new_events], r.messages)
    assert (r2.version, r2.output) == ("1.0.1", "v2 got 5")


def test_continue_as_new_versioned_pins_the_next_execution() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.continue_as_new_versioned("1.0.0", "state")

    r = turn(fn, messages=[start()])
    assert r.messages == [ev.StartOrchestration("i", "O", "1.0.0", "state", 2)]


def test_messages_for_an_old_execution_are_dropped() -> None:
    h = History()
    h.add(ev.ActivityScheduled, "Echo", None)
    r = turn(one_activity, h.events, [ev.ActivityResult("i", 0, 2, "stale")], execution_id=1)
    assert r.status == "Running" and r.new_events == []
    assert r.dropped and "execution 0" in r.dropped[0]


def test_duplicate_completions_are_dropped() -> None:
    h = History()
    h.add(ev.ActivityScheduled, "Echo", None)
    h.add(ev.ActivityCompleted, 2, "first")
    r = turn(one_activity, h.events, [ev.ActivityResult("i", 1, 2, "again")])
    assert r.output == "first"


def test_unregistered_name_or_version_is_unresolved() -> None:
    assert isinstance(turn_any(one_activity, messages=[start(name="Nope")]), Unresolved)
    out = turn_any(one_activity, messages=[start(version="9.9.9")])
    assert isinstance(out, Unresolved) and out.version == "9.9.9"
    assert isinstance(turn_any(one_activity, History(version="2.0.0").events), Unresolved)


def test_messages_for_an_instance_with_no_execution_are_dropped() -> None:
    out = turn_any(one_activity, messages=[ev.ExternalEvent("i", "e", 1)])
    assert isinstance(out, Dropped) and out.reasons


def test_a_second_start_of_a_running_instance_is_dropped() -> None:
    h = History()
    h.add(ev.ActivityScheduled, "Echo", None)
    r = turn(one_activity, h.events, [start("again")])
    assert r.new_events == [] and "already started" in r.dropped[0]


# ---- sub-orchestrations, detached starts, cancellation ---------------------------------------


async def parent(ctx: Ctx, _: Any) -> Any:
    ctx.start_orchestration("Other", "detached-1", {"x": 1})
    return await ctx.schedule_sub_orchestration("Child", "in")


def test_sub_orchestration_start_carries_the_parent_and_its_result_comes_back() -> None:
    r1 = turn(parent, messages=[start()])
    assert kinds(r1.new_events) == [
        "OrchestrationStarted",
        "OrchestrationChained",
        "SubOrchestrationScheduled",
    ]
    detached, child = r1.messages
    assert detached == ev.StartOrchestration("detached-1", "Other", None, {"x": 1})
    assert isinstance(child, ev.StartOrchestration)
    assert child.instance_id == "i::sub::3" and child.parent == ev.ParentRef("i", 1, 3)
    r2 = turn(parent, r1.new_events, [ev.SubOrchestrationResult("i", 1, 3, "child out")])
    assert r2.output == "child out"


def test_a_finished_child_reports_to_its_parent() -> None:
    async def child(ctx: Ctx, value: str) -> str:
        return value.upper()

    msg = ev.StartOrchestration("c", "O", None, "hi", 1, ev.ParentRef("p", 4, 7))
    r = turn(child, messages=[msg], instance_id="c")
    assert r.messages == [ev.SubOrchestrationResult("p", 4, 7, "HI")]
    assert r.parent == ev.ParentRef("p", 4, 7)


def test_cancel_ends_the_instance_and_cascades() -> None:
    async def busy(ctx: Ctx, _: Any) -> Any:
        return await ctx.join(
            [
                ctx.schedule_activity("Work"),
                ctx.schedule_sub_orchestration("Child", None, instance_id="kid"),
            ]
        )

    r1 = turn(busy, messages=[start()])
    r2 = turn(busy, r1.new_events, [ev.CancelRequest("i", "operator said so")])
    assert r2.status == "Cancelled" and r2.error is not None
    assert (r2.error.kind, r2.error.message) == ("cancelled", "operator said so")
    assert r2.cancelled_activities == [r1.activities[0].event_id]
    assert ev.CancelRequest("kid", "parent i ended: Cancelled") in r2.messages


# ---- misuse ----------------------------------------------------------------------------------


class _Foreign:
    def __await__(self) -> Generator[Any, None, None]:
        yield "not durable"


def test_awaiting_something_not_durable_fails_with_a_clear_error() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        await _Foreign()

    r = turn(fn, messages=[start()])
    assert r.status == "Failed" and r.error is not None
    assert "only await durox operations" in r.error.message


def test_output_that_json_cannot_hold_fails_validation() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return {1, 2}

    r = turn(fn, messages=[start()])
    assert r.error is not None and r.error.kind == "validation"


def test_activity_input_that_json_cannot_hold_raises_in_the_orchestration() -> None:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("A", object())

    r = turn(fn, messages=[start()])
    assert r.error is not None and r.error.type == "PayloadError"


def test_an_orchestration_that_is_not_async_fails() -> None:
    def sync_fn(ctx: Ctx, _: Any) -> Any:
        return 1

    with pytest.raises(TypeError, match="async def"):
        turn(sync_fn, messages=[start()])
