"""PostgreSQL store: many workers, one database, one round trip per store operation.

Every operation that changes state is one call of a PL/pgSQL function defined by the
migrations, so it is one statement, one transaction and one network round trip (asyncpg keeps
the prepared statement per connection, and the pool's reset-on-release query is skipped because
no operation leaves session state behind). Instance locks are rows with a lease, taken with
`pg_try_advisory_xact_lock` so two fetchers never wait on each other; activity rows are taken
with `FOR UPDATE SKIP LOCKED`. Idle workers sleep on LISTEN/NOTIFY (one channel per schema, so
deployments sharing a database do not wake each other) and poll as a fallback; so do clients
waiting for an instance to end (a second channel, listened to from the first wait on). The
listening connection reconnects by itself and wakes everyone when it does, in case it missed
something.

Times are milliseconds since the epoch from the database's clock, so workers on hosts with
skewed clocks agree on leases; tests may inject a clock instead (`clock=`).

This module holds the operations: each names a statement of `queries.sql` and the values it
takes. The pool, the error mapping and the listener are in `_driver.py` and `_errors.py`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from durox.core import events as ev
from durox.core.codec import decode_events, decode_json, decode_message, encode_message
from durox.core.versions import SemverRange
from durox.errors import DuroxError, LockLostError, StoreCorruptionError
from durox.providers._base import (
    ENDED_WELL,
    CompletionWatch,
    DrainEntry,
    ExecutionInfo,
    ExecutionRef,
    InstanceInfo,
    OrchestrationItem,
    QueueDepths,
    QueueKind,
    SampleOrder,
    Store,
    StoreObservation,
    SystemMetrics,
    TurnCommit,
    VersionExecutions,
    VersionOutcomes,
    WorkerRecord,
    WorkItem,
)
from durox.providers._rows import (
    Clock,
    bound_ms,
    execution_from_row,
    execution_ref_from_row,
    instance_from_row,
    observation_from,
    sorted_outcomes,
    worker_body,
    worker_from_row,
)
from durox.providers.postgres._driver import Database, open_pool
from durox.providers.postgres._encoding import orchestration_item, replay_bounds, turn
from durox.providers.postgres._errors import classify_state
from durox.status import status_filter

log = logging.getLogger(__name__)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


class PostgresProvider(Store):
    """`await PostgresProvider.connect(dsn, schema="durox")`; `await provider.close()`."""

    batches_in_one_round_trip = True
    proves_turn_state = True

    def __init__(self, dsn: str, schema: str, pool: Any, clock: Clock | None) -> None:
        """Use `connect`."""
        self.schema = schema
        self._pool = pool
        self._db = Database(dsn, schema, pool, clock)

    # ---- construction ------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str = "durox",
        pool_size: int = 10,
        clock: Clock | None = None,
        command_timeout: float = 30.0,
        listen: bool = True,
        migrate: bool = True,
    ) -> PostgresProvider:
        """Connect, create or migrate `schema`, and start listening for wake-ups.

        Several deployments can share one database through separate schemas. `clock` (ms since
        the epoch) replaces the database's clock for tests; `listen=False` relies on polling.
        `migrate=False` leaves the schema alone (a reader that checked it is up to date: its
        role then needs no right to create anything).
        """
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lower-case identifier, not {schema!r}")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        pool = await open_pool(dsn, schema, pool_size, command_timeout, migrating=migrate)
        provider = cls(dsn, schema, pool, clock)
        try:
            await provider._db.first_clock_sync()
        except DuroxError:
            await provider._db.close()
            raise
        if listen:
            await provider._db.listen(f"durox-pg-listen-{schema}", command_timeout)
        return provider

    def clock_ms(self) -> int:
        return self._db.store_now()

    async def close(self) -> None:
        await self._db.close()

    def __repr__(self) -> str:
        return f"PostgresProvider(schema={self.schema!r})"

    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> bool:
        return await self._db.wakeups.wait(kind, timeout_s)

    def fetch_covers_wakeups(self, kind: QueueKind, count: int | None) -> None:
        self._db.wakeups.covered(kind, count)

    def watch_completion(self, instance_id: str) -> CompletionWatch | None:
        """Woken by migration 0008's NOTIFY on `durox.<schema>.ended`, whoever committed the
        ending; None on a provider connected with `listen=False` (it polls)."""
        return self._db.watch_ended(instance_id)

    # ---- orchestration queue -----------------------------------------------------------

    async def start_instance(self, message: ev.StartOrchestration) -> None:
        db = self._db
        await db.fetchval("start_instance", message.instance_id, encode_message(message), db.now())

    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        db = self._db
        await db.fetchval(
            "enqueue",
            message.instance_id,
            type(message).__name__,
            encode_message(message),
            delay_ms,
            db.now(),
        )

    async def enqueue_event(self, message: ev.ExternalEvent | ev.CancelRequest) -> bool:
        db = self._db
        queued = await db.fetchval(
            "enqueue_event",
            message.instance_id,
            encode_message(message),
            db.now(),
            type(message).__name__,
        )
        return queued is not None

    async def fetch_orchestration_items(
        self,
        lock_timeout_ms: int,
        replay_range: SemverRange | None = None,
        max_items: int = 1,
        *,
        kept: Mapping[str, str] | None = None,
        sticky_ms: int = 0,
    ) -> list[OrchestrationItem]:
        if max_items <= 0:
            return []
        if lock_timeout_ms <= 0:
            max_items = 1  # a lease that is over at once would let the batch take it again
        db = self._db
        lo, hi = replay_bounds(replay_range)
        # Not the whole map (a fetch would carry every kept token): the prefix of this driver's
        # tokens, so the histories left out are those of instances whose last turn ran here.
        mine, skip = db.token_prefix, kept is not None
        began = time.monotonic()
        if max_items == 1:
            row = await db.fetchrow(
                "fetch_orchestration",
                db.now(),
                lock_timeout_ms,
                db.token(),
                lo,
                hi,
                mine,
                skip,
                sticky_ms,
            )
            rows = [] if row is None else [row]
        else:
            tokens = [db.token() for _ in range(max_items)]
            rows = await db.fetch(
                "fetch_orchestration_batch",
                db.now(),
                lock_timeout_ms,
                tokens,
                lo,
                hi,
                mine,
                skip,
                sticky_ms,
            )
        if rows and db.database_clock and (time.monotonic() - began) * 1000 >= lock_timeout_ms:
            # The leases may have lapsed on the way back: hand them back rather than race.
            for row in rows:
                log.warning(
                    "orchestration fetch took longer than its lease; releasing the lock",
                    extra={"instance_id": row["instance_id"]},
                )
                await self.abandon_orchestration_item(row["lock_token"], ignore_attempt=True)
            return []
        return [orchestration_item(row) for row in rows]

    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        if not acks:
            return []
        db = self._db
        try:
            failed = await db.fetchval(
                "ack_orchestration_batch",
                [turn(token, commit) for token, commit in acks],
                [commit.keeps_state for _, commit in acks],
                db.now(),
            )
        except DuroxError as exc:
            return [exc] * len(acks)
        return [None if f is None else classify_state(*f.split(" ", 1)) for f in failed]

    async def abandon_orchestration_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        db = self._db
        await db.fetchval("abandon_orchestration", lock_token, delay_ms, ignore_attempt, db.now())

    # ---- activity queue ----------------------------------------------------------------

    async def fetch_work_items(
        self,
        lock_timeout_ms: int,
        max_items: int,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> list[WorkItem]:
        if max_items <= 0:
            return []
        if lock_timeout_ms <= 0:
            max_items = 1  # a lease that is over at once would let the batch take it again
        db = self._db
        rows = await db.fetch(
            "fetch_work_batch",
            db.now(),
            lock_timeout_ms,
            [db.token() for _ in range(max_items)],
            worker_id,
            session_lock_ms,
            max_sessions,
        )
        return [
            WorkItem(_activity_work(row["data"]), row["lock_token"], row["attempt_count"])
            for row in rows
        ]

    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        if not acks:
            return []
        db = self._db
        try:
            ok = await db.fetchval(
                "ack_work_batch",
                [token for token, _ in acks],
                [r.instance_id for _, r in acks],
                [encode_message(r) for _, r in acks],
                db.now(),
            )
        except DuroxError as exc:
            return [exc] * len(acks)
        return [
            None if done else LockLostError("activity lock expired, or the activity was cancelled")
            for done in ok
        ]

    async def abandon_work_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        db = self._db
        await db.fetchval("abandon_work", lock_token, delay_ms, ignore_attempt, db.now())

    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        db = self._db
        ok = await db.fetchval("renew_work", lock_token, lock_timeout_ms, db.now())
        if not ok:
            raise LockLostError("activity lock already lapsed, or the activity was cancelled")

    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        db = self._db
        renewed = await db.fetchval(
            "renew_sessions", worker_id, session_lock_ms, idle_timeout_ms, db.now()
        )
        return int(renewed)

    # ---- worker capability records -------------------------------------------------------

    async def upsert_worker(self, record: WorkerRecord) -> None:
        db = self._db
        await db.fetchval(
            "upsert_worker",
            record.worker_id,
            record.node_id,
            record.pool,
            record.engine_version,
            worker_body(record),
            record.config_revision,
            int(record.started_at.timestamp() * 1000),
            db.now(),
        )

    async def remove_worker(self, worker_id: str) -> None:
        await self._db.fetchval("remove_worker", worker_id)

    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        db = self._db
        rows = await db.fetch("list_workers", db.now(), stale_after_ms, pool)
        return [worker_from_row(r) for r in rows]

    async def observe(
        self, *, pool: str | None, failed_since: datetime, stale_after_ms: int
    ) -> StoreObservation:
        db = self._db
        since = int(failed_since.timestamp() * 1000)
        row = await db.fetchrow("observe", db.now(), since, pool)
        return observation_from(
            int(row[0]),
            pool=pool,
            failed_since=failed_since,
            stale_after_ms=stale_after_ms,
            usage=decode_json(row[1]),
            failures=decode_json(row[2]),
            workers=decode_json(row[3]),
        )

    async def outcomes(self, *, since: datetime) -> list[VersionOutcomes]:
        rows = await self._db.fetch("outcomes", int(since.timestamp() * 1000))
        return sorted_outcomes(rows)

    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        (a, b, c), (d, e, f) = replay_range.bounds()
        rows = await self._db.fetch("drain_report", a, b, c, d, e, f)
        return [DrainEntry(r[0], r[1], r[2], int(r[3]), r[4], r[5]) for r in rows]

    # ---- reads -------------------------------------------------------------------------

    async def start_pending(self, instance_id: str) -> bool:
        return bool(await self._db.fetchval("start_pending", instance_id))

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        row = await self._db.fetchrow("get_instance", instance_id)
        return None if row is None else instance_from_row(row)

    async def list_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        version: str | None = None,
        pin: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[InstanceInfo]:
        rows = await self._db.fetch(
            "list_instances",
            status_filter(status),
            name,
            version,
            pin,
            bound_ms(created_after),
            bound_ms(created_before),
            limit,
            offset,
        )
        return [instance_from_row(r) for r in rows]

    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]:
        rows = await self._db.fetch("list_executions", instance_id)
        return [execution_from_row(instance_id, r) for r in rows]

    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        rows = await self._db.fetch("read_history", instance_id, execution_id)
        return decode_events([r[0] for r in rows])

    # ---- management --------------------------------------------------------------------

    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        return int(await self._db.fetchval("delete_instance", instance_id, force))

    async def delete_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        before = None if completed_before is None else int(completed_before.timestamp() * 1000)
        return int(await self._db.fetchval("delete_instances", status_filter(status), name, before))

    async def prune_executions(self, instance_id: str, keep_last: int = 1) -> int:
        return int(await self._db.fetchval("prune_executions", instance_id, max(keep_last, 1)))

    async def queue_depths(self) -> QueueDepths:
        db = self._db
        row = await db.fetchrow("queue_depths", db.now())
        return QueueDepths(*(int(v) for v in row))

    async def system_metrics(self) -> SystemMetrics:
        db = self._db
        row = await db.fetchrow("system_metrics", db.now())
        by_status = {str(k): int(v) for k, v in decode_json(row[0]).items()}
        return SystemMetrics(
            dict(sorted(by_status.items())),
            int(row[1]),
            int(row[2]),
            int(row[3]),
            int(row[4]),
            int(row[5]),
        )

    # ---- replay-check reads ------------------------------------------------------------

    async def execution_versions(
        self, *, ended_since: datetime | None = None
    ) -> list[VersionExecutions]:
        words = [s.value for s in ENDED_WELL]
        rows = await self._db.fetch("execution_versions", _ms(ended_since), words)
        return sorted(VersionExecutions(r[0], r[1], int(r[2]), int(r[3])) for r in rows)

    async def sample_executions(
        self,
        name: str,
        version: str,
        *,
        order: SampleOrder,
        limit: int,
        ended_since: datetime | None = None,
    ) -> list[ExecutionRef]:
        args = (name, version, _ms(ended_since), [s.value for s in ENDED_WELL], max(limit, 0))
        if order == "longest":
            rows = await self._db.fetch("sample_executions_longest", *args)
        else:
            rows = await self._db.fetch("sample_executions_recent", *args)
        return [execution_ref_from_row(r) for r in rows]


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _activity_work(data: str) -> ev.ActivityWork:
    work = decode_message(data)
    if not isinstance(work, ev.ActivityWork):
        raise StoreCorruptionError(f"worker queue holds a {type(work).__name__}")
    return work
