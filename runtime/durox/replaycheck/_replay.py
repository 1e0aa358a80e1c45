"""Replaying one recorded execution against today's code, as a worker would, but deciding
nothing: no messages go in, nothing comes out but a verdict.

A turn is acknowledged with everything it decided, so code that is unchanged, fed its own
history with no new messages, schedules nothing and ends (or keeps waiting) exactly where the
history does. Anything else is a divergence: the engine's nondeterminism (an operation that
differs from the recorded one, one too many, one missing), or a different ending (the code
finishes where the history is still running, or waits where the history finished).

Pure: no store, no clock, no event loop, like the engine it drives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from durox.core import events as ev
from durox.core.compat import CURRENT_ENGINE, EngineIdentity
from durox.core.context import OrchestrationContext
from durox.core.replay import Resolver, TurnResult, Unresolved, run_turn
from durox.errors import DuroxError
from durox.status import InstanceStatus

DivergenceKind = Literal["nondeterminism", "ending", "removed_version"]
"""`nondeterminism`: the code scheduled something other than the history holds (or more, or
less); `ending`: it ends differently (finishes where the history runs on, waits where it
ended, fails where it completed); `removed_version`: executions run at a version the app no
longer registers."""

SkipReason = Literal["engine_pin", "unreadable", "not_code_ending"]
"""Why a history was not replayed: `engine_pin`, this engine may not replay it (pinned by a
newer engine, or before a semantic break); `unreadable`, it is not a history the engine can
start from; `not_code_ending`, it ended in a failure the code did not choose (poisoned, or
already nondeterministic)."""

_NOT_THE_CODES = frozenset({"poison", "nondeterminism"})


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where today's code and a recorded history part, each side named."""

    kind: DivergenceKind
    name: str
    version: str
    instance_id: str
    execution_id: int
    event_id: int | None
    """The history event at stake; None when the history has nothing there."""
    code: str
    """What today's code does there."""
    history: str
    """What the history holds there."""
    message: str
    """One line saying all of it (for a nondeterminism divergence, the engine's own words)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A history that was not replayed, and why."""

    reason: SkipReason
    detail: str


def replay_execution(
    events: Sequence[ev.Event],
    *,
    resolve: Resolver,
    instance_id: str,
    execution_id: int,
    engine: EngineIdentity = CURRENT_ENGINE,
) -> Divergence | Skipped | None:
    """Replay one execution's recorded `events` with the code `resolve` finds for it: None if
    the code takes the recorded path to the recorded point, else the divergence (or why the
    history could not be replayed). Runs no activity and writes nothing."""
    if not events or not isinstance(events[0], ev.OrchestrationStarted):
        first = type(events[0]).__name__ if events else "nothing"
        return Skipped("unreadable", f"the history starts with {first}")
    started = events[0]
    ok, why = engine.replays(started.engine_version)
    if not ok:
        return Skipped("engine_pin", why)
    last = events[-1]
    end = last if isinstance(last, ev.TERMINAL_EVENTS) else None
    if isinstance(end, ev.OrchestrationFailed) and end.error.kind in _NOT_THE_CODES:
        return Skipped("not_code_ending", f"ended by {end.error.kind}: {end.error.message}")
    body = list(events[:-1] if end is not None else events)
    if not body:
        return Skipped("unreadable", "the history has nothing before its end")

    def divergence(
        kind: DivergenceKind, event_id: int | None, code: str, history: str, message: str
    ) -> Divergence:
        return Divergence(
            kind,
            started.name,
            started.version,
            instance_id,
            execution_id,
            event_id,
            code,
            history,
            message,
        )

    try:
        result = run_turn(
            instance_id=instance_id,
            execution_id=execution_id,
            history=body,
            messages=[],
            resolve=resolve,
            now_ms=body[-1].ts,
            engine_version=engine.version,
            context_factory=OrchestrationContext,
            max_payload_bytes=None,  # a check of determinism, not of today's payload limit
        )
    except DuroxError as exc:
        return Skipped("unreadable", f"{type(exc).__name__}: {exc}")
    if isinstance(result, Unresolved):
        return divergence(
            "removed_version",
            1,
            f"registers no {started.name}@{started.version}",
            f"OrchestrationStarted at {started.version}",
            f"no code for {started.name}@{started.version}, which this execution runs",
        )
    if not isinstance(result, TurnResult):  # Dropped: only a history-less turn drops
        return Skipped("unreadable", "the engine found no execution to replay")
    m = result.mismatch
    if m is not None:
        message = result.error.message if result.error is not None else f"{m.code} / {m.history}"
        return divergence("nondeterminism", m.event_id, m.code, m.history, message)
    recorded = _recorded_status(end)
    if result.status == recorded:
        return None
    code = _what_the_code_does(result)
    if end is None:
        at = len(body) + 1
        history = f"nothing after event {len(body)}: the execution is still running"
    else:
        at = end.event_id
        history = f"{_describe_end(end)} at event {end.event_id}"
    return divergence("ending", at, code, history, f"code {code}, but the history has {history}")


def _recorded_status(end: ev.Event | None) -> InstanceStatus:
    if end is None:
        return InstanceStatus.RUNNING
    if isinstance(end, ev.OrchestrationCompleted):
        return InstanceStatus.COMPLETED
    if isinstance(end, ev.OrchestrationContinuedAsNew):
        return InstanceStatus.CONTINUED_AS_NEW
    assert isinstance(end, ev.OrchestrationFailed)
    return InstanceStatus.CANCELLED if end.error.kind == "cancelled" else InstanceStatus.FAILED


def _what_the_code_does(result: TurnResult) -> str:
    status = result.status
    if status == InstanceStatus.RUNNING:
        return "waits for more"
    if status == InstanceStatus.COMPLETED:
        return "completes"
    if status == InstanceStatus.CONTINUED_AS_NEW:
        return "continues as new"
    if status == InstanceStatus.CANCELLED:
        return "is cancelled"
    error = result.error
    return "fails" if error is None else f"fails with {error.type}: {error.message}"


def _describe_end(end: ev.Event) -> str:
    if isinstance(end, ev.OrchestrationFailed):
        return f"OrchestrationFailed ({end.error.type}: {end.error.message})"
    return type(end).__name__
