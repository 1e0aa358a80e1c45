"""One orchestration turn: (history, new messages) -> (new events, actions, outcome).

The orchestration is an ordinary `async def`, but it never runs on an asyncio loop: the turn
drives its coroutine by hand, and every durable operation is a `DurableFuture` that only the
history can complete. Each turn replays the function from the first event, matching each
operation the code schedules against the recorded scheduling events in order, and delivering
recorded completions in the order they were recorded. That ordering is the whole determinism
argument: the same code fed the same history takes the same path, and any divergence is caught
at the first operation that differs and reported naming both sides.

Composition (`join`, `select`) runs coroutine branches as extra tasks on the same hand-driven
scheduler, in creation order, so interleaving is a function of the history alone.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Never, TypeAlias, TypeVar, cast

from durox.core import events as ev
from durox.core.codec import encode_json
from durox.errors import (
    ActivityFailedError,
    HistoryDecodeError,
    NondeterminismError,
    OrchestrationFailedError,
    PayloadError,
    SubOrchestrationFailedError,
)
from durox.status import InstanceStatus

JSON = ev.JSON
T_co = TypeVar("T_co", covariant=True)
Handler: TypeAlias = Callable[[Any, JSON], Awaitable[JSON]]
"""An orchestration as the engine sees it: (context, JSON input) -> JSON output."""
Resolver: TypeAlias = Callable[[str, "str | None"], "tuple[str, Handler] | None"]
"""(name, requested version or None) -> (chosen version, handler), or None if not here."""

STATUS_RUNNING = InstanceStatus.RUNNING
STATUS_COMPLETED = InstanceStatus.COMPLETED
STATUS_FAILED = InstanceStatus.FAILED
STATUS_CANCELLED = InstanceStatus.CANCELLED
STATUS_CONTINUED = InstanceStatus.CONTINUED_AS_NEW


class DurableFuture(Generic[T_co]):
    """A durable operation's result, completed only by the history. Await it in orchestrations."""

    __slots__ = (
        "_callbacks",
        "_waiter",
        "cancelled",
        "children",
        "done",
        "error",
        "event_id",
        "kind",
        "value",
    )

    def __init__(self, kind: str, event_id: int = 0) -> None:
        self.kind = kind
        self.event_id = event_id
        self.done = False
        self.cancelled = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.children: list[DurableFuture[Any]] = []
        self._waiter: _Task | None = None
        self._callbacks: list[Callable[[DurableFuture[Any]], None]] = []

    def __await__(self) -> Generator[DurableFuture[Any], None, T_co]:
        if not self.done:
            yield self
        if self.error is not None:
            raise self.error
        return cast(T_co, self.value)

    def _resolve(self, turn: _Turn, value: Any = None, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.value = value
        self.error = error
        if self._waiter is not None:
            turn.ready.append(self._waiter)
            self._waiter = None
        for cb in self._callbacks:
            cb(self)
        self._callbacks.clear()


class _Task:
    __slots__ = ("coro", "done_future", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], done_future: DurableFuture[Any]) -> None:
        self.coro = coro
        self.done_future = done_future
        self.waiting: DurableFuture[Any] | None = None


class _Stop(BaseException):
    """Unwinds the turn once the orchestration has reached a terminal decision."""


@dataclass(slots=True)
class Unresolved:
    """No handler here for this orchestration and version: the caller backs off and retries."""

    name: str
    version: str | None


@dataclass(slots=True)
class TurnResult:
    instance_id: str
    execution_id: int
    name: str
    version: str
    engine_version: str
    parent: ev.ParentRef | None
    new_events: list[ev.Event]
    status: InstanceStatus
    output: JSON = None
    error: ev.ErrorDetails | None = None
    custom_status: JSON = None
    activities: list[ev.ActivityWork] = field(default_factory=list)
    timers: list[ev.TimerDue] = field(default_factory=list)
    messages: list[ev.Message] = field(default_factory=list)
    cancelled_activities: list[int] = field(default_factory=list)
    traces: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    started_execution: bool = False


@dataclass(slots=True)
class Dropped:
    """The messages had no execution to go to (unknown, finished or duplicate); all dropped."""

    reasons: list[str]


def _describe(e: ev.Event) -> str:
    if isinstance(e, ev.ActivityScheduled):
        return f"activity {e.name!r}"
    if isinstance(e, ev.TimerCreated):
        return "a timer"
    if isinstance(e, ev.EventSubscribed):
        return f"wait_for_event {e.name!r}"
    if isinstance(e, ev.SubOrchestrationScheduled):
        return f"sub-orchestration {e.name!r} ({e.instance_id})"
    if isinstance(e, ev.OrchestrationChained):
        return f"detached orchestration {e.name!r} ({e.instance_id})"
    if isinstance(e, ev.ScheduledCancelled):
        return f"cancellation of event {e.source_event_id}"
    return type(e).__name__


_COMPLETION_FOR: dict[type, type] = {
    ev.ActivityCompleted: ev.ActivityScheduled,
    ev.ActivityFailed: ev.ActivityScheduled,
    ev.TimerFired: ev.TimerCreated,
    ev.SubOrchestrationCompleted: ev.SubOrchestrationScheduled,
    ev.SubOrchestrationFailed: ev.SubOrchestrationScheduled,
}


def run_turn(
    *,
    instance_id: str,
    execution_id: int,
    history: Sequence[ev.Event],
    messages: Sequence[ev.Message],
    resolve: Resolver,
    now_ms: int,
    engine_version: str,
    context_factory: Callable[[_Turn], Any],
) -> TurnResult | Unresolved | Dropped:
    """Run one turn. `execution_id` is the instance's current execution (0 if none yet)."""
    return _Turn(
        instance_id,
        execution_id,
        history,
        messages,
        resolve,
        now_ms,
        engine_version,
        context_factory,
    ).run()


class _Turn:
    def __init__(
        self,
        instance_id: str,
        execution_id: int,
        history: Sequence[ev.Event],
        messages: Sequence[ev.Message],
        resolve: Resolver,
        now_ms: int,
        engine_version: str,
        context_factory: Callable[[_Turn], Any],
    ) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.history = history
        self.messages = messages
        self.resolve = resolve
        self.now_ms = now_ms
        self.engine_version = engine_version
        self.context_factory = context_factory
        self.ready: deque[_Task] = deque()
        self.tasks: list[_Task] = []
        self.replaying = False
        self.clock = now_ms
        self.guid_counter = 0
        self.custom_status: JSON = None
        self.traces: list[tuple[str, str]] = []
        self.terminal: tuple[InstanceStatus, JSON, ev.ErrorDetails | None] | None = None
        self.next_version: str | None = None
        self.pending: dict[int, DurableFuture[Any]] = {}
        self.cancelled_ids: set[int] = set()
        self.subscriptions: dict[str, deque[DurableFuture[Any]]] = {}
        self.buffered: dict[str, deque[JSON]] = {}
        self.children: dict[int, str] = {}  # sub-orchestration event id -> child instance id
        self.created: list[ev.Event] = []
        self.result: TurnResult | None = None
        self.fatal: NondeterminismError | None = None

    # ---- set-up -----------------------------------------------------------------------

    def run(self) -> TurnResult | Unresolved | Dropped:
        history = list(self.history)
        dropped: list[str] = []
        if history and not isinstance(history[0], ev.OrchestrationStarted):
            raise HistoryDecodeError(
                f"history of {self.instance_id} starts with {type(history[0]).__name__}"
            )
        if history and isinstance(history[-1], ev.TERMINAL_EVENTS):
            history = []  # the current execution is over; only a next-execution start matters
        started_now = False
        if not history:
            start = next(
                (
                    m
                    for m in self.messages
                    if isinstance(m, ev.StartOrchestration)
                    and m.execution_id == self.execution_id + 1
                ),
                None,
            )
            if start is None:
                return Dropped(
                    [
                        f"{type(m).__name__} for an instance with no running execution"
                        for m in self.messages
                    ]
                )
            found = self.resolve(start.name, start.version)
            if found is None:
                return Unresolved(start.name, start.version)
            version, handler = found
            self.execution_id = start.execution_id
            history = [
                ev.OrchestrationStarted(
                    1,
                    self.now_ms,
                    start.name,
                    version,
                    start.input,
                    self.engine_version,
                    start.parent,
                )
            ]
            baseline = 0
            started_now = True
            messages = [m for m in self.messages if m is not start]
        else:
            first = history[0]
            assert isinstance(first, ev.OrchestrationStarted)
            found = self.resolve(first.name, first.version)
            if found is None:
                return Unresolved(first.name, first.version)
            version, handler = found
            baseline = len(history)
            messages = list(self.messages)
        started = history[0]
        assert isinstance(started, ev.OrchestrationStarted)
        self.started = started
        self.handler = handler

        incoming = self._accept(history, messages, dropped)
        self.next_id = len(history) + len(incoming) + 1
        all_events = history + incoming
        scheduling = ev.SCHEDULING_EVENTS
        self.sched = [e for e in history if type(e) in scheduling]
        self.cursor = 0
        self.result = TurnResult(
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            name=started.name,
            version=started.version,
            engine_version=started.engine_version,
            parent=started.parent,
            new_events=[],
            status=STATUS_RUNNING,
            dropped=dropped,
            started_execution=started_now,
        )
        try:
            self._replay(all_events, baseline)
        except _Stop:
            pass
        finally:
            self._close_tasks()
        res = self.result
        problem: str | None = None
        if self.fatal is not None:
            problem = self.fatal.details.message
        elif self.cursor < len(self.sched):
            extra = self.sched[self.cursor]
            problem = (
                f"history has {_describe(extra)} at event {extra.event_id} which the code "
                "no longer schedules"
            )
        if problem is not None:
            # Nothing the diverging code decided may leave this turn: only the failure does.
            self.terminal = (
                STATUS_FAILED,
                None,
                ev.ErrorDetails("nondeterminism", "NondeterminismError", problem),
            )
            self.created.clear()
            res.activities.clear()
            res.timers.clear()
            res.messages.clear()
            res.cancelled_activities.clear()
        if started_now:
            res.new_events.append(started)
        res.new_events.extend(incoming)
        res.new_events.extend(self.created)
        res.custom_status = self.custom_status
        res.traces = self.traces
        self.terminal_event_id = len(history) + len(incoming) + len(self.created) + 1
        if self.terminal is not None:
            self._finish(res, self.terminal)
        return res

    def _accept(
        self, history: list[ev.Event], messages: Sequence[ev.Message], dropped: list[str]
    ) -> list[ev.Event]:
        """Turn this batch's messages into history events, dropping stale and duplicate ones."""
        scheduled: dict[int, type] = {}
        completed: set[int] = set()
        cancel_requested = False
        for e in history:
            t = type(e)
            if t in ev.SCHEDULING_EVENTS:
                if t is ev.ScheduledCancelled:
                    completed.add(e.source_event_id)  # type: ignore[union-attr]
                else:
                    scheduled[e.event_id] = t
            elif t in _COMPLETION_FOR:
                completed.add(e.source_event_id)  # type: ignore[union-attr]
            elif t is ev.OrchestrationCancelRequested:
                cancel_requested = True
        out: list[ev.Event] = []
        next_id = len(history) + 1
        ts = self.now_ms
        for m in messages:
            new: ev.Event | None = None
            if isinstance(m, ev.ActivityResult | ev.TimerDue | ev.SubOrchestrationResult):
                want = (
                    ev.ActivityScheduled
                    if isinstance(m, ev.ActivityResult)
                    else ev.TimerCreated
                    if isinstance(m, ev.TimerDue)
                    else ev.SubOrchestrationScheduled
                )
                if m.execution_id != self.execution_id:
                    dropped.append(f"{type(m).__name__} for execution {m.execution_id}")
                    continue
                if scheduled.get(m.event_id) is not want or m.event_id in completed:
                    dropped.append(f"{type(m).__name__} for event {m.event_id}: not awaited")
                    continue
                completed.add(m.event_id)
                if isinstance(m, ev.TimerDue):
                    new = ev.TimerFired(next_id, ts, m.event_id)
                elif isinstance(m, ev.ActivityResult):
                    new = (
                        ev.ActivityCompleted(next_id, ts, m.event_id, m.result)
                        if m.error is None
                        else ev.ActivityFailed(next_id, ts, m.event_id, m.error)
                    )
                else:
                    new = (
                        ev.SubOrchestrationCompleted(next_id, ts, m.event_id, m.result)
                        if m.error is None
                        else ev.SubOrchestrationFailed(next_id, ts, m.event_id, m.error)
                    )
            elif isinstance(m, ev.ExternalEvent):
                new = ev.EventRaised(next_id, ts, m.name, m.data)
            elif isinstance(m, ev.CancelRequest):
                if cancel_requested:
                    dropped.append("duplicate cancel request")
                    continue
                cancel_requested = True
                new = ev.OrchestrationCancelRequested(next_id, ts, m.reason)
            else:
                dropped.append(
                    f"StartOrchestration for execution {m.execution_id}: already started"
                )
                continue
            out.append(new)
            next_id += 1
        return out

    # ---- replay -----------------------------------------------------------------------

    def _replay(self, events: list[ev.Event], baseline: int) -> None:
        ctx = self.context_factory(self)
        self.ctx = ctx
        for idx, e in enumerate(events):
            t = type(e)
            if t in ev.SCHEDULING_EVENTS:
                continue
            self.replaying = idx < baseline
            self.clock = e.ts
            if t is ev.OrchestrationStarted:
                root: DurableFuture[Any] = DurableFuture("task")
                root._callbacks.append(self._root_done)
                self._spawn(self.handler(ctx, self.started.input), root)
            elif t is ev.EventRaised:
                self._deliver_event(e)  # type: ignore[arg-type]
            elif t is ev.OrchestrationCancelRequested:
                self.terminal = (
                    STATUS_CANCELLED,
                    None,
                    ev.ErrorDetails("cancelled", "Cancelled", e.reason),  # type: ignore[union-attr]
                )
                raise _Stop
            else:
                self._deliver_completion(e)
            self._run_ready()
        self.replaying = False

    def _spawn(self, awaitable: Awaitable[Any], done: DurableFuture[Any]) -> _Task:
        if not isinstance(awaitable, Coroutine):
            raise TypeError("orchestrations must be `async def` functions")
        task = _Task(awaitable, done)
        self.tasks.append(task)
        self.ready.append(task)
        return task

    def _run_ready(self) -> None:
        ready = self.ready
        while ready:
            task = ready.popleft()
            try:
                yielded = task.coro.send(None)
            except StopIteration as stop:
                task.done_future._resolve(self, stop.value)
            except _Stop:
                raise
            except Exception as exc:
                if self.fatal is not None:
                    raise _Stop from None
                task.done_future._resolve(self, None, exc)
            else:
                if self.fatal is not None:
                    raise _Stop
                if not isinstance(yielded, DurableFuture):
                    task.coro.close()
                    task.done_future._resolve(
                        self,
                        None,
                        TypeError(
                            f"orchestrations may only await durox operations, not {yielded!r}; "
                            "do I/O in activities"
                        ),
                    )
                    continue
                task.waiting = yielded
                yielded._waiter = task
            if self.terminal is not None:
                raise _Stop

    def _root_done(self, fut: DurableFuture[Any]) -> None:
        if self.terminal is not None:
            return
        if fut.error is None:
            try:
                value = _normalize(fut.value)
            except PayloadError as exc:
                self.terminal = (
                    STATUS_FAILED,
                    None,
                    ev.ErrorDetails("validation", "PayloadError", f"output: {exc}"),
                )
                return
            self.terminal = (STATUS_COMPLETED, value, None)
        else:
            self.terminal = (STATUS_FAILED, None, error_details(fut.error))

    def _close_tasks(self) -> None:
        for task in self.tasks:
            _close(task)

    def _finish(
        self, res: TurnResult, terminal: tuple[InstanceStatus, JSON, ev.ErrorDetails | None]
    ) -> None:
        status, output, error = terminal
        res.status = status
        res.output = output
        res.error = error
        eid = self.terminal_event_id
        ts = self.clock
        if status == STATUS_COMPLETED:
            res.new_events.append(ev.OrchestrationCompleted(eid, ts, output))
        elif status == STATUS_CONTINUED:
            res.new_events.append(
                ev.OrchestrationContinuedAsNew(eid, ts, output, self.next_version)
            )
            res.messages.append(
                ev.StartOrchestration(
                    self.instance_id,
                    self.started.name,
                    self.next_version,
                    output,
                    self.execution_id + 1,
                    self.started.parent,
                )
            )
        else:
            assert error is not None
            res.new_events.append(ev.OrchestrationFailed(eid, ts, error))
        # Outstanding work dies with the execution: queued activities are withdrawn and
        # running sub-orchestrations are told to cancel (cancellation cascades).
        for event_id, fut in self.pending.items():
            if fut.done:
                continue
            if fut.kind == "activity":
                res.cancelled_activities.append(event_id)
            elif fut.kind == "sub":
                res.messages.append(
                    ev.CancelRequest(
                        self.children[event_id], f"parent {self.instance_id} ended: {status}"
                    )
                )
        if status == STATUS_CONTINUED:
            res.output = None
        p = self.started.parent
        if p is not None and status != STATUS_CONTINUED:
            res.messages.append(
                ev.SubOrchestrationResult(p.instance_id, p.execution_id, p.event_id, output, error)
                if error is not None
                else ev.SubOrchestrationResult(p.instance_id, p.execution_id, p.event_id, output)
            )

    # ---- deliveries -------------------------------------------------------------------

    def _deliver_completion(self, e: ev.Event) -> None:
        source: int = e.source_event_id  # type: ignore[union-attr]
        fut = self.pending.pop(source, None)
        if fut is None:
            if source in self.cancelled_ids:
                return
            self._nondeterministic(
                f"history has {type(e).__name__} for event {source}, which the code has not "
                "scheduled"
            )
            return
        if isinstance(e, ev.ActivityCompleted | ev.SubOrchestrationCompleted):
            fut._resolve(self, e.result)
        elif isinstance(e, ev.TimerFired):
            fut._resolve(self, None)
        elif isinstance(e, ev.ActivityFailed):
            fut._resolve(self, None, ActivityFailedError(e.error))
        elif isinstance(e, ev.SubOrchestrationFailed):
            fut._resolve(self, None, SubOrchestrationFailedError(e.error))

    def _deliver_event(self, e: ev.EventRaised) -> None:
        waiting = self.subscriptions.get(e.name)
        while waiting:
            fut = waiting.popleft()
            if not fut.done:
                self.pending.pop(fut.event_id, None)
                fut._resolve(self, e.data)
                return
        self.buffered.setdefault(e.name, deque()).append(e.data)

    def _nondeterministic(self, message: str) -> None:
        self.fatal = NondeterminismError(
            ev.ErrorDetails("nondeterminism", "NondeterminismError", message)
        )
        raise _Stop

    # ---- operations the context calls ---------------------------------------------------

    def record(
        self, kind: type, matches: Callable[[Any], bool], make: Callable[[], ev.Event]
    ) -> tuple[ev.Event, bool]:
        """Match a scheduling operation against history, or append it: (event, is_new).

        On the replay path nothing is built: the recorded event is compared and returned."""
        if self.cursor < len(self.sched):
            h = self.sched[self.cursor]
            if type(h) is not kind or not matches(h):
                self._nondeterministic(
                    f"code scheduled {_describe(make())} but the history has {_describe(h)} at "
                    f"event {h.event_id}"
                )
            self.cursor += 1
            return h, False
        new = make()
        if self.replaying:
            self._nondeterministic(
                f"code scheduled {_describe(new)} which the history does not have"
            )
        self.created.append(new)
        self.next_id += 1
        return new, True

    def new_activity(self, name: str, input: JSON, session_id: str | None) -> DurableFuture[Any]:
        if not self.replaying:
            encode_json(input)
        e, is_new = self.record(
            ev.ActivityScheduled,
            lambda h: h.name == name and h.session_id == session_id,
            lambda: ev.ActivityScheduled(self.next_id, self.clock, name, input, session_id),
        )
        fut: DurableFuture[Any] = DurableFuture("activity", e.event_id)
        self.pending[e.event_id] = fut
        if is_new:
            assert self.result is not None
            self.result.activities.append(
                ev.ActivityWork(
                    self.instance_id, self.execution_id, e.event_id, name, input, session_id
                )
            )
        return fut

    def new_timer(self, delay_ms: int) -> DurableFuture[Any]:
        fire_at = self.clock + max(0, delay_ms)
        e, is_new = self.record(
            ev.TimerCreated, _always, lambda: ev.TimerCreated(self.next_id, self.clock, fire_at)
        )
        fut: DurableFuture[Any] = DurableFuture("timer", e.event_id)
        self.pending[e.event_id] = fut
        if is_new:
            assert self.result is not None
            self.result.timers.append(
                ev.TimerDue(self.instance_id, self.execution_id, e.event_id, fire_at)
            )
        return fut

    def new_subscription(self, name: str) -> DurableFuture[Any]:
        e, _ = self.record(
            ev.EventSubscribed,
            lambda h: h.name == name,
            lambda: ev.EventSubscribed(self.next_id, self.clock, name),
        )
        fut: DurableFuture[Any] = DurableFuture("event", e.event_id)
        buffered = self.buffered.get(name)
        if buffered:
            fut._resolve(self, buffered.popleft())
        else:
            self.pending[e.event_id] = fut
            self.subscriptions.setdefault(name, deque()).append(fut)
        return fut

    def new_sub_orchestration(
        self, name: str, input: JSON, instance_id: str | None, version: str | None
    ) -> DurableFuture[Any]:
        if not self.replaying:
            encode_json(input)
        child = instance_id or f"{self.instance_id}::sub::{self.next_id}"
        e, is_new = self.record(
            ev.SubOrchestrationScheduled,
            lambda h: h.name == name and (instance_id is None or h.instance_id == instance_id),
            lambda: ev.SubOrchestrationScheduled(
                self.next_id, self.clock, name, child, input, version
            ),
        )
        assert isinstance(e, ev.SubOrchestrationScheduled)
        fut: DurableFuture[Any] = DurableFuture("sub", e.event_id)
        self.pending[e.event_id] = fut
        self.children[e.event_id] = e.instance_id
        if is_new:
            assert self.result is not None
            self.result.messages.append(
                ev.StartOrchestration(
                    e.instance_id,
                    name,
                    version,
                    input,
                    1,
                    ev.ParentRef(self.instance_id, self.execution_id, e.event_id),
                )
            )
        return fut

    def new_detached(self, name: str, instance_id: str, input: JSON, version: str | None) -> None:
        if not self.replaying:
            encode_json(input)
        _, is_new = self.record(
            ev.OrchestrationChained,
            lambda h: h.name == name and h.instance_id == instance_id,
            lambda: ev.OrchestrationChained(
                self.next_id, self.clock, name, instance_id, input, version
            ),
        )
        if is_new:
            assert self.result is not None
            self.result.messages.append(ev.StartOrchestration(instance_id, name, version, input))

    def continue_as_new(self, input: JSON, version: str | None) -> DurableFuture[Never]:
        if not self.replaying:
            encode_json(input)
        self.next_version = version
        self.terminal = (STATUS_CONTINUED, input, None)
        never: DurableFuture[Never] = DurableFuture("never")
        return never

    def as_future(self, item: Any) -> DurableFuture[Any]:
        if isinstance(item, DurableFuture):
            return item
        if isinstance(item, Coroutine):
            done: DurableFuture[Any] = DurableFuture("task")
            self._spawn(item, done)
            return done
        raise TypeError(f"join/select take durox futures or coroutines, not {item!r}")

    def join(self, items: Sequence[Any]) -> DurableFuture[Any]:
        futs = [self.as_future(i) for i in items]
        out: DurableFuture[Any] = DurableFuture("join")
        out.children = futs
        remaining = [len(futs)]

        def on_child(child: DurableFuture[Any]) -> None:
            if out.done:
                return
            if child.error is not None:
                out._resolve(self, None, child.error)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                out._resolve(self, [f.value for f in futs])

        if not futs:
            out._resolve(self, [])
        for f in futs:
            if f.done:
                on_child(f)
            else:
                f._callbacks.append(on_child)
        return out

    def select(self, items: Sequence[Any]) -> DurableFuture[Any]:
        if not items:
            raise ValueError("select needs at least one item")
        futs = [self.as_future(i) for i in items]
        out: DurableFuture[Any] = DurableFuture("select")
        out.children = futs

        def on_child(child: DurableFuture[Any]) -> None:
            if out.done:
                return
            index = futs.index(child)
            for other in futs:
                if other is not child:
                    self.cancel(other)
            if child.error is not None:
                out._resolve(self, None, child.error)
            else:
                out._resolve(self, (index, child.value))

        for f in futs:
            if f.done:
                on_child(f)
                break
        if not out.done:
            for f in futs:
                f._callbacks.append(on_child)
        return out

    def cancel(self, fut: DurableFuture[Any]) -> None:
        """Give up on an outstanding operation; recorded so replay makes the same choice."""
        if fut.done:
            return
        fut.done = True
        fut.cancelled = True
        fut.error = OrchestrationFailedError(
            ev.ErrorDetails("cancelled", "Cancelled", "lost a select")
        )
        fut._callbacks.clear()
        if fut.kind in ("activity", "timer", "event", "sub"):
            self.pending.pop(fut.event_id, None)
            self.cancelled_ids.add(fut.event_id)
            _, is_new = self.record(
                ev.ScheduledCancelled,
                lambda h: h.source_event_id == fut.event_id,
                lambda: ev.ScheduledCancelled(self.next_id, self.clock, fut.event_id),
            )
            if is_new:
                assert self.result is not None
                if fut.kind == "activity":
                    self.result.cancelled_activities.append(fut.event_id)
                elif fut.kind == "sub":
                    self.result.messages.append(
                        ev.CancelRequest(
                            self.children[fut.event_id], f"parent {self.instance_id} cancelled it"
                        )
                    )
        elif fut.kind == "task":
            for task in self.tasks:
                if task.done_future is fut:
                    if task in self.ready:
                        self.ready.remove(task)
                    waiting = task.waiting
                    _close(task)
                    if waiting is not None:
                        self.cancel(waiting)
        else:
            for child in fut.children:
                self.cancel(child)


def _normalize(value: Any) -> JSON:
    """The value as it will read back from the store (tuples become lists, and so on)."""
    return json.loads(encode_json(value))


def _always(_: Any) -> bool:
    return True


def _close(task: _Task) -> None:
    """Close a coroutine we stop driving; a `finally:` that awaits cannot run here."""
    with contextlib.suppress(Exception):
        task.coro.close()


def error_details(exc: BaseException) -> ev.ErrorDetails:
    """How an exception that escaped an orchestration is recorded."""
    if isinstance(exc, OrchestrationFailedError) and not isinstance(
        exc, ActivityFailedError | SubOrchestrationFailedError
    ):
        return exc.details
    if isinstance(exc, PayloadError):
        return ev.ErrorDetails("validation", type(exc).__name__, str(exc))
    return ev.ErrorDetails("application", type(exc).__name__, str(exc))
