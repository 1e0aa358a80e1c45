"""History events and queue messages: the vocabulary shared by the engine and the stores.

A history is the append-only record of one execution; replaying it through the orchestration
function must reproduce the same decisions. Events are small frozen records so that a turn can
compare what the code asks for with what the history holds, cheaply and exactly. Messages are
what travels through the queues between turns; they become events when a turn accepts them.

The records are `msgspec` structs rather than dataclasses because a cold replay spends most of
its time turning stored JSON into events: msgspec decodes a whole history straight into typed,
validated structs several times faster than parsing to dicts and constructing, and writes the
same JSON as before (a ``"k"`` tag naming the class, then every field in order), so stored
histories keep their form. Structs are left out of the cycle collector (``gc=False``): they hold
only scalars and JSON payloads, which cannot refer back to them.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

JSON: TypeAlias = Any
"""A JSON-compatible value (None, bool, int, float, str, list, dict)."""


class _Value(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A part of an event or message, encoded as a plain object without a kind tag."""


class _Record(
    msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True, tag_field="k", tag=True
):
    """An event or message: encoded as an object whose ``"k"`` names its class."""


class ErrorDetails(_Value, frozen=True):
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


class ParentRef(_Value, frozen=True):
    """Where a sub-orchestration reports its outcome."""

    instance_id: str
    execution_id: int
    event_id: int


# --- history events -------------------------------------------------------------------------


class OrchestrationStarted(_Record, frozen=True):
    event_id: int
    ts: int
    name: str
    version: str
    input: JSON
    engine_version: str
    parent: ParentRef | None = None


class OrchestrationCompleted(_Record, frozen=True):
    event_id: int
    ts: int
    output: JSON


class OrchestrationFailed(_Record, frozen=True):
    event_id: int
    ts: int
    error: ErrorDetails


class OrchestrationContinuedAsNew(_Record, frozen=True):
    event_id: int
    ts: int
    input: JSON
    version: str | None


class OrchestrationCancelRequested(_Record, frozen=True):
    event_id: int
    ts: int
    reason: str


class ActivityScheduled(_Record, frozen=True):
    event_id: int
    ts: int
    name: str
    input: JSON
    session_id: str | None = None


class ActivityCompleted(_Record, frozen=True):
    event_id: int
    ts: int
    source_event_id: int
    result: JSON


class ActivityFailed(_Record, frozen=True):
    event_id: int
    ts: int
    source_event_id: int
    error: ErrorDetails


class TimerCreated(_Record, frozen=True):
    event_id: int
    ts: int
    fire_at: int


class TimerFired(_Record, frozen=True):
    event_id: int
    ts: int
    source_event_id: int


class EventSubscribed(_Record, frozen=True):
    event_id: int
    ts: int
    name: str


class EventRaised(_Record, frozen=True):
    event_id: int
    ts: int
    name: str
    data: JSON


class SubOrchestrationScheduled(_Record, frozen=True):
    event_id: int
    ts: int
    name: str
    instance_id: str
    input: JSON
    version: str | None


class SubOrchestrationCompleted(_Record, frozen=True):
    event_id: int
    ts: int
    source_event_id: int
    result: JSON


class SubOrchestrationFailed(_Record, frozen=True):
    event_id: int
    ts: int
    source_event_id: int
    error: ErrorDetails


class OrchestrationChained(_Record, frozen=True):
    """A detached orchestration started by this one (fire and forget)."""

    event_id: int
    ts: int
    name: str
    instance_id: str
    input: JSON
    version: str | None


class ScheduledCancelled(_Record, frozen=True):
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


class StartOrchestration(_Record, frozen=True):
    """Start an execution: a new instance (execution 1) or the next one after continue-as-new."""

    instance_id: str
    name: str
    version: str | None
    input: JSON
    execution_id: int = 1
    parent: ParentRef | None = None


class ActivityResult(_Record, frozen=True):
    instance_id: str
    execution_id: int
    event_id: int
    result: JSON = None
    error: ErrorDetails | None = None


class TimerDue(_Record, frozen=True):
    instance_id: str
    execution_id: int
    event_id: int
    fire_at: int


class ExternalEvent(_Record, frozen=True):
    instance_id: str
    name: str
    data: JSON


class SubOrchestrationResult(_Record, frozen=True):
    instance_id: str
    execution_id: int
    event_id: int
    result: JSON = None
    error: ErrorDetails | None = None


class CancelRequest(_Record, frozen=True):
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


class ActivityWork(_Record, frozen=True):
    """One activity to run, as the worker queue holds it."""

    instance_id: str
    execution_id: int
    event_id: int
    name: str
    input: JSON
    session_id: str | None = None
