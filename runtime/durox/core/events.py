"""History events and queue messages: the vocabulary shared by the engine and the stores.

A history is the append-only record of one execution; replaying it through the orchestration
function must reproduce the same decisions. Events are small frozen records so that a turn can
compare what the code asks for with what the history holds, cheaply and exactly. Messages are
what travels through the queues between turns; they become events when a turn accepts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A JSON-compatible value (None, bool, int, float, str, list, dict)."""


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """Why something failed, in a form that survives a round trip through the store.

    `kind` is one of: ``application`` (user code raised), ``nondeterminism``, ``poison``
    (retried past ``max_attempts``), ``cancelled``, ``timeout``, ``validation`` (input or
    output failed its declared type), ``configuration`` (nothing registered to handle it).
    """

    kind: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParentRef:
    """Where a sub-orchestration reports its outcome."""

    instance_id: str
    execution_id: int
    event_id: int


# --- history events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrchestrationStarted:
    event_id: int
    ts: int
    name: str
    version: str
    input: JSON
    engine_version: str
    parent: ParentRef | None = None


@dataclass(frozen=True, slots=True)
class OrchestrationCompleted:
    event_id: int
    ts: int
    output: JSON


@dataclass(frozen=True, slots=True)
class OrchestrationFailed:
    event_id: int
    ts: int
    error: ErrorDetails


@dataclass(frozen=True, slots=True)
class OrchestrationContinuedAsNew:
    event_id: int
    ts: int
    input: JSON
    version: str | None


@dataclass(frozen=True, slots=True)
class OrchestrationCancelRequested:
    event_id: int
    ts: int
    reason: str


@dataclass(frozen=True, slots=True)
class ActivityScheduled:
    event_id: int
    ts: int
    name: str
    input: JSON
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityCompleted:
    event_id: int
    ts: int
    source_event_id: int
    result: JSON


@dataclass(frozen=True, slots=True)
class ActivityFailed:
    event_id: int
    ts: int
    source_event_id: int
    error: ErrorDetails


@dataclass(frozen=True, slots=True)
class TimerCreated:
    event_id: int
    ts: int
    fire_at: int


@dataclass(frozen=True, slots=True)
class TimerFired:
    event_id: int
    ts: int
    source_event_id: int


@dataclass(frozen=True, slots=True)
class EventSubscribed:
    event_id: int
    ts: int
    name: str


@dataclass(frozen=True, slots=True)
class EventRaised:
    event_id: int
    ts: int
    name: str
    data: JSON


@dataclass(frozen=True, slots=True)
class SubOrchestrationScheduled:
    event_id: int
    ts: int
    name: str
    instance_id: str
    input: JSON
    version: str | None


@dataclass(frozen=True, slots=True)
class SubOrchestrationCompleted:
    event_id: int
    ts: int
    source_event_id: int
    result: JSON


@dataclass(frozen=True, slots=True)
class SubOrchestrationFailed:
    event_id: int
    ts: int
    source_event_id: int
    error: ErrorDetails


@dataclass(frozen=True, slots=True)
class OrchestrationChained:
    """A detached orchestration started by this one (fire and forget)."""

    event_id: int
    ts: int
    name: str
    instance_id: str
    input: JSON
    version: str | None


@dataclass(frozen=True, slots=True)
class ScheduledCancelled:
    """An outstanding operation this orchestration gave up on (a `select` loser, a cancel)."""

    event_id: int
    ts: int
    source_event_id: int


Event: TypeAlias = (
    OrchestrationStarted
    | OrchestrationCompleted
    | OrchestrationFailed
    | OrchestrationContinuedAsNew
    | OrchestrationCancelRequested
    | ActivityScheduled
    | ActivityCompleted
    | ActivityFailed
    | TimerCreated
    | TimerFired
    | EventSubscribed
    | EventRaised
    | SubOrchestrationScheduled
    | SubOrchestrationCompleted
    | SubOrchestrationFailed
    | OrchestrationChained
    | ScheduledCancelled
)

SCHEDULING_EVENTS: frozenset[type] = frozenset(
    (
        ActivityScheduled,
        TimerCreated,
        EventSubscribed,
        SubOrchestrationScheduled,
        OrchestrationChained,
        ScheduledCancelled,
    )
)
"""Events the orchestration code itself produces; replay matches them one for one."""

TERMINAL_EVENTS: tuple[type, ...] = (
    OrchestrationCompleted,
    OrchestrationFailed,
    OrchestrationContinuedAsNew,
)


# --- queue messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartOrchestration:
    """Start an execution: a new instance (execution 1) or the next one after continue-as-new."""

    instance_id: str
    name: str
    version: str | None
    input: JSON
    execution_id: int = 1
    parent: ParentRef | None = None


@dataclass(frozen=True, slots=True)
class ActivityResult:
    instance_id: str
    execution_id: int
    event_id: int
    result: JSON = None
    error: ErrorDetails | None = None


@dataclass(frozen=True, slots=True)
class TimerDue:
    instance_id: str
    execution_id: int
    event_id: int
    fire_at: int


@dataclass(frozen=True, slots=True)
class ExternalEvent:
    instance_id: str
    name: str
    data: JSON


@dataclass(frozen=True, slots=True)
class SubOrchestrationResult:
    instance_id: str
    execution_id: int
    event_id: int
    result: JSON = None
    error: ErrorDetails | None = None


@dataclass(frozen=True, slots=True)
class CancelRequest:
    instance_id: str
    reason: str


Message: TypeAlias = (
    StartOrchestration
    | ActivityResult
    | TimerDue
    | ExternalEvent
    | SubOrchestrationResult
    | CancelRequest
)


@dataclass(frozen=True, slots=True)
class ActivityWork:
    """One activity to run, as the worker queue holds it."""

    instance_id: str
    execution_id: int
    event_id: int
    name: str
    input: JSON
    session_id: str | None = None
