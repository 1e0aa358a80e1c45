"""Failing an instance for good: the history a poisoned turn appends, decided without a store.

The runtime poisons an instance when its messages cannot be processed (retried past
`max_attempts`, a history that cannot be read, no handler anywhere it was tried). What that
appends is engine knowledge: which execution fails, the ids its new events take, whether the
failure starts an execution that never ran, and what the parent of a sub-orchestration is told.
It is decided here, purely; the runtime only logs it and acknowledges it.
"""

from __future__ import annotations

from collections.abc import Sequence

from durox.core import events as ev
from durox.core.replay import STATUS_FAILED, TurnResult


def poison_turn(
    reason: str,
    *,
    instance_id: str,
    running: bool,
    execution_id: int,
    history: Sequence[ev.Event],
    history_length: int,
    messages: Sequence[ev.Message],
    name: str | None,
    version: str | None,
    pinned_engine_version: str | None,
    engine_version: str,
    now_ms: int,
) -> TurnResult | None:
    """Fail the instance for good, appending to (never rewriting) its history.

    A running execution (`running`, with `name`, `version` and its pinned engine from the
    instance record) gets `OrchestrationFailed` after its last event (`history_length`, which
    holds even when the history itself could not be decoded and `history` is empty). Otherwise a
    `StartOrchestration` for the next execution among `messages` becomes an execution that
    starts and fails at once, pinned to `engine_version`. With neither there is nothing to fail:
    None, and the messages are only to be dropped. Either way a sub-orchestration's parent is
    told of the failure (in the result's `messages`).

    The result is a `TurnResult` like any turn's, failed, with no output or work. Its
    `engine_version` is the execution's pin, which is None for an execution written before
    pinning existed.
    """
    error = ev.ErrorDetails("poison", "PoisonMessage", reason)
    turn: TurnResult
    if running:
        assert name is not None
        assert version is not None
        started = history[0] if history else None
        turn = TurnResult(
            instance_id=instance_id,
            execution_id=execution_id,
            name=name,
            version=version,
            engine_version=pinned_engine_version,
            parent=started.parent if isinstance(started, ev.OrchestrationStarted) else None,
            new_events=[ev.OrchestrationFailed(history_length + 1, now_ms, error)],
            status=STATUS_FAILED,
            error=error,
        )
    else:
        start = next(
            (
                m
                for m in messages
                if isinstance(m, ev.StartOrchestration) and m.execution_id == execution_id + 1
            ),
            None,
        )
        if start is None:
            return None
        start_version = start.version or "0.0.0"
        turn = TurnResult(
            instance_id=instance_id,
            execution_id=start.execution_id,
            name=start.name,
            version=start_version,
            engine_version=engine_version,
            parent=start.parent,
            new_events=[
                ev.OrchestrationStarted(
                    1, now_ms, start.name, start_version, start.input, engine_version, start.parent
                ),
                ev.OrchestrationFailed(2, now_ms, error),
            ],
            status=STATUS_FAILED,
            error=error,
            started_execution=True,
        )
    if turn.parent is not None:
        p = turn.parent
        turn.messages.append(
            ev.SubOrchestrationResult(p.instance_id, p.execution_id, p.event_id, None, error)
        )
    return turn
