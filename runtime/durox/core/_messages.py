"""A turn's messages become history events; stale and duplicate ones are dropped.

Part of `durox.core.replay`.
"""

from __future__ import annotations

from collections.abc import Sequence

from durox.core import events as ev


def describe(e: ev.Event) -> str:
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


COMPLETION_FOR: dict[type, type] = {
    ev.ActivityCompleted: ev.ActivityScheduled,
    ev.ActivityFailed: ev.ActivityScheduled,
    ev.TimerFired: ev.TimerCreated,
    ev.SubOrchestrationCompleted: ev.SubOrchestrationScheduled,
    ev.SubOrchestrationFailed: ev.SubOrchestrationScheduled,
}


_AWAITED = frozenset(COMPLETION_FOR.values())


class Ledger:
    """Which scheduled operations of an execution still await their completion, and whether a
    cancellation was requested: all `accept` needs of the history. A cold turn builds it from
    the history; a resumed turn keeps it up to date, so it never rereads the history."""

    __slots__ = ("cancel_requested", "open")

    def __init__(self) -> None:
        self.open: dict[int, type] = {}
        self.cancel_requested = False

    @classmethod
    def of(cls, history: Sequence[ev.Event]) -> Ledger:
        ledger = cls()
        ledger.note(history)
        return ledger

    def note(self, events: Sequence[ev.Event]) -> None:
        """Take in events appended to the history, in order."""
        open_ = self.open
        for e in events:
            t = type(e)
            if t in _AWAITED:
                open_[e.event_id] = t
            elif t is ev.ScheduledCancelled or t in COMPLETION_FOR:
                open_.pop(e.source_event_id, None)  # type: ignore[union-attr]
            elif t is ev.OrchestrationCancelRequested:
                self.cancel_requested = True


def accept(
    history: list[ev.Event],
    messages: Sequence[ev.Message],
    dropped: list[str],
    *,
    execution_id: int,
    now_ms: int,
) -> list[ev.Event]:
    """Turn this batch's messages into history events, dropping stale and duplicate ones."""
    return accept_into(
        Ledger.of(history),
        len(history) + 1,
        messages,
        dropped,
        execution_id=execution_id,
        now_ms=now_ms,
    )


def accept_into(
    ledger: Ledger,
    next_id: int,
    messages: Sequence[ev.Message],
    dropped: list[str],
    *,
    execution_id: int,
    now_ms: int,
) -> list[ev.Event]:
    """`accept` against a `Ledger` (updated with what it accepts); `next_id` numbers the first
    new event."""
    open_ = ledger.open
    out: list[ev.Event] = []
    ts = now_ms
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
            if m.execution_id != execution_id:
                dropped.append(f"{type(m).__name__} for execution {m.execution_id}")
                continue
            if open_.get(m.event_id) is not want:
                dropped.append(f"{type(m).__name__} for event {m.event_id}: not awaited")
                continue
            del open_[m.event_id]
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
            if ledger.cancel_requested:
                dropped.append("duplicate cancel request")
                continue
            ledger.cancel_requested = True
            new = ev.OrchestrationCancelRequested(next_id, ts, m.reason)
        else:
            dropped.append(f"StartOrchestration for execution {m.execution_id}: already started")
            continue
        out.append(new)
        next_id += 1
    return out
