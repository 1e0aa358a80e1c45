"""The durable operations an orchestration's context calls (part of `durox.core.replay`).

Each scheduling operation is matched one for one against the recorded scheduling events
(`record`); a new one is appended and its work (an activity, a timer, a message) queued on the
turn's result. `join`, `select` and `cancel` compose futures on the turn's own scheduler.

A match compares what decides the work's result, not only its name: an activity by name,
session and input, a sub-orchestration by name, instance and input, a detached start by name,
instance and input (docs/versioning.md). Code that now passes another input would otherwise
replay silently with the result of the old one. Inputs are compared as JSON values
(`codec.same_payload`), so dict key order does not count and the same float always matches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Never

from durox.core import events as ev
from durox.core._futures import DurableFuture, StopTurn, TurnTask, close_task
from durox.core._messages import describe
from durox.core._outcome import JSON, STATUS_CONTINUED, Mismatch, TurnResult
from durox.core.codec import check_payload, same_payload, short_json
from durox.errors import NondeterminismError, OrchestrationFailedError
from durox.status import InstanceStatus


class _NoInput:
    """The input of an operation that carries none (a timer, a subscription, a cancellation)."""


NO_INPUT = _NoInput()


class Operations:
    """The operations half of a turn (`_Turn` is the other): what a context may ask of it."""

    instance_id: str
    execution_id: int
    replaying: bool
    clock: int
    cursor: int
    sched: list[ev.Event]
    next_id: int
    created: list[ev.Event]
    result: TurnResult | None
    terminal: tuple[InstanceStatus, JSON, ev.ErrorDetails | None] | None
    next_version: str | None
    fatal: NondeterminismError | None
    mismatch: Mismatch | None
    ready: deque[TurnTask]
    tasks: list[TurnTask]
    pending: dict[int, DurableFuture[Any]]
    cancelled_ids: set[int]
    subscriptions: dict[str, deque[DurableFuture[Any]]]
    buffered: dict[str, deque[JSON]]
    children: dict[int, str]
    custom_status: JSON
    max_payload_bytes: int | None

    def _spawn(self, awaitable: Awaitable[Any], done: DurableFuture[Any]) -> TurnTask:
        if not isinstance(awaitable, Coroutine):
            raise TypeError("orchestrations must be `async def` functions")
        task = TurnTask(awaitable, done)
        self.tasks.append(task)
        self.ready.append(task)
        return task

    def _nondeterministic(self, message: str, mismatch: Mismatch) -> None:
        self.mismatch = mismatch
        self.fatal = NondeterminismError(
            ev.ErrorDetails("nondeterminism", "NondeterminismError", message)
        )
        raise StopTurn

    def record(
        self,
        kind: type,
        matches: Callable[[Any], bool],
        make: Callable[[], ev.Event],
        input: JSON | _NoInput = NO_INPUT,
    ) -> tuple[ev.Event, bool]:
        """Match a scheduling operation against history, or append it: (event, is_new).

        `matches` compares the operation's identity (its name, session or instance); an
        operation that carries an `input` must pass the recorded one too. On the replay path
        nothing is built: the recorded event is compared and returned."""
        if self.cursor < len(self.sched):
            h = self.sched[self.cursor]
            if type(h) is not kind or not matches(h):
                made = describe(make())
                self._nondeterministic(
                    f"code scheduled {made} but the history has {describe(h)} at "
                    f"event {h.event_id}",
                    Mismatch(h.event_id, f"scheduled {made}", describe(h)),
                )
            recorded: Any = h  # of `kind`, which carries an input when the operation does
            if not isinstance(input, _NoInput) and not same_payload(input, recorded.input):
                what = describe(h)
                ours, theirs = short_json(input), short_json(recorded.input)
                self._nondeterministic(
                    f"code scheduled {what} with input {ours} but the history has it with "
                    f"input {theirs} at event {h.event_id}",
                    Mismatch(
                        h.event_id,
                        f"scheduled {what} with input {ours}",
                        f"{what} with input {theirs}",
                    ),
                )
            self.cursor += 1
            return h, False
        new = make()
        if self.replaying:
            self._nondeterministic(
                f"code scheduled {describe(new)} which the history does not have",
                Mismatch(None, f"scheduled {describe(new)}", "nothing scheduled there"),
            )
        self.created.append(new)
        self.next_id += 1
        return new, True

    def _check_new_payload(self, value: JSON, what: str) -> None:
        """Hold a payload the code hands over now to JSON and the size limit (one replayed from
        history was held to them when it was recorded)."""
        if not self.replaying:
            check_payload(value, self.max_payload_bytes, what)

    def new_activity(self, name: str, input: JSON, session_id: str | None) -> DurableFuture[Any]:
        self._check_new_payload(input, f"the input of activity {name!r}")
        e, is_new = self.record(
            ev.ActivityScheduled,
            lambda h: h.name == name and h.session_id == session_id,
            lambda: ev.ActivityScheduled(self.next_id, self.clock, name, input, session_id),
            input,
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
            ev.TimerCreated, always, lambda: ev.TimerCreated(self.next_id, self.clock, fire_at)
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
        self._check_new_payload(input, f"the input of sub-orchestration {name!r}")
        child = instance_id or f"{self.instance_id}::sub::{self.next_id}"
        e, is_new = self.record(
            ev.SubOrchestrationScheduled,
            lambda h: h.name == name and (instance_id is None or h.instance_id == instance_id),
            lambda: ev.SubOrchestrationScheduled(
                self.next_id, self.clock, name, child, input, version
            ),
            input,
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
        self._check_new_payload(input, f"the input of orchestration {name!r}")
        _, is_new = self.record(
            ev.OrchestrationChained,
            lambda h: h.name == name and h.instance_id == instance_id,
            lambda: ev.OrchestrationChained(
                self.next_id, self.clock, name, instance_id, input, version
            ),
            input,
        )
        if is_new:
            assert self.result is not None
            self.result.messages.append(ev.StartOrchestration(instance_id, name, version, input))

    def set_custom_status(self, value: JSON) -> None:
        self._check_new_payload(value, "the custom status")
        self.custom_status = value

    def continue_as_new(self, input: JSON, version: str | None) -> DurableFuture[Never]:
        self._check_new_payload(input, "the continue_as_new input")
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
                    close_task(task)
                    if waiting is not None:
                        self.cancel(waiting)
        else:
            for child in fut.children:
                self.cancel(child)


def always(_: Any) -> bool:
    return True
