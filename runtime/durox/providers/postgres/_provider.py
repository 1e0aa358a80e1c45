"""PostgreSQL store: many workers, one database, one round trip per store operation.

Every operation that changes state is one call of a PL/pgSQL function defined by the
migrations, so it is one statement, one transaction and one network round trip (asyncpg keeps
the prepared statement per connection, and the pool's reset-on-release query is skipped because
no operation leaves session state behind). Instance locks are rows with a lease, taken with
`pg_try_advisory_xact_lock` so two fetchers never wait on each other; activity rows are taken
with `FOR UPDATE SKIP LOCKED`. Idle workers sleep on LISTEN/NOTIFY (one channel per schema, so
deployments sharing a database do not wake each other) and poll as a fallback; the listening
connection reconnects by itself and wakes everyone when it does, in case it missed something.

Times are milliseconds since the epoch from the database's clock, so workers on hosts with
skewed clocks agree on leases; tests may inject a clock instead (`clock=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from durox.core import events as ev
from durox.core.codec import (
    decode_events,
    decode_json,
    decode_message,
    encode_event,
    encode_json,
    encode_message,
)
from durox.core.versions import SemverRange, parse_version
from durox.errors import (
    DuroxError,
    HistoryDecodeError,
    InstanceAlreadyExistsError,
    InstanceRunningError,
    LockLostError,
    StoreConflictError,
    StoreCorruptionError,
    StoreUnavailableError,
)
from durox.providers._base import (
    DrainEntry,
    ExecutionInfo,
    InstanceInfo,
    OrchestrationItem,
    QueueDepths,
    QueueKind,
    Store,
    SystemMetrics,
    TurnCommit,
    WorkerRecord,
    WorkItem,
)
from durox.providers._rows import (
    EXECUTION_COLUMNS,
    INSTANCE_COLUMNS,
    Clock,
    encode_error,
    execution_from_row,
    instance_from_row,
    load_migrations,
    wall_ms,
    worker_body,
    worker_from_row,
)
from durox.providers._wakeups import Wakeups
from durox.status import status_filter

log = logging.getLogger(__name__)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration, in order."""
    return load_migrations("durox.providers.postgres")


_RETRYABLE_STATES = {
    "40001": StoreConflictError,  # serialization_failure
    "40P01": StoreConflictError,  # deadlock_detected
    "55P03": StoreConflictError,  # lock_not_available
    "0A000": StoreConflictError,  # feature_not_supported: "cached plan must not change result"
    "57014": StoreUnavailableError,  # query_canceled (statement timeout)
    "57P01": StoreUnavailableError,  # admin_shutdown
    "57P02": StoreUnavailableError,  # crash_shutdown
    "57P03": StoreUnavailableError,  # cannot_connect_now
    "53300": StoreUnavailableError,  # too_many_connections
}


def classify(exc: BaseException) -> DuroxError:
    """Map a driver (or socket) exception to the durox tree: retry, or give up."""
    if isinstance(exc, DuroxError):
        return exc
    if isinstance(exc, asyncpg.exceptions.InvalidCachedStatementError):
        return StoreConflictError(f"postgres: prepared statement went stale: {exc}")
    state = getattr(exc, "sqlstate", None)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError) and isinstance(state, str):
        return classify_state(state, text)
    if isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError | ConnectionError):
        return StoreUnavailableError(f"postgres connection: {text}")
    return StoreUnavailableError(f"postgres: {type(exc).__name__}: {text}")


def classify_state(state: str, text: str) -> DuroxError:
    """Map an SQLSTATE (raised, or reported per item by a batch function) to the durox tree."""
    if state == "DX001":
        return LockLostError(text)
    if state == "DX002":
        return InstanceAlreadyExistsError(text)
    if state == "DX003":
        return InstanceRunningError(text)
    if state in _RETRYABLE_STATES:
        return _RETRYABLE_STATES[state](f"postgres {state}: {text}")
    if state.startswith(("08", "53", "58")):  # connection, resources, system errors
        return StoreUnavailableError(f"postgres {state}: {text}")
    if state.startswith("23"):
        return StoreCorruptionError(f"postgres constraint violated ({state}): {text}")
    if state.startswith(("22", "XX", "42")):  # bad data, internal/corrupt, schema mismatch
        return StoreCorruptionError(f"postgres {state}: {text}")
    return StoreUnavailableError(f"postgres {state}: {text}")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset (no operation leaves session state behind)."""


class PostgresProvider(Store):
    """`await PostgresProvider.connect(dsn, schema="durox")`; `await provider.close()`."""

    batches_in_one_round_trip = True

    def __init__(self, dsn: str, schema: str, pool: Any, clock: Clock | None) -> None:
        """Use `connect`."""
        self._dsn = dsn
        self.schema = schema
        self._pool = pool
        self._clock = clock
        self._q = f'"{schema}".'
        self._channel = f"durox.{schema}"
        self._wakeups = Wakeups(self._local_now)
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._token_prefix = uuid.uuid4().hex[:16]
        self._tokens = itertools.count()

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
    ) -> PostgresProvider:
        """Connect, create or migrate `schema`, and start listening for wake-ups.

        Several deployments can share one database through separate schemas. `clock` (ms since
        the epoch) replaces the database's clock for tests; `listen=False` relies on polling.
        """
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lower-case identifier, not {schema!r}")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        try:
            conn = await asyncpg.connect(dsn, timeout=command_timeout)
            try:
                await _migrate(conn, schema)
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                command_timeout=command_timeout,
                reset=_no_reset,
                server_settings={"search_path": schema, "application_name": "durox"},
            )
        except Exception as exc:
            raise classify(exc) from exc
        provider = cls(dsn, schema, pool, clock)
        if listen:
            provider._listener = asyncio.create_task(
                provider._listen_forever(), name=f"durox-pg-listen-{schema}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(provider._listening.wait(), command_timeout)
        return provider

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._wakeups.wake_everyone()  # let idle dispatchers see the store is closed
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), 10)

    def __repr__(self) -> str:
        return f"PostgresProvider(schema={self.schema!r})"

    # ---- plumbing ----------------------------------------------------------------------

    def _now(self) -> int | None:
        """The injected clock, or None: the functions then read the database's clock."""
        return None if self._clock is None else self._clock()

    def _local_now(self) -> int:
        return self._clock() if self._clock is not None else wall_ms()

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    async def _call(self, method: str, sql: str, *args: Any) -> Any:
        if self._closed:
            raise StoreUnavailableError("store is closed")
        try:
            async with self._pool.acquire() as conn:
                return await getattr(conn, method)(sql, *args)
        except DuroxError:
            raise
        except Exception as exc:
            raise classify(exc) from exc

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._call("fetchrow", sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._call("fetch", sql, *args)
        return rows

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._call("fetchval", sql, *args)

    # ---- wake-ups ----------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        """Hold a LISTEN connection; on loss, reconnect with backoff and wake every waiter."""
        delay = 0.1
        while not self._closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._on_notify)
                self._listening.set()
                self._wakeups.wake_everyone()  # whatever was sent while we were not listening
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 5.0)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)  # detect a silent drop
                log.warning("postgres listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postgres listener: %s; retrying in %.1fs", classify(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._listening.clear()
                if conn is not None:
                    conn.terminate()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind = "orchestration" if payload[:1] == "o" else "activity"
        rest = payload[1:]
        try:
            if rest.startswith("@"):
                self._wakeups.notify(kind, visible_at=int(rest[1:]))
            else:
                self._wakeups.notify(kind, count=int(rest or "1"))
        except ValueError:
            log.debug("ignoring notification %r", payload)

    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> None:
        await self._wakeups.wait(kind, timeout_s)

    # ---- orchestration queue -----------------------------------------------------------

    async def start_instance(self, message: ev.StartOrchestration) -> None:
        await self._fetchval(
            f"SELECT {self._q}durox_start_instance($1, $2, $3)",
            message.instance_id,
            encode_message(message),
            self._now(),
        )

    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        await self._fetchval(
            f"SELECT {self._q}durox_enqueue($1, $2, $3, $4, $5)",
            message.instance_id,
            type(message).__name__,
            encode_message(message),
            delay_ms,
            self._now(),
        )

    @staticmethod
    def _range(replay_range: SemverRange | None) -> tuple[list[int] | None, list[int] | None]:
        if replay_range is None:
            return None, None
        (a, b, c), (d, e, f) = replay_range.bounds()
        return [a, b, c], [d, e, f]

    async def fetch_orchestration_items(
        self, lock_timeout_ms: int, replay_range: SemverRange | None = None, max_items: int = 1
    ) -> list[OrchestrationItem]:
        if max_items <= 0:
            return []
        if lock_timeout_ms <= 0:
            max_items = 1  # a lease that is over at once would let the batch take it again
        lo, hi = self._range(replay_range)
        began = time.monotonic()
        if max_items == 1:
            token = self._token()
            row = await self._fetchrow(
                f"SELECT $3::text AS lock_token, * FROM"
                f" {self._q}durox_fetch_orchestration($1, $2, $3, $4, $5)",
                self._now(),
                lock_timeout_ms,
                token,
                lo,
                hi,
            )
            rows = [] if row is None else [row]
        else:
            rows = await self._fetch(
                f"SELECT * FROM {self._q}durox_fetch_orchestration_batch($1, $2, $3, $4, $5)",
                self._now(),
                lock_timeout_ms,
                [self._token() for _ in range(max_items)],
                lo,
                hi,
            )
        if rows and self._clock is None and (time.monotonic() - began) * 1000 >= lock_timeout_ms:
            # The leases may have lapsed on the way back: hand them back rather than race.
            for row in rows:
                log.warning(
                    "orchestration fetch took longer than its lease; releasing the lock",
                    extra={"instance_id": row["instance_id"]},
                )
                await self.abandon_orchestration_item(row["lock_token"], ignore_attempt=True)
            return []
        return [self._item(row) for row in rows]

    @staticmethod
    def _item(row: Any) -> OrchestrationItem:
        item = OrchestrationItem(
            instance_id=row["instance_id"],
            execution_id=row["execution_id"],
            history=[],
            history_length=row["history_length"],
            messages=[],
            lock_token=row["lock_token"],
            attempt_count=row["attempt_count"],
            orchestration_name=row["orchestration_name"],
            orchestration_version=row["orchestration_version"],
            status=row["status"],
            pinned_engine_version=row["pinned_engine_version"],
        )
        try:
            item.messages = [decode_message(m) for m in row["messages"]]  # type: ignore[misc]
            item.history = decode_events(list(row["history"]))
        except HistoryDecodeError as exc:
            item.history = []
            item.history_error = str(exc)
        return item

    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        if not acks:
            return []
        try:
            failed = await self._fetchval(
                f"SELECT {self._q}durox_ack_orchestration_batch($1::{self._q}durox_turn[], $2)",
                [(token, *_turn(commit)) for token, commit in acks],
                self._now(),
            )
        except DuroxError as exc:
            return [exc] * len(acks)
        return [None if f is None else classify_state(*f.split(" ", 1)) for f in failed]

    async def abandon_orchestration_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        await self._fetchval(
            f"SELECT {self._q}durox_abandon_orchestration($1, $2, $3, $4)",
            lock_token,
            delay_ms,
            ignore_attempt,
            self._now(),
        )

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
        rows = await self._fetch(
            f"SELECT * FROM {self._q}durox_fetch_work_batch($1, $2, $3, $4, $5, $6)",
            self._now(),
            lock_timeout_ms,
            [self._token() for _ in range(max_items)],
            worker_id,
            session_lock_ms,
            max_sessions,
        )
        items = []
        for row in rows:
            work = decode_message(row["data"])
            if not isinstance(work, ev.ActivityWork):
                raise StoreCorruptionError(f"worker queue holds a {type(work).__name__}")
            items.append(WorkItem(work, row["lock_token"], row["attempt_count"]))
        return items

    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        if not acks:
            return []
        try:
            ok = await self._fetchval(
                f"SELECT {self._q}durox_ack_work_batch($1, $2, $3, $4)",
                [token for token, _ in acks],
                [r.instance_id for _, r in acks],
                [encode_message(r) for _, r in acks],
                self._now(),
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
        await self._fetchval(
            f"SELECT {self._q}durox_abandon_work($1, $2, $3, $4)",
            lock_token,
            delay_ms,
            ignore_attempt,
            self._now(),
        )

    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        ok = await self._fetchval(
            f"SELECT {self._q}durox_renew_work($1, $2, $3)",
            lock_token,
            lock_timeout_ms,
            self._now(),
        )
        if not ok:
            raise LockLostError("activity lock already lapsed, or the activity was cancelled")

    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        renewed = await self._fetchval(
            f"SELECT {self._q}durox_renew_sessions($1, $2, $3, $4)",
            worker_id,
            session_lock_ms,
            idle_timeout_ms,
            self._now(),
        )
        return int(renewed)

    # ---- worker capability records -------------------------------------------------------

    async def upsert_worker(self, record: WorkerRecord) -> None:
        body = worker_body(record)
        await self._fetchval(
            f"INSERT INTO {self._q}workers (worker_id, node_id, pool, engine_version, record,"
            " config_revision, started_at, heartbeat_at)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, {self._q}durox_now_ms()))"
            " ON CONFLICT (worker_id) DO UPDATE SET node_id = excluded.node_id,"
            " pool = excluded.pool, engine_version = excluded.engine_version,"
            " record = excluded.record, config_revision = excluded.config_revision,"
            " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            record.worker_id,
            record.node_id,
            record.pool,
            record.engine_version,
            body,
            record.config_revision,
            int(record.started_at.timestamp() * 1000),
            self._now(),
        )

    async def remove_worker(self, worker_id: str) -> None:
        await self._fetchval(f"DELETE FROM {self._q}workers WHERE worker_id = $1", worker_id)

    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        # One round trip: reap stale rows and read the live ones (the read filters by age too,
        # since it sees the table as it was before the delete).
        rows = await self._fetch(
            f"WITH t AS (SELECT coalesce($1, {self._q}durox_now_ms()) - $2 AS since),"
            f" gone AS (DELETE FROM {self._q}workers w USING t WHERE w.heartbeat_at < t.since)"
            " SELECT worker_id, node_id, pool, engine_version, record, config_revision,"
            f" started_at, heartbeat_at FROM {self._q}workers w, t"
            " WHERE w.heartbeat_at >= t.since AND ($3::text IS NULL OR w.pool = $3)"
            " ORDER BY worker_id",
            self._now(),
            stale_after_ms,
            pool,
        )
        return [worker_from_row(r) for r in rows]

    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        (a, b, c), (d, e, f) = replay_range.bounds()
        rows = await self._fetch(
            "SELECT i.orchestration_name, i.pinned_engine_version,"
            " count(*) FILTER (WHERE i.status = 'Running'), coalesce(sum(q.n), 0),"
            " coalesce(max(q.a), 0), count(*) FILTER (WHERE i.status = 'Failed'"
            " AND (i.error::json ->> 'kind') = 'poison')"
            f" FROM {self._q}instances i LEFT JOIN (SELECT instance_id, count(*) AS n,"
            f" max(attempt_count) AS a FROM {self._q}orchestrator_queue GROUP BY instance_id) q"
            " ON q.instance_id = i.instance_id"
            " WHERE i.pinned_major IS NOT NULL AND NOT ("
            " (i.pinned_major, i.pinned_minor, i.pinned_patch) >= ($1, $2, $3) AND"
            " (i.pinned_major, i.pinned_minor, i.pinned_patch) <= ($4, $5, $6))"
            " GROUP BY i.orchestration_name, i.pinned_engine_version"
            " ORDER BY i.orchestration_name, i.pinned_engine_version",
            a,
            b,
            c,
            d,
            e,
            f,
        )
        return [DrainEntry(r[0], r[1], r[2], int(r[3]), r[4], r[5]) for r in rows]

    # ---- reads -------------------------------------------------------------------------

    _INSTANCE_COLS = INSTANCE_COLUMNS
    _instance = staticmethod(instance_from_row)

    async def start_pending(self, instance_id: str) -> bool:
        found = await self._fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {self._q}orchestrator_queue WHERE instance_id = $1"
            " AND kind = 'StartOrchestration')",
            instance_id,
        )
        return bool(found)

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        row = await self._fetchrow(
            f"SELECT {self._INSTANCE_COLS} FROM {self._q}instances WHERE instance_id = $1",
            instance_id,
        )
        return None if row is None else self._instance(row)

    async def list_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        version: str | None = None,
        limit: int = 1000,
    ) -> list[InstanceInfo]:
        rows = await self._fetch(
            f"SELECT {self._INSTANCE_COLS} FROM {self._q}instances"
            " WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR orchestration_name = $2)"
            " AND ($3::text IS NULL OR orchestration_version = $3)"
            " ORDER BY created_at, instance_id LIMIT $4",
            status_filter(status),
            name,
            version,
            limit,
        )
        return [self._instance(r) for r in rows]

    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]:
        rows = await self._fetch(
            f"SELECT {EXECUTION_COLUMNS} FROM {self._q}executions"
            " WHERE instance_id = $1 ORDER BY execution_id",
            instance_id,
        )
        return [execution_from_row(instance_id, r) for r in rows]

    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        rows = await self._fetch(
            f"SELECT data FROM {self._q}history WHERE instance_id = $1 AND execution_id = $2"
            " ORDER BY event_id",
            instance_id,
            execution_id,
        )
        return decode_events([r[0] for r in rows])

    # ---- management --------------------------------------------------------------------

    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        deleted = await self._fetchval(
            f"SELECT {self._q}durox_delete_instance($1, $2)", instance_id, force
        )
        return int(deleted)

    async def delete_instances(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        before = None if completed_before is None else int(completed_before.timestamp() * 1000)
        deleted = await self._fetchval(
            f"SELECT {self._q}durox_delete_instances($1, $2, $3)",
            status_filter(status),
            name,
            before,
        )
        return int(deleted)

    async def prune_executions(self, instance_id: str, keep_last: int = 1) -> int:
        pruned = await self._fetchval(
            f"SELECT {self._q}durox_prune_executions($1, $2)", instance_id, max(keep_last, 1)
        )
        return int(pruned)

    async def queue_depths(self) -> QueueDepths:
        q = self._q
        row = await self._fetchrow(
            f"WITH t AS (SELECT coalesce($1, {q}durox_now_ms()) AS now)"
            " SELECT"
            f" (SELECT count(*) FROM {q}orchestrator_queue o, t WHERE o.visible_at <= t.now"
            f"  AND NOT EXISTS (SELECT 1 FROM {q}instance_locks l WHERE"
            "   l.instance_id = o.instance_id AND l.locked_until > t.now)),"
            f" (SELECT count(*) FROM {q}orchestrator_queue o, t WHERE o.visible_at > t.now),"
            f" (SELECT count(*) FROM {q}orchestrator_queue o, t WHERE o.visible_at <= t.now"
            f"  AND EXISTS (SELECT 1 FROM {q}instance_locks l WHERE"
            "   l.instance_id = o.instance_id AND l.locked_until > t.now)),"
            f" (SELECT count(*) FROM {q}worker_queue w, t WHERE w.visible_at <= t.now"
            "  AND (w.lock_token IS NULL OR w.locked_until <= t.now)),"
            f" (SELECT count(*) FROM {q}worker_queue w, t WHERE w.visible_at > t.now"
            "  AND (w.lock_token IS NULL OR w.locked_until <= t.now)),"
            f" (SELECT count(*) FROM {q}worker_queue w, t WHERE w.lock_token IS NOT NULL"
            "  AND w.locked_until > t.now)"
            " FROM t",
            self._now(),
        )
        return QueueDepths(*(int(v) for v in row))

    async def system_metrics(self) -> SystemMetrics:
        q = self._q
        row = await self._fetchrow(
            f"WITH t AS (SELECT coalesce($1, {q}durox_now_ms()) AS now)"
            " SELECT"
            f" (SELECT coalesce(json_object_agg(status, n), '{{}}')::text FROM (SELECT status,"
            f"  count(*) AS n FROM {q}instances GROUP BY status) s),"
            f" (SELECT count(*) FROM {q}executions),"
            f" (SELECT count(*) FROM {q}history),"
            f" (SELECT count(*) FROM {q}instance_locks l WHERE l.locked_until > t.now),"
            f" (SELECT count(*) FROM {q}sessions s WHERE s.locked_until > t.now),"
            f" (SELECT count(*) FROM {q}workers)"
            " FROM t",
            self._now(),
        )
        by_status = {str(k): int(v) for k, v in decode_json(row[0]).items()}
        return SystemMetrics(
            dict(sorted(by_status.items())),
            int(row[1]),
            int(row[2]),
            int(row[3]),
            int(row[4]),
            int(row[5]),
        )


def _turn(commit: TurnCommit) -> tuple[Any, ...]:
    """A turn as `durox_ack_orchestration` takes it after its token and clock."""
    upd = commit.instance
    pin = parse_version(upd.engine_version) if upd and upd.engine_version else None
    timers = commit.timers
    msgs = commit.messages
    acts = commit.activities
    return (
        commit.execution_id,
        upd is not None,
        bool(upd and upd.started_execution),
        upd.name if upd else None,
        upd.version if upd else None,
        upd.status if upd else None,
        None if upd is None or upd.output is None else encode_json(upd.output),
        None if upd is None or upd.error is None else encode_error(upd.error),
        None if upd is None or upd.custom_status is None else encode_json(upd.custom_status),
        upd.parent_instance_id if upd else None,
        upd.engine_version if upd else None,
        pin.major if pin else None,
        pin.minor if pin else None,
        pin.patch if pin else None,
        [e.event_id for e in commit.new_events],
        [encode_event(e) for e in commit.new_events],
        [w.instance_id for w in acts],
        [w.execution_id for w in acts],
        [w.event_id for w in acts],
        [w.session_id for w in acts],
        [encode_message(w) for w in acts],
        [t.instance_id for t in timers] + [m.instance_id for m in msgs],
        ["TimerDue"] * len(timers) + [type(m).__name__ for m in msgs],
        [encode_message(t) for t in timers] + [encode_message(m) for m in msgs],
        [t.fire_at for t in timers] + [None] * len(msgs),  # None: visible at once
        commit.cancelled_activities,
    )


async def _migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Apply pending migrations in one transaction under an advisory lock on the schema's name,
    so any number of workers starting together against a fresh database serialise here."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('durox-migrate/' || $1::text, 0))",
            schema,
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS durox_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM durox_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            log.info("applying postgres migration %s to schema %s", name, schema)
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO durox_migrations (version, name) VALUES ($1, $2)", version, name
            )
