"""The one seam between the runtime and a store.

A `Provider` holds two peek-lock queues (orchestration messages, locked per instance; activity
work, locked per item), the append-only histories, and the instance records. Everything the
runtime needs is an operation here and nothing more, so a new store is one class and one run of
the conformance suite. Each acknowledgement is one atomic transaction: new history, instance
record, outgoing work and the deletion of the consumed messages commit together or not at all.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from durox.core import events as ev
from durox.core.versions import SemverRange
from durox.errors import DuroxError

JSON = ev.JSON


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """What a caller can see of an instance; `orchestration_version` is the current execution's."""

    instance_id: str
    orchestration_name: str
    orchestration_version: str
    current_execution_id: int
    status: str
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
    status: str
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
    status: str | None = None
    pinned_engine_version: str | None = None
    history_error: str | None = None
    """Set when the history (or a message) could not be decoded; history is then empty."""


@dataclass(slots=True)
class InstanceUpdate:
    name: str
    version: str
    status: str
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
    """NAME -> {"versions": [...], "policy": "latest" | "exact X.Y.Z"}."""
    activities: list[str]
    session_activities: list[str]
    config_revision: str
    started_at: datetime
    heartbeat_at: datetime

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


QueueKind = Literal["orchestration", "activity"]


def _outcomes(results: Sequence[BaseException | None]) -> list[DuroxError | None]:
    """Per-item outcomes of gathered acknowledgements; anything but a store error propagates."""
    out: list[DuroxError | None] = []
    for o in results:
        if isinstance(o, DuroxError) or o is None:
            out.append(o)
        else:
            raise o
    return out


class Provider(abc.ABC):
    """A durable store. Methods raise only `durox.errors` exceptions."""

    batches_in_one_round_trip: bool = False
    """True when the batch operations (`fetch_*_items`, `ack_*_items`) cost one round trip, so
    the runtime should gather work into them; the defaults here only loop or gather over the
    single operations, which saves nothing."""

    # -- orchestration queue ----------------------------------------------------------------

    @abc.abstractmethod
    async def start_instance(self, message: ev.StartOrchestration) -> None:
        """Enqueue a client start; `InstanceAlreadyExistsError` if the id is taken or pending."""

    @abc.abstractmethod
    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        """Enqueue a message for an instance (events, cancellation)."""

    @abc.abstractmethod
    async def fetch_orchestration_item(
        self, lock_timeout_ms: int, replay_range: SemverRange | None = None
    ) -> OrchestrationItem | None:
        """Lock the oldest instance with visible messages whose pin lies in `replay_range`."""

    @abc.abstractmethod
    async def ack_orchestration_item(self, lock_token: str, commit: TurnCommit) -> None:
        """Apply a turn atomically and release the lock; `LockLostError` if the lease is gone."""

    async def fetch_orchestration_items(
        self, lock_timeout_ms: int, replay_range: SemverRange | None = None, max_items: int = 1
    ) -> list[OrchestrationItem]:
        """Lock up to `max_items` instances, each as `fetch_orchestration_item` would.

        A store that can take several in one round trip overrides this. If a fetch fails after
        some instances were locked, those are returned rather than left locked.
        """
        items: list[OrchestrationItem] = []
        while len(items) < max_items:
            try:
                item = await self.fetch_orchestration_item(lock_timeout_ms, replay_range)
            except DuroxError:
                if items:
                    return items
                raise
            if item is None:
                break
            items.append(item)
        return items

    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        """Apply several turns, each atomically as `ack_orchestration_item` would, and say per
        turn how it went: None, or the error that turn alone met (`LockLostError` for a lapsed
        lease). Never raises `DuroxError`: one bad turn does not fail the others."""
        return _outcomes(
            await asyncio.gather(
                *(self.ack_orchestration_item(token, commit) for token, commit in acks),
                return_exceptions=True,
            )
        )

    @abc.abstractmethod
    async def abandon_orchestration_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        """Release the lock, leaving the messages for a later fetch after `delay_ms`."""

    @abc.abstractmethod
    async def renew_orchestration_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        """Extend the lease; `LockLostError` if it already lapsed."""

    # -- activity queue ------------------------------------------------------------------

    @abc.abstractmethod
    async def fetch_work_item(
        self,
        lock_timeout_ms: int,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> WorkItem | None:
        """Lock the oldest visible work item this worker may take.

        Items without a session go to anyone. A session item goes to the session's owner while
        the session lock is alive; an unowned (or lapsed) session is claimed by the fetching
        worker if it owns fewer than `max_sessions` live sessions (None: no cap; 0: it takes
        no session work). Fetching or acknowledging a session item marks the session active.
        """

    @abc.abstractmethod
    async def ack_work_item(self, lock_token: str, result: ev.ActivityResult) -> None:
        """Delete the work item and enqueue its result in one transaction."""

    async def fetch_work_items(
        self,
        lock_timeout_ms: int,
        max_items: int,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> list[WorkItem]:
        """Lock up to `max_items` work items, oldest first, under `fetch_work_item`'s rules.

        A store that can take several in one round trip overrides this. If a fetch fails after
        some items were taken, those are returned (the next call meets the error again) rather
        than left locked with nobody to run them.
        """
        items: list[WorkItem] = []
        while len(items) < max_items:
            try:
                wi = await self.fetch_work_item(
                    lock_timeout_ms,
                    worker_id=worker_id,
                    session_lock_ms=session_lock_ms,
                    max_sessions=max_sessions,
                )
            except DuroxError:
                if items:
                    return items
                raise
            if wi is None:
                break
            items.append(wi)
        return items

    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        """Acknowledge several work items, each as `ack_work_item` would, and say per item
        how it went: None, or the error (`LockLostError` for a lapsed or unknown token) that
        item alone met. Never raises `DuroxError`: one bad item does not fail the others."""
        return _outcomes(
            await asyncio.gather(
                *(self.ack_work_item(token, result) for token, result in acks),
                return_exceptions=True,
            )
        )

    @abc.abstractmethod
    async def abandon_work_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None: ...

    @abc.abstractmethod
    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None: ...

    @abc.abstractmethod
    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        """Extend the locks of this worker's sessions that are busy or were active within
        `idle_timeout_ms`; delete lapsed session rows. Returns how many were renewed."""

    # -- worker capability records --------------------------------------------------------

    @abc.abstractmethod
    async def upsert_worker(self, record: WorkerRecord) -> None: ...

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None: ...

    @abc.abstractmethod
    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        """Live workers (heartbeat within `stale_after_ms`); stale rows are deleted."""

    # -- reads -------------------------------------------------------------------------

    @abc.abstractmethod
    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        """Per NAME and pinned engine version outside `replay_range`: running instances, their
        queued messages and highest attempt count, and instances that ended in poison."""

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> InstanceInfo | None: ...

    @abc.abstractmethod
    async def list_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        version: str | None = None,
        limit: int = 1000,
    ) -> list[InstanceInfo]: ...

    @abc.abstractmethod
    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]: ...

    @abc.abstractmethod
    async def start_pending(self, instance_id: str) -> bool:
        """True while a client start for `instance_id` waits in the queue (no instance row yet)."""

    @abc.abstractmethod
    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]: ...

    # -- wake-ups and lifecycle --------------------------------------------------------------

    @abc.abstractmethod
    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> None:
        """Return when new work of `kind` may be visible, or after `timeout_s` at the latest."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- management ----------------------------------------------------------------------
    # Terminal statuses are Completed, Failed and Cancelled; anything else counts as running.

    @abc.abstractmethod
    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        """Delete an instance with its executions, history, queued work and every descendant
        (through `parent_instance_id`), atomically. `InstanceRunningError` if any of them is
        not terminal, unless `force`. Returns how many instances were deleted (0: none)."""

    @abc.abstractmethod
    async def delete_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        """Delete terminal instances matching every filter given (with their descendants);
        an instance whose tree still has something running is left alone. Returns how many
        instances were deleted."""

    @abc.abstractmethod
    async def prune_executions(self, instance_id: str, keep_last: int = 1) -> int:
        """Delete all but the newest `keep_last` executions (at least 1: the current one is
        never pruned) and their history. Returns how many executions were deleted."""

    @abc.abstractmethod
    async def queue_depths(self) -> QueueDepths: ...

    @abc.abstractmethod
    async def system_metrics(self) -> SystemMetrics: ...
