"""One orchestration turn: (history, new messages) -> (new events, actions, outcome).

The orchestration is an ordinary `async def`, but it never runs on an asyncio loop: the turn
drives its coroutine by hand, and every durable operation is a `DurableFuture` that only the
history can complete. Each turn replays the function from the first event, matching each
operation the code schedules against the recorded scheduling events in order, and delivering
recorded completions in the order they were recorded. That ordering is the whole determinism
argument: the same code fed the same history takes the same path, and any divergence is caught
at the first operation that differs and reported naming both sides.

A turn may also hand back the execution suspended where it stopped (`run_turn_keeping`), and
the next turn then resumes it with its new messages alone (`Suspended.resume`): the code has
already taken the path a replay would retrace, so it decides the same at the cost of the new
events. Whoever keeps a `Suspended` must know the stored history is still the one it stands
for (the runtime's instance cache asks the store for that proof).

Composition (`join`, `select`) runs coroutine branches as extra tasks on the same hand-driven
scheduler, in creation order, so interleaving is a function of the history alone.

This module is the turn itself: set-up, replay, deliveries and the outcome. Its parts live in
private modules and are re-exported here: futures and tasks (`_futures`), what a turn returns
(`_outcome`), messages becoming events (`_messages`) and the operations a context calls
(`_operations`).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from durox.core import events as ev
from durox.core._futures import DurableFuture, StopTurn, TurnTask, close_task
from durox.core._messages import Ledger, accept_into, describe
from durox.core._operations import Operations
from durox.core._outcome import (
    JSON,
    STATUS_CANCELLED,
    STATUS_COMPLETED,
    STATUS_CONTINUED,
    STATUS_FAILED,
    STATUS_RUNNING,
    Dropped,
    Handler,
    Mismatch,
    Resolver,
    TurnResult,
    Unresolved,
)
from durox.core.codec import DEFAULT_MAX_PAYLOAD_BYTES, check_payload
from durox.errors import (
    ActivityFailedError,
    HistoryDecodeError,
    NondeterminismError,
    OrchestrationFailedError,
    PayloadError,
    SubOrchestrationFailedError,
)
from durox.status import InstanceStatus

__all__ = [
    "JSON",
    "STATUS_CANCELLED",
    "STATUS_COMPLETED",
    "STATUS_CONTINUED",
    "STATUS_FAILED",
    "STATUS_RUNNING",
    "Dropped",
    "DurableFuture",
    "Handler",
    "Mismatch",
    "Resolver",
    "Suspended",
    "TurnResult",
    "Unresolved",
    "error_details",
    "run_turn",
    "run_turn_keeping",
]


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
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
) -> TurnResult | Unresolved | Dropped:
    """Run one turn. `execution_id` is the instance's current execution (0 if none yet).
    Payloads the code hands over in this turn (inputs, output, custom status) are held to
    `max_payload_bytes` of JSON (None: no limit); replayed ones are not checked again."""
    return _Turn(
        instance_id,
        execution_id,
        history,
        messages,
        resolve,
        now_ms,
        engine_version,
        context_factory,
        max_payload_bytes,
    ).run(keep=False)[0]


def run_turn_keeping(
    *,
    instance_id: str,
    execution_id: int,
    history: Sequence[ev.Event],
    messages: Sequence[ev.Message],
    resolve: Resolver,
    now_ms: int,
    engine_version: str,
    context_factory: Callable[[_Turn], Any],
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
) -> tuple[TurnResult | Unresolved | Dropped, Suspended | None]:
    """`run_turn`, also handing back the execution suspended after the turn (None when it
    ended, failed or cannot go on), to `Suspended.resume` with the next turn's messages."""
    return _Turn(
        instance_id,
        execution_id,
        history,
        messages,
        resolve,
        now_ms,
        engine_version,
        context_factory,
        max_payload_bytes,
    ).run(keep=True)


class Suspended:
    """A running execution as its last turn left it: the live coroutines, the futures they
    await, and what `accept` needs to know of the history (a `Ledger`).

    Resuming it with the next turn's messages decides exactly what a turn replaying the whole
    history would (the same events reach the same code in the same order: the replayed
    prefix is the path this object already took), at the cost of the new events alone. That
    holds only if the history it stands for is still the stored one: the caller must prove so
    first. A `Suspended` is used once: `resume` hands back its successor, and `close` drops it.
    """

    __slots__ = ("_turn",)

    def __init__(self, turn: _Turn) -> None:
        self._turn: _Turn | None = turn

    @property
    def execution_id(self) -> int:
        assert self._turn is not None
        return self._turn.execution_id

    @property
    def history_length(self) -> int:
        """The highest event id of the history this state stands for."""
        assert self._turn is not None
        return self._turn.next_id - 1

    def resume(
        self, messages: Sequence[ev.Message], now_ms: int
    ) -> tuple[TurnResult, Suspended | None]:
        """Run the next turn on the live state."""
        turn, self._turn = self._turn, None
        if turn is None:
            raise RuntimeError("this suspended execution was already resumed or closed")
        return turn.resume(messages, now_ms)

    def close(self) -> None:
        """Drop the state, closing its coroutines."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn._close_tasks()


class _Turn(Operations):
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
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.history = history
        self.messages = messages
        self.resolve = resolve
        self.now_ms = now_ms
        self.engine_version = engine_version
        self.context_factory = context_factory
        self.ready: deque[TurnTask] = deque()
        self.tasks: list[TurnTask] = []
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
        self.mismatch: Mismatch | None = None
        self.ctx: Any = None
        self.ledger = Ledger()

    # ---- set-up -----------------------------------------------------------------------

    def run(self, *, keep: bool) -> tuple[TurnResult | Unresolved | Dropped, Suspended | None]:
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
                return (
                    Dropped(
                        [
                            f"{type(m).__name__} for an instance with no running execution"
                            for m in self.messages
                        ]
                    ),
                    None,
                )
            found = self.resolve(start.name, start.version, self.instance_id)
            if found is None:
                return Unresolved(start.name, start.version), None
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
            found = self.resolve(first.name, first.version, self.instance_id)
            if found is None:
                return Unresolved(first.name, first.version), None
            version, handler = found
            baseline = len(history)
            messages = list(self.messages)
        started = history[0]
        assert isinstance(started, ev.OrchestrationStarted)
        self.started = started
        self.handler = handler
        self.history = ()  # held no longer than the turn: a kept state needs only the ledger
        self.messages = ()

        self.ledger = Ledger.of(history)
        incoming = accept_into(
            self.ledger,
            len(history) + 1,
            messages,
            dropped,
            execution_id=self.execution_id,
            now_ms=self.now_ms,
        )
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
        return self._conclude(
            all_events, baseline, [started] if started_now else [], incoming, keep
        )

    def resume(
        self, messages: Sequence[ev.Message], now_ms: int
    ) -> tuple[TurnResult, Suspended | None]:
        """The next turn on the state a kept turn left: only `messages` are new."""
        dropped: list[str] = []
        base = self.next_id - 1
        self.now_ms = now_ms
        self.created = []
        self.traces = []
        self.sched = []
        self.cursor = 0
        incoming = accept_into(
            self.ledger,
            base + 1,
            messages,
            dropped,
            execution_id=self.execution_id,
            now_ms=now_ms,
        )
        self.next_id = base + len(incoming) + 1
        started = self.started
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
        )
        res, kept = self._conclude(incoming, 0, [], incoming, True)
        assert isinstance(res, TurnResult)
        return res, kept

    def _conclude(
        self,
        events: list[ev.Event],
        baseline: int,
        started: list[ev.Event],
        incoming: list[ev.Event],
        keep: bool,
    ) -> tuple[TurnResult, Suspended | None]:
        """Drive the code through `events` (those before `baseline` replayed), then say what
        the turn decided, keeping the live state when asked and the execution goes on."""
        suspend = False
        try:
            self._replay(events, baseline)
        except StopTurn:
            pass
        finally:
            suspend = keep and self.fatal is None and self.terminal is None
            if not suspend:
                self._close_tasks()
        res = self.result
        assert res is not None
        problem: str | None = None
        if self.fatal is not None:
            problem = self.fatal.details.message
        elif self.cursor < len(self.sched):
            extra = self.sched[self.cursor]
            problem = (
                f"history has {describe(extra)} at event {extra.event_id} which the code "
                "no longer schedules"
            )
            self.mismatch = Mismatch(extra.event_id, "schedules nothing there", describe(extra))
        res.mismatch = self.mismatch if problem is not None else None
        numbered = self.next_id - len(self.created)  # the id after the incoming events
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
        res.new_events.extend(started)
        res.new_events.extend(incoming)
        res.new_events.extend(self.created)
        res.custom_status = self.custom_status
        res.traces = self.traces
        self.terminal_event_id = numbered + len(self.created)
        if self.terminal is not None:
            self._finish(res, self.terminal)
        if not suspend or self.terminal is not None:
            if suspend:
                self._close_tasks()
            return res, None
        self.ledger.note(self.created)
        self.sched = []
        self.created = []
        self.result = None
        return res, Suspended(self)

    # ---- replay -----------------------------------------------------------------------

    def _replay(self, events: list[ev.Event], baseline: int) -> None:
        ctx = self.ctx
        if ctx is None:
            ctx = self.ctx = self.context_factory(self)
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
                raise StopTurn
            else:
                self._deliver_completion(e)
            self._run_ready()
        self.replaying = False

    def _run_ready(self) -> None:
        ready = self.ready
        while ready:
            task = ready.popleft()
            try:
                yielded = task.coro.send(None)
            except StopIteration as stop:
                task.done_future._resolve(self, stop.value)
            except StopTurn:
                raise
            except Exception as exc:
                if self.fatal is not None:
                    raise StopTurn from None
                task.done_future._resolve(self, None, exc)
            else:
                if self.fatal is not None:
                    raise StopTurn
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
                raise StopTurn

    def _root_done(self, fut: DurableFuture[Any]) -> None:
        if self.terminal is not None:
            return
        if fut.error is None:
            try:  # the value as it reads back from the store (tuples become lists, ...)
                value = json.loads(check_payload(fut.value, self.max_payload_bytes, "the output"))
            except PayloadError as exc:
                self.terminal = (
                    STATUS_FAILED,
                    None,
                    ev.ErrorDetails("validation", type(exc).__name__, f"output: {exc}"),
                )
                return
            self.terminal = (STATUS_COMPLETED, value, None)
        else:
            self.terminal = (STATUS_FAILED, None, error_details(fut.error))

    def _close_tasks(self) -> None:
        for task in self.tasks:
            close_task(task)

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
                "scheduled",
                Mismatch(
                    e.event_id,
                    f"has not scheduled event {source}",
                    f"{type(e).__name__} for event {source}",
                ),
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


def error_details(exc: BaseException) -> ev.ErrorDetails:
    """How an exception that escaped an orchestration is recorded."""
    if isinstance(exc, OrchestrationFailedError) and not isinstance(
        exc, ActivityFailedError | SubOrchestrationFailedError
    ):
        return exc.details
    if isinstance(exc, PayloadError):
        return ev.ErrorDetails("validation", type(exc).__name__, str(exc))
    return ev.ErrorDetails("application", type(exc).__name__, str(exc))
