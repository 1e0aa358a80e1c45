"""The seam between the runtime and a store, in two halves.

`Provider` is what the runtime drives: two peek-lock queues (orchestration messages, locked per
instance; activity work, locked per item), session pins and worker records. `ProviderAdmin` is
what clients and operators read and manage: instances, executions, histories, workers, the drain
report, deletion, metrics. A store implements both (`Store`), and proves it with the scenarios
in `durox.testing.conformance` (docs/providers.md). Each acknowledgement is one atomic
transaction: new history, instance record, outgoing work and the deletion of the consumed
messages commit together or not at all.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import datetime

from durox.core import events as ev
from durox.core.versions import SemverRange
from durox.errors import DuroxError
from durox.providers._completions import CompletionWatch
from durox.providers._records import (
    ENDED_WELL,
    JSON,
    DrainEntry,
    ExecutionInfo,
    ExecutionRef,
    FailureCount,
    InstanceInfo,
    InstanceUpdate,
    ObservedWorker,
    OrchestrationItem,
    QueueDepths,
    QueueKind,
    SampleOrder,
    StoreObservation,
    SystemMetrics,
    TurnCommit,
    VersionExecutions,
    VersionOutcomes,
    VersionUsage,
    WorkerRecord,
    WorkItem,
)
from durox.status import InstanceStatus

__all__ = [
    "ENDED_WELL",
    "JSON",
    "CompletionWatch",
    "DrainEntry",
    "ExecutionInfo",
    "ExecutionRef",
    "FailureCount",
    "InstanceInfo",
    "InstanceUpdate",
    "ObservedWorker",
    "OrchestrationItem",
    "Provider",
    "ProviderAdmin",
    "QueueDepths",
    "QueueKind",
    "SampleOrder",
    "Store",
    "StoreObservation",
    "SystemMetrics",
    "TurnCommit",
    "VersionExecutions",
    "VersionOutcomes",
    "VersionUsage",
    "WorkItem",
    "WorkerRecord",
    "gather_outcomes",
]


async def gather_outcomes(acks: Iterable[Awaitable[None]]) -> list[DuroxError | None]:
    """Run acknowledgements concurrently and say per item how each went: None, or the store
    error it alone met. Anything but a store error propagates. For a store whose batch
    acknowledgement is its single one run side by side (SQLite, whose group commit gathers them
    into one transaction anyway)."""
    results = await asyncio.gather(*acks, return_exceptions=True)
    out: list[DuroxError | None] = []
    for o in results:
        if isinstance(o, DuroxError) or o is None:
            out.append(o)
        else:
            raise o
    return out


class Provider(abc.ABC):
    """The half of a store the runtime drives: two peek-lock queues, sessions, worker records.

    The batch operations are the contract (`fetch_*_items`, `ack_*_items`); the single forms
    the runtime also uses are derived from them here, once, so no store builds one from the
    other its own way. Methods raise only `durox.errors` exceptions.
    """

    batches_in_one_round_trip: bool = False
    """True when the batch operations cost one round trip, so the runtime should gather work
    into them; False when a store gains nothing from batches (SQLite's group commit already
    gathers concurrent operations into one transaction), so the runtime takes one at a time."""

    proves_turn_state: bool = False
    """True when every acknowledgement records its lock token as the instance's turn token
    (`TurnCommit.keeps_state`; none otherwise), a fetch returns it
    (`OrchestrationItem.turn_token`) and honours `kept` and `sticky_ms`. A runtime keeps
    instances' live state between turns only on such a store: the token is its proof that
    no other turn wrote the instance since its own."""

    def clock_ms(self) -> int:
        """The store's clock (ms since the epoch) as well as this process can tell. A turn
        takes its time from here, and so does the due time of every timer it sets: a worker
        whose own clock is off must not set timers early or late. This process's wall clock,
        unless the store keeps a clock of its own."""
        return time.time_ns() // 1_000_000

    # -- orchestration queue ----------------------------------------------------------------

    @abc.abstractmethod
    async def start_instance(self, message: ev.StartOrchestration) -> None:
        """Enqueue a client start; `InstanceAlreadyExistsError` if the id is taken or pending."""

    @abc.abstractmethod
    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        """Enqueue a message for an instance (events, cancellation)."""

    @abc.abstractmethod
    async def enqueue_event(self, message: ev.ExternalEvent | ev.CancelRequest) -> bool:
        """Enqueue a client's external event or cancel request if its instance exists (in any
        status) or a client start for it is queued, checked and inserted atomically; False,
        and nothing enqueued, if neither. A message that arrives before the first turn is kept
        for it."""

    @abc.abstractmethod
    async def fetch_orchestration_items(
        self,
        lock_timeout_ms: int,
        replay_range: SemverRange | None = None,
        max_items: int = 1,
        *,
        kept: Mapping[str, str] | None = None,
        sticky_ms: int = 0,
    ) -> list[OrchestrationItem]:
        """Lock up to `max_items` instances with visible messages whose pin lies in
        `replay_range`, oldest message first, each with its messages and current history.

        `kept` maps instances whose state the caller keeps to the turn token it kept them at.
        A store that proves turn state may then leave out the history of a running instance
        whose last turn may be one the caller kept (`history_skipped`): exactly those in
        `kept` (SQLite), or those whose last turn the caller ran (PostgreSQL, told only the
        caller's token prefix, not the whole map, to keep the fetch small). A caller that
        finds it kept nothing current reads the history with `read_turn_history`. Other
        stores ignore `kept`.

        `sticky_ms` (a store that proves turn state): an instance whose last turn another
        worker ran and kept (`TurnCommit.keeps_state`) is left to that worker while its
        messages have been visible for less than `sticky_ms`; after that anyone takes it.

        A lease of `lock_timeout_ms <= 0` is over at once, so at most one item is taken then.
        If a fetch fails after some instances were locked, those are returned rather than left
        locked with nobody to run them.
        """

    @abc.abstractmethod
    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        """Apply several turns, each atomically (new history, instance record, outgoing work
        and the deletion of the consumed messages commit together or not at all), releasing
        each lock, and say per turn how it went: None, or the error that turn alone met
        (`LockLostError` for a lapsed lease). Never raises `DuroxError`: one bad turn does not
        fail the others."""

    @abc.abstractmethod
    async def abandon_orchestration_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        """Release the lock, leaving the messages for a later fetch after `delay_ms`."""

    async def read_turn_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        """The history of an execution whose instance the caller holds locked, for a fetch
        that left it out (`OrchestrationItem.history_skipped`) when the caller needs it after
        all. A store that proves turn state provides it; by default, its `read_history`."""
        if isinstance(self, ProviderAdmin):
            return await self.read_history(instance_id, execution_id)
        raise NotImplementedError(f"{type(self).__name__} cannot read a history for a turn")

    async def fetch_orchestration_item(
        self, lock_timeout_ms: int, replay_range: SemverRange | None = None
    ) -> OrchestrationItem | None:
        """`fetch_orchestration_items` for one item."""
        items = await self.fetch_orchestration_items(lock_timeout_ms, replay_range, 1)
        return items[0] if items else None

    async def ack_orchestration_item(self, lock_token: str, commit: TurnCommit) -> None:
        """`ack_orchestration_items` for one turn, raising the error it met."""
        (failed,) = await self.ack_orchestration_items([(lock_token, commit)])
        if failed is not None:
            raise failed

    # -- activity queue ------------------------------------------------------------------

    @abc.abstractmethod
    async def fetch_work_items(
        self,
        lock_timeout_ms: int,
        max_items: int,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> list[WorkItem]:
        """Lock up to `max_items` visible work items this worker may take, oldest first.

        Items without a session go to anyone. A session item goes to the session's owner while
        the session lock is alive; an unowned (or lapsed) session is claimed by the fetching
        worker if it owns fewer than `max_sessions` live sessions (None: no cap; 0: it takes
        no session work). Fetching or acknowledging a session item marks the session active.
        If a fetch fails after some items were taken, those are returned rather than left
        locked with nobody to run them.
        """

    @abc.abstractmethod
    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        """For each item, delete it and enqueue its result in one transaction, and say per
        item how it went: None, or the error (`LockLostError` for a lapsed or unknown token)
        that item alone met. Never raises `DuroxError`: one bad item does not fail the others."""

    @abc.abstractmethod
    async def abandon_work_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None: ...

    @abc.abstractmethod
    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        """Extend the lease; `LockLostError` if it already lapsed or the item was cancelled."""

    @abc.abstractmethod
    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        """Extend the locks of this worker's sessions that are busy or were active within
        `idle_timeout_ms`; delete lapsed session rows. Returns how many were renewed."""

    async def fetch_work_item(
        self,
        lock_timeout_ms: int,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> WorkItem | None:
        """`fetch_work_items` for one item."""
        items = await self.fetch_work_items(
            lock_timeout_ms,
            1,
            worker_id=worker_id,
            session_lock_ms=session_lock_ms,
            max_sessions=max_sessions,
        )
        return items[0] if items else None

    async def ack_work_item(self, lock_token: str, result: ev.ActivityResult) -> None:
        """`ack_work_items` for one item, raising the error it met."""
        (failed,) = await self.ack_work_items([(lock_token, result)])
        if failed is not None:
            raise failed

    # -- worker capability records --------------------------------------------------------

    @abc.abstractmethod
    async def upsert_worker(self, record: WorkerRecord) -> None: ...

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None: ...

    # -- wake-ups and lifecycle --------------------------------------------------------------

    @abc.abstractmethod
    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> bool:
        """Return when new work of `kind` may be visible, or after `timeout_s` at the latest:
        True for a wake-up, False when `timeout_s` ran out without one. A wake-up delivered
        while nobody waits is kept for the next wait (a latch), unless a fetch sent after it
        covered it (`fetch_covers_wakeups`)."""

    @abc.abstractmethod
    def fetch_covers_wakeups(self, kind: QueueKind, count: int | None) -> None:
        """A fetch of `kind` is about to be sent: the wake-ups kept so far announce work it
        will see, so `count` of them (None: all) need no further fetch. Called before the
        fetch, never after (one delivered during the fetch must stay kept)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class ProviderAdmin(abc.ABC):
    """The half of a store that clients and operators read and manage it through: instance,
    execution, history and worker reads, the drain report, deletion and pruning, metrics.

    Nothing here is on the runtime's hot path. Read-side operations a tool needs (the
    operator's view of a store, say) belong here, not on `Provider`.
    """

    # -- reads -------------------------------------------------------------------------

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> InstanceInfo | None: ...

    def watch_completion(self, instance_id: str) -> CompletionWatch | None:
        """Register to be woken when `instance_id` reaches a terminal status (Completed,
        Failed, Cancelled; ContinuedAsNew is not one), before reading its status, so an ending
        committed in between is not missed; use it as a context manager to unregister. The
        watch also says how long to rely on it between status reads (`poll_schedule`): a
        wake-up can be missed (another process, a dropped connection), so the caller still
        reads the status now and then.

        None (the default, and what a wrapper that does not forward it gives): this store
        cannot wake anyone, and the caller polls."""
        return None

    @abc.abstractmethod
    async def start_pending(self, instance_id: str) -> bool:
        """True while a client start for `instance_id` waits in the queue (no instance row yet)."""

    @abc.abstractmethod
    async def list_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        version: str | None = None,
        pin: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[InstanceInfo]:
        """Instances matching every filter given, oldest first (ties by instance id), the
        first `offset` of them skipped. `pin` is the pinned engine version; `created_after`
        includes its bound, `created_before` excludes it. A `status` string must be an
        `InstanceStatus` value (`ConfigurationError` otherwise: see `status_filter`)."""

    @abc.abstractmethod
    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]: ...

    @abc.abstractmethod
    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]: ...

    @abc.abstractmethod
    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        """Live workers (heartbeat within `stale_after_ms`); stale rows are deleted."""

    @abc.abstractmethod
    async def observe(
        self, *, pool: str | None, failed_since: datetime, stale_after_ms: int
    ) -> StoreObservation:
        """Everything an operator decides a rollout from, in one consistent read: instances
        that have not ended per `NAME@version` (per engine pin, and the oldest of them),
        failures and poisonings since `failed_since` per `NAME@version`, and the capability
        records of `pool` (None: every pool) with their heartbeat ages, live within
        `stale_after_ms` or stale.

        Read-only, so a role without write grants can call it: stale records stay (the
        runtime's `list_workers` reaps them). Its cost follows the instances that have not
        ended and the failures in the window, not the instances the store keeps, so it stays
        cheap on a store with millions of finished ones (docs/postgres.md).
        """

    @abc.abstractmethod
    async def outcomes(self, *, since: datetime) -> list[VersionOutcomes]:
        """Per `NAME@version`, the instances created at or after `since`: how many started,
        ended, failed and were poisoned, ordered by name and version. Read-only, like
        `observe`; its cost follows the instances created in the window (by creation time),
        so an operator may read a ramp step's window on every pass."""

    @abc.abstractmethod
    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        """Per NAME and pinned engine version outside `replay_range`: running instances, their
        queued messages and highest attempt count, and instances that ended in poison."""

    # -- management ----------------------------------------------------------------------
    # Terminal means in `durox.status.TERMINAL`; anything else counts as running.

    @abc.abstractmethod
    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        """Delete an instance with its executions, history, queued work and every descendant
        (through `parent_instance_id`), atomically. `InstanceRunningError` if any of them is
        not terminal, unless `force`. Returns how many instances were deleted (0: none)."""

    @abc.abstractmethod
    async def delete_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        """Delete terminal instances matching every filter given (with their descendants);
        `status` as for `list_instances`;
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

    # -- replay-check reads (`durox.replaycheck`) -----------------------------------------
    # Executions are counted and sampled by their own version (an instance's earlier
    # executions may have run another one), joined to their instance for the NAME.

    @abc.abstractmethod
    async def execution_versions(
        self, *, ended_since: datetime | None = None
    ) -> list[VersionExecutions]:
        """Per orchestration NAME and execution version: running executions, and executions
        that ended well (`ENDED_WELL`) at or after `ended_since` (None: none counted). Only
        versions with at least one of either, by NAME then version text."""

    @abc.abstractmethod
    async def sample_executions(
        self,
        name: str,
        version: str,
        *,
        order: SampleOrder,
        limit: int,
        ended_since: datetime | None = None,
    ) -> list[ExecutionRef]:
        """Up to `limit` of the executions `execution_versions` counts for NAME at `version`:
        running ones first, then by `order`: "longest" (most history events first, then most
        recently active) or "recent" (most recently active first, then longest); ties by
        instance id and execution id."""


class Store(Provider, ProviderAdmin, abc.ABC):
    """A whole store: what the runtime drives and what a client reads. Each store is one."""
