"""The records that cross the store seam: what a fetch hands the runtime, what a turn commits,
and what the read side reports. Plain frozen dataclasses (mutable only where a store fills an
item in), so the operator's planner and other readers can import them without a driver or the
runtime; `durox.providers._base` re-exports them beside the two halves of the seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from durox.core import events as ev
from durox.status import InstanceStatus

JSON = ev.JSON


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """What a caller can see of an instance; `orchestration_version` is the current execution's."""

    instance_id: str
    orchestration_name: str
    orchestration_version: str
    current_execution_id: int
    status: InstanceStatus
    output: JSON
    created_at: datetime
    updated_at: datetime
    parent_instance_id: str | None = None
    error: ev.ErrorDetails | None = None
    custom_status: JSON = None
    pinned_engine_version: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    instance_id: str
    execution_id: int
    orchestration_version: str
    status: InstanceStatus
    output: JSON
    event_count: int
    engine_version: str | None
    started_at: datetime
    completed_at: datetime | None


@dataclass(slots=True)
class OrchestrationItem:
    """An instance's pending messages, locked together with its current history."""

    instance_id: str
    execution_id: int
    """The instance's current execution, 0 when the instance does not exist yet."""
    history: list[ev.Event]
    """The current execution's events if it is running, else empty."""
    history_length: int
    """The highest event id in the current execution's history, read without decoding."""
    messages: list[ev.Message]
    lock_token: str
    attempt_count: int
    orchestration_name: str | None = None
    orchestration_version: str | None = None
    status: InstanceStatus | None = None
    pinned_engine_version: str | None = None
    history_error: str | None = None
    """Set when the history (or a message) could not be decoded; history is then empty."""
    turn_token: str | None = None
    """The lock token of the turn that last wrote the instance, on a store that proves turn
    state (`Provider.proves_turn_state`); None elsewhere, or if no turn recorded one."""
    history_skipped: bool = False
    """True when the fetch was told this worker keeps the instance's state after the turn
    `turn_token` names, found that token current, and so left `history` empty unread."""

    def __post_init__(self) -> None:
        if self.status is not None:
            self.status = InstanceStatus(self.status)  # a store may hand back the plain word


@dataclass(slots=True)
class InstanceUpdate:
    name: str
    version: str
    status: InstanceStatus
    output: JSON = None
    error: ev.ErrorDetails | None = None
    custom_status: JSON = None
    parent_instance_id: str | None = None
    engine_version: str | None = None
    """The engine version pinned on the execution (written when it starts)."""
    started_execution: bool = False


@dataclass(slots=True)
class TurnCommit:
    """Everything one turn decided, applied atomically by `ack_orchestration_item`."""

    execution_id: int
    new_events: list[ev.Event] = field(default_factory=list)
    instance: InstanceUpdate | None = None
    activities: list[ev.ActivityWork] = field(default_factory=list)
    timers: list[ev.TimerDue] = field(default_factory=list)
    messages: list[ev.Message] = field(default_factory=list)
    cancelled_activities: list[int] = field(default_factory=list)
    keeps_state: bool = False
    """The worker keeps the instance's state after this turn: the store records the turn's
    lock token as the instance's turn token (else none), which proves that state current
    until another turn writes the instance, and prefers that worker for the next turn for a
    while (`sticky_ms` of a fetch)."""


@dataclass(slots=True)
class WorkItem:
    work: ev.ActivityWork
    lock_token: str
    attempt_count: int


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What one live runtime can do, as it reports it by heartbeat (`Client.list_workers`)."""

    worker_id: str
    node_id: str | None
    pool: str
    engine_version: str
    replay_min: str
    replay_max: str
    orchestrations: dict[str, dict[str, JSON]]
    """NAME -> {"versions": [...], "policy": "latest" | "exact X.Y.Z"}, the policy followed by
    ", ramp X.Y.Z at P%" while a ramp is on."""
    activities: list[str]
    session_activities: list[str]
    config_revision: str
    started_at: datetime
    heartbeat_at: datetime
    config_rejected: str | None = None
    """Why the newest config file was rejected (the revision above stays in force), or None
    once a config applies."""

    def has_session_handler(self, name: str) -> bool:
        return name in self.session_activities

    def has_version(self, name: str, version: str) -> bool:
        versions = self.orchestrations.get(name, {}).get("versions", [])
        return isinstance(versions, list) and version in versions


@dataclass(frozen=True, slots=True)
class DrainEntry:
    """Executions one orchestration NAME has pinned to one engine version outside a range."""

    orchestration_name: str
    pinned_engine_version: str
    running_instances: int
    queued_messages: int
    max_attempt_count: int
    poisoned_instances: int


@dataclass(frozen=True, slots=True)
class QueueDepths:
    """Messages waiting in each queue, by state, at one moment."""

    orchestrator_ready: int
    """Visible now, for an instance nobody holds: the next fetch can take them."""
    orchestrator_delayed: int
    """Not visible yet: timers, and retries backing off."""
    orchestrator_locked: int
    """Visible, for an instance a live lease holds (being processed, or arrived meanwhile)."""
    worker_ready: int
    worker_delayed: int
    worker_locked: int
    """Activities running somewhere under a live lease."""


@dataclass(frozen=True, slots=True)
class SystemMetrics:
    """Counts across the whole store, for dashboards and capacity planning."""

    instances_by_status: dict[str, int]
    """Keyed by `InstanceStatus` value."""
    executions: int
    history_events: int
    instance_locks: int
    """Live orchestration leases (turns in progress)."""
    sessions: int
    """Live session pins."""
    workers: int
    """Capability records (live or not yet reaped)."""

    @property
    def instances(self) -> int:
        return sum(self.instances_by_status.values())


@dataclass(frozen=True, slots=True)
class VersionUsage:
    """The instances of one `NAME@version` that have not ended, as one observation saw them.

    Old version code may be removed only once this is gone; an operator holds a rollout back
    while an image lacks a version listed here, and calls the instances stranded when no live
    worker serves the version or the pins in `by_pin`.
    """

    orchestration_name: str
    orchestration_version: str
    instances: int
    """Instances not in `durox.status.TERMINAL` (Running, or ContinuedAsNew between executions)."""
    by_pin: dict[str | None, int]
    """The same instances by the engine version their execution is pinned to (None: written
    before pinning, fetched by every worker)."""
    oldest_instance_id: str
    """The earliest created of them (ties broken by id): how long this version has been
    needed, and the instance to look at first."""
    oldest_created_at: datetime

    @property
    def key(self) -> str:
        """`NAME@version`, as worker records and the operator's status spell it."""
        return f"{self.orchestration_name}@{self.orchestration_version}"


@dataclass(frozen=True, slots=True)
class FailureCount:
    """Instances of one `NAME@version` that failed within an observation's window."""

    orchestration_name: str
    orchestration_version: str
    failed: int
    """Every instance that ended Failed in the window, the poisoned ones included."""
    poisoned: int
    """Those that failed because no worker could take them (`ErrorDetails.kind == "poison"`):
    a missing version or handler, an unreadable history, an engine pin nobody serves."""


@dataclass(frozen=True, slots=True)
class VersionOutcomes:
    """How the instances of one `NAME@version` created within a window have fared so far:
    what a progressive rollout compares between the new version and the previous one."""

    orchestration_name: str
    orchestration_version: str
    started: int
    """Instances created at or after the window's start (their current execution's version)."""
    ended: int
    """Those that have ended (Completed, Failed or Cancelled): the sample a share is taken of."""
    failed: int
    """Those that ended Failed, the poisoned ones included."""
    poisoned: int
    """Those that failed because no worker could take them (`ErrorDetails.kind == "poison"`)."""

    @property
    def key(self) -> str:
        return f"{self.orchestration_name}@{self.orchestration_version}"


@dataclass(frozen=True, slots=True)
class ObservedWorker:
    """A capability record with its age by the store's clock, so a reader on another host
    (the operator's pod) judges liveness by the same clock the workers' heartbeats use."""

    record: WorkerRecord
    heartbeat_age: timedelta
    live: bool
    """The heartbeat is no older than the observation's `stale_after`. A stale record is a
    worker that died without removing it, or one too busy or cut off to beat: the reader
    decides what that means (an operator counts a terminating pod until its record goes)."""


@dataclass(frozen=True, slots=True)
class StoreObservation:
    """What a store holds, read at one moment in one transaction (one round trip on
    PostgreSQL), for an operator's reconcile pass or a dashboard. Nothing is written: a
    read-only database role can take it, and stale worker records are reported, not reaped.

    A store (a SQLite file, a PostgreSQL schema) serves one registry: its instances belong to
    every pool of it (a main pool and its drain pool share them), so the instance counts are
    the whole store's and only `workers` is narrowed to a pool.
    """

    observed_at: datetime
    """The store's clock when it was read (the database's, on PostgreSQL)."""
    pool: str | None
    """The pool `workers` was narrowed to (None: every pool)."""
    versions: tuple[VersionUsage, ...]
    """Per `NAME@version` with instances that have not ended, ordered by name and version."""
    failed_since: datetime
    failures: tuple[FailureCount, ...]
    """Per `NAME@version` with instances that failed at or after `failed_since`."""
    stale_after: timedelta
    workers: tuple[ObservedWorker, ...]
    """Every capability record of the pool, live or stale, by worker id."""

    @property
    def instances(self) -> int:
        """Instances that have not ended, across versions."""
        return sum(v.instances for v in self.versions)

    @property
    def by_pin(self) -> dict[str | None, int]:
        """Instances that have not ended, per engine pin, across versions."""
        out: dict[str | None, int] = {}
        for v in self.versions:
            for pin, n in v.by_pin.items():
                out[pin] = out.get(pin, 0) + n
        return out

    @property
    def live_workers(self) -> list[WorkerRecord]:
        return [w.record for w in self.workers if w.live]

    @property
    def stale_workers(self) -> list[WorkerRecord]:
        return [w.record for w in self.workers if not w.live]

    def usage(self, name: str, version: str) -> VersionUsage | None:
        """The usage of `NAME@version`, or None when none of its instances is left."""
        return next(
            (
                v
                for v in self.versions
                if v.orchestration_name == name and v.orchestration_version == version
            ),
            None,
        )


@dataclass(frozen=True, slots=True, order=True)
class VersionExecutions:
    """Executions of one orchestration NAME at one version that a replay check looks at."""

    orchestration_name: str
    orchestration_version: str
    running: int
    """Executions still running at this version."""
    ended: int
    """Executions that ended well (completed, or continued as new) since the time asked for."""


@dataclass(frozen=True, slots=True)
class ExecutionRef:
    """One execution a replay check may read the history of."""

    instance_id: str
    execution_id: int
    status: InstanceStatus
    event_count: int
    last_active_at: datetime
    """The last turn of a running execution; the end of an ended one."""


SampleOrder = Literal["longest", "recent"]
ENDED_WELL: tuple[InstanceStatus, InstanceStatus] = (
    InstanceStatus.COMPLETED,
    InstanceStatus.CONTINUED_AS_NEW,
)
"""The endings of executions a replay check samples besides running ones: they replay to a
recorded end the code must reach again (failures and cancellations are left out: a poisoned
or nondeterministic failure was never the code's own ending)."""

QueueKind = Literal["orchestration", "activity"]
