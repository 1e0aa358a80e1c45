"""SQLite store: a single connection driven from one dedicated thread.

SQLite serialises writers anyway, so one connection per provider loses nothing and buys a lot:
every operation is one function that runs a whole transaction in the store's thread, so an
acknowledgement costs one hop from the event loop, not one per statement. WAL lets other
processes read while we write; `busy_timeout` lets several processes share a file. In-process
wake-ups (an `asyncio.Event` per queue) give idle dispatchers millisecond latency without
polling; other processes are found by the polling fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from durox.core import events as ev
from durox.core.codec import (
    decode_events,
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
    gather_outcomes,
)
from durox.providers._rows import (
    EXECUTION_COLUMNS,
    INSTANCE_COLUMNS,
    Clock,
    execution_from_row,
    instance_from_row,
    load_migrations,
    wall_ms,
    worker_body,
    worker_from_row,
)
from durox.providers._wakeups import Wakeups
from durox.status import TERMINAL, InstanceStatus, sql_list, status_filter

log = logging.getLogger(__name__)
T = TypeVar("T")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration, in order."""
    return load_migrations("durox.providers.sqlite")


def _classify(exc: sqlite3.Error) -> DuroxError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in text or "busy" in text or "unable to open" in text or "disk I/O" in text
    ):
        return StoreUnavailableError(f"sqlite: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreCorruptionError(f"sqlite constraint violated: {text}")
    if isinstance(exc, sqlite3.DatabaseError) and "malformed" in text:
        return StoreCorruptionError(f"sqlite database is corrupt: {text}")
    return StoreUnavailableError(f"sqlite: {text}")


class _Op:
    """One store operation: a function run inside the current group transaction."""

    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any] | None,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SqliteProvider(Store):
    """`await SqliteProvider.open(path)` or `await SqliteProvider.in_memory()`.

    Operations queue up for the store's thread, which runs whatever is waiting as one
    transaction (group commit): each operation in its own savepoint, so one that fails is rolled
    back alone, and the whole group is made durable by a single commit (one fsync). Under load
    that turns N fsyncs into one; with a single caller it is an ordinary transaction.
    """

    MAX_GROUP = 64

    def __init__(self, clock: Clock, label: str) -> None:
        """Use `open` or `in_memory`; the connection is made in the store's own thread."""
        self._conn: sqlite3.Connection
        self._clock = clock
        self._label = label
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._wakeups = Wakeups(clock)
        self._closed = False
        self._token_prefix = uuid.uuid4().hex[:12]
        self._tokens = itertools.count()

    # ---- construction ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
    ) -> SqliteProvider:
        """Open (and create or migrate) a store file. `synchronous` is SQLite's sync level."""
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown SQLite synchronous level {synchronous!r}")
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return await cls._create(str(p), synchronous.upper(), clock or wall_ms)

    @classmethod
    async def in_memory(cls, *, clock: Clock | None = None) -> SqliteProvider:
        """A private store that lives as long as this object (tests, experiments)."""
        return await cls._create(":memory:", "OFF", clock or wall_ms)

    @classmethod
    async def _create(cls, target: str, sync: str, clock: Clock) -> SqliteProvider:
        provider = cls(clock, target)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def serve() -> None:
            try:
                conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
                try:
                    conn.execute("PRAGMA busy_timeout = 10000")
                    if target != ":memory:":
                        conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(f"PRAGMA synchronous = {sync}")
                    _migrate(conn)
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.Error as exc:
                loop.call_soon_threadsafe(_settle, ready, None, _classify(exc))
                return
            provider._conn = conn
            loop.call_soon_threadsafe(_settle, ready, None, None)
            provider._serve()

        provider._thread = threading.Thread(target=serve, name="durox-sqlite", daemon=True)
        provider._thread.start()
        await ready
        return provider

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Op(None, done, loop))
        await done

    def __repr__(self) -> str:
        return f"SqliteProvider({self._label!r})"

    # ---- plumbing ----------------------------------------------------------------------

    def _serve(self) -> None:
        """The store thread: take what is queued, run it as one transaction, repeat."""
        q = self._queue
        while True:
            group = [q.get()]
            while len(group) < self.MAX_GROUP and group[-1].fn is not None:
                try:
                    group.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = group[-1].fn is None
            work = group[:-1] if stop else group
            if work:
                try:
                    self._run_group(work)
                except BaseException as exc:  # the thread must outlive any one bad group
                    log.exception("sqlite store thread: group failed")
                    err = StoreUnavailableError(f"sqlite store thread error: {exc}")
                    for op in work:
                        op.loop.call_soon_threadsafe(_settle, op.future, None, err)
                    with contextlib.suppress(sqlite3.Error):
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
            if stop:
                self._conn.close()
                last = group[-1]
                last.loop.call_soon_threadsafe(_settle, last.future, None, None)
                return

    def _run_group(self, group: list[_Op]) -> None:
        c = self._conn
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            err = _classify(exc)
            for op in group:
                op.loop.call_soon_threadsafe(_settle, op.future, None, err)
            return
        broken: BaseException | None = None
        for op in group:
            assert op.fn is not None
            c.execute("SAVEPOINT op")
            try:
                result = op.fn(c)
            except BaseException as exc:
                error = _classify(exc) if isinstance(exc, sqlite3.Error) else exc
                if c.in_transaction:
                    c.execute("ROLLBACK TO op")
                    c.execute("RELEASE op")
                    outcomes.append((op, None, error))
                    continue
                broken = error  # SQLite rolled the whole transaction back
                break
            c.execute("RELEASE op")
            outcomes.append((op, result, None))
        if broken is None:
            try:
                c.execute("COMMIT")
            except sqlite3.Error as exc:
                broken = _classify(exc)
                if c.in_transaction:
                    c.execute("ROLLBACK")
        if broken is not None:
            outcomes = [(op, None, broken) for op in group]
        for op, result, failure in outcomes:
            op.loop.call_soon_threadsafe(_settle, op.future, result, failure)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailableError("store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, future, loop))
        return await future

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    def _notify(self, kind: QueueKind, visible_at: int | None = None, count: int = 1) -> None:
        self._wakeups.notify(kind, visible_at, count)

    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> None:
        await self._wakeups.wait(kind, timeout_s)

    # ---- orchestration queue -----------------------------------------------------------

    async def start_instance(self, message: ev.StartOrchestration) -> None:
        now = self._clock()
        data = encode_message(message)

        def tx(c: sqlite3.Connection) -> None:
            taken = c.execute(
                "SELECT 1 FROM instances WHERE instance_id = ? UNION ALL "
                "SELECT 1 FROM orchestrator_queue WHERE instance_id = ? "
                "AND kind = 'StartOrchestration' LIMIT 1",
                (message.instance_id, message.instance_id),
            ).fetchone()
            if taken:
                raise InstanceAlreadyExistsError(f"instance {message.instance_id!r} exists")
            c.execute(
                "INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at) "
                "VALUES (?, 'StartOrchestration', ?, ?, ?)",
                (message.instance_id, data, now, now),
            )

        await self._run(tx)
        self._notify("orchestration")

    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        now = self._clock()
        visible = now + max(0, delay_ms)
        row = (message.instance_id, type(message).__name__, encode_message(message), visible, now)

        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )

        await self._run(tx)
        self._notify("orchestration", visible)

    async def fetch_orchestration_items(
        self, lock_timeout_ms: int, replay_range: SemverRange | None = None, max_items: int = 1
    ) -> list[OrchestrationItem]:
        now = self._clock()
        if lock_timeout_ms <= 0:
            max_items = min(max_items, 1)  # a lease over at once could be taken again
        tokens = [self._token() for _ in range(max(max_items, 0))]
        if replay_range is None:
            range_sql, range_args = "", tuple[int, ...]()
        else:
            (a, b, c_), (d, e, f) = replay_range.bounds()
            range_sql = (
                " AND (i.pinned_major IS NULL OR ("
                "(i.pinned_major, i.pinned_minor, i.pinned_patch) >= (?, ?, ?) AND "
                "(i.pinned_major, i.pinned_minor, i.pinned_patch) <= (?, ?, ?)))"
            )
            range_args = (a, b, c_, d, e, f)

        def take(c: sqlite3.Connection, token: str) -> OrchestrationItem | None:
            row = c.execute(
                "SELECT q.instance_id FROM orchestrator_queue q "
                "LEFT JOIN instance_locks l ON l.instance_id = q.instance_id "
                "LEFT JOIN instances i ON i.instance_id = q.instance_id "
                "WHERE q.visible_at <= ? AND (l.instance_id IS NULL OR l.locked_until <= ?)"
                + range_sql
                + " ORDER BY q.id LIMIT 1",
                (now, now, *range_args),
            ).fetchone()
            if row is None:
                return None
            instance_id: str = row[0]
            c.execute(
                "INSERT INTO instance_locks (instance_id, lock_token, locked_until) "
                "VALUES (?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET "
                "lock_token = excluded.lock_token, locked_until = excluded.locked_until",
                (instance_id, token, now + lock_timeout_ms),
            )
            rows = c.execute(
                "UPDATE orchestrator_queue SET lock_token = ?, attempt_count = attempt_count + 1 "
                "WHERE instance_id = ? AND visible_at <= ? RETURNING id, data, attempt_count",
                (token, instance_id, now),
            ).fetchall()
            inst = c.execute(
                "SELECT orchestration_name, orchestration_version, current_execution_id, status, "
                "pinned_engine_version FROM instances WHERE instance_id = ?",
                (instance_id,),
            ).fetchone()
            history_rows: list[tuple[str]] = []
            count = 0
            if inst is not None:
                # The highest event id, read from the rows themselves (never from a counter a
                # newer engine may have kept differently), so a poison record appends cleanly.
                count = c.execute(
                    "SELECT coalesce(max(event_id), 0) FROM history"
                    " WHERE instance_id = ? AND execution_id = ?",
                    (instance_id, inst[2]),
                ).fetchone()[0]
                if inst[3] == InstanceStatus.RUNNING:
                    history_rows = c.execute(
                        "SELECT data FROM history WHERE instance_id = ? AND execution_id = ? "
                        "ORDER BY event_id",
                        (instance_id, inst[2]),
                    ).fetchall()
            rows.sort(key=lambda r: r[0])
            item = OrchestrationItem(
                instance_id=instance_id,
                execution_id=inst[2] if inst else 0,
                history=[],
                history_length=count,
                messages=[],
                lock_token=token,
                attempt_count=max(r[2] for r in rows),
                orchestration_name=inst[0] if inst else None,
                orchestration_version=inst[1] if inst else None,
                status=inst[3] if inst else None,
                pinned_engine_version=inst[4] if inst else None,
            )
            try:
                item.messages = [decode_message(r[1]) for r in rows]  # type: ignore[misc]
                item.history = decode_events([h[0] for h in history_rows])
            except HistoryDecodeError as exc:
                item.history = []
                item.history_error = str(exc)
            return item

        def tx(c: sqlite3.Connection) -> list[OrchestrationItem]:
            items = []
            for token in tokens:
                item = take(c, token)
                if item is None:
                    break
                items.append(item)
            return items

        return await self._run(tx)

    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        # Side by side: the group commit gathers them into one transaction, each in its own
        # savepoint, so one that fails is rolled back alone.
        return await gather_outcomes(self._ack_turn(token, commit) for token, commit in acks)

    async def _ack_turn(self, lock_token: str, commit: TurnCommit) -> None:
        now = self._clock()
        history_rows = [(e.event_id, encode_event(e)) for e in commit.new_events]
        work_rows = [
            (w.instance_id, w.execution_id, w.event_id, w.session_id, encode_message(w), now, now)
            for w in commit.activities
        ]
        queue_rows = [
            (t.instance_id, "TimerDue", encode_message(t), t.fire_at, now) for t in commit.timers
        ] + [
            (m.instance_id, type(m).__name__, encode_message(m), now, now) for m in commit.messages
        ]
        upd = commit.instance
        inst_args: tuple[Any, ...] | None = None
        if upd is not None:
            pin = parse_version(upd.engine_version) if upd.engine_version else None
            inst_args = (
                upd.name,
                upd.version,
                commit.execution_id,
                upd.status,
                None if upd.output is None else encode_json(upd.output),
                None
                if upd.error is None
                else encode_json(
                    {"kind": upd.error.kind, "type": upd.error.type, "message": upd.error.message}
                ),
                None if upd.custom_status is None else encode_json(upd.custom_status),
                upd.parent_instance_id,
                upd.engine_version,
                pin.major if pin else None,
                pin.minor if pin else None,
                pin.patch if pin else None,
                now,
                now,
            )

        def tx(c: sqlite3.Connection) -> None:
            lock = c.execute(
                "SELECT instance_id, locked_until FROM instance_locks WHERE lock_token = ?",
                (lock_token,),
            ).fetchone()
            if lock is None or lock[1] < now:
                raise LockLostError("orchestration lock expired or was taken before the ack")
            instance_id = lock[0]
            c.execute("DELETE FROM orchestrator_queue WHERE lock_token = ?", (lock_token,))
            if upd is not None and inst_args is not None:
                if upd.started_execution:
                    c.execute(
                        "INSERT INTO executions (instance_id, execution_id, orchestration_version,"
                        " status, engine_version, started_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            instance_id,
                            commit.execution_id,
                            upd.version,
                            InstanceStatus.RUNNING,
                            upd.engine_version,
                            now,
                        ),
                    )
                c.execute(
                    "INSERT INTO instances (instance_id, orchestration_name, orchestration_version,"
                    " current_execution_id, status, output, error, custom_status,"
                    " parent_instance_id, pinned_engine_version, pinned_major, pinned_minor,"
                    " pinned_patch, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (instance_id) DO UPDATE SET"
                    " orchestration_name = excluded.orchestration_name,"
                    " orchestration_version = excluded.orchestration_version,"
                    " current_execution_id = excluded.current_execution_id,"
                    " status = excluded.status, output = excluded.output, error = excluded.error,"
                    " custom_status = excluded.custom_status,"
                    " pinned_engine_version = excluded.pinned_engine_version,"
                    " pinned_major = excluded.pinned_major, pinned_minor = excluded.pinned_minor,"
                    " pinned_patch = excluded.pinned_patch, updated_at = excluded.updated_at",
                    (instance_id, *inst_args),
                )
                c.execute(
                    "UPDATE executions SET status = ?, output = ?, event_count = event_count + ?,"
                    " completed_at = CASE WHEN ? = ? THEN NULL ELSE ? END"
                    " WHERE instance_id = ? AND execution_id = ?",
                    (
                        upd.status,
                        inst_args[4],
                        len(history_rows),
                        upd.status,
                        InstanceStatus.RUNNING,
                        now,
                        instance_id,
                        commit.execution_id,
                    ),
                )
            if history_rows:
                c.executemany(
                    "INSERT INTO history (instance_id, execution_id, event_id, data)"
                    " VALUES (?, ?, ?, ?)",
                    [(instance_id, commit.execution_id, eid, d) for eid, d in history_rows],
                )
            if work_rows:
                c.executemany(
                    "INSERT INTO worker_queue (instance_id, execution_id, event_id, session_id,"
                    " data, visible_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    work_rows,
                )
            if queue_rows:
                c.executemany(
                    "INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    queue_rows,
                )
            if commit.cancelled_activities:
                c.executemany(
                    "DELETE FROM worker_queue WHERE instance_id = ? AND execution_id = ?"
                    " AND event_id = ?",
                    [(instance_id, commit.execution_id, i) for i in commit.cancelled_activities],
                )
            c.execute("DELETE FROM instance_locks WHERE lock_token = ?", (lock_token,))

        await self._run(tx)
        if work_rows:
            self._notify("activity", count=len(work_rows))
        if commit.messages:
            self._notify("orchestration", count=len(commit.messages))
        for t in commit.timers:
            self._notify("orchestration", t.fire_at)

    async def abandon_orchestration_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        now = self._clock()
        visible = now + max(0, delay_ms)

        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE orchestrator_queue SET lock_token = NULL, visible_at = MAX(visible_at, ?),"
                " attempt_count = attempt_count - ? WHERE lock_token = ?",
                (visible, 1 if ignore_attempt else 0, lock_token),
            )
            c.execute("DELETE FROM instance_locks WHERE lock_token = ?", (lock_token,))

        await self._run(tx)
        self._notify("orchestration", visible)

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
        now = self._clock()
        if lock_timeout_ms <= 0:
            max_items = min(max_items, 1)  # a lease over at once could be taken again
        tokens = [self._token() for _ in range(max(max_items, 0))]

        def take(c: sqlite3.Connection, token: str) -> tuple[str, int] | None:
            if max_sessions is None:
                can_claim = 1
            elif max_sessions <= 0:
                can_claim = 0
            else:
                owned = c.execute(
                    "SELECT count(*) FROM sessions WHERE owner_id = ? AND locked_until > ?",
                    (worker_id, now),
                ).fetchone()[0]
                can_claim = 1 if owned < max_sessions else 0
            row = c.execute(
                "UPDATE worker_queue SET lock_token = ?, locked_until = ?,"
                " attempt_count = attempt_count + 1 WHERE id = (SELECT q.id FROM worker_queue q"
                " LEFT JOIN sessions s ON s.session_id = q.session_id"
                " WHERE q.visible_at <= ? AND (q.lock_token IS NULL OR q.locked_until <= ?)"
                " AND (q.session_id IS NULL"
                "  OR (s.owner_id = ? AND s.locked_until > ?)"
                "  OR ((s.session_id IS NULL OR s.locked_until <= ?) AND ? = 1))"
                " ORDER BY q.id LIMIT 1) RETURNING data, attempt_count, session_id",
                (token, now + lock_timeout_ms, now, now, worker_id, now, now, can_claim),
            ).fetchone()
            if row is not None and row[2] is not None:
                c.execute(
                    "INSERT INTO sessions (session_id, owner_id, locked_until, last_activity_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                    " owner_id = excluded.owner_id, locked_until = excluded.locked_until,"
                    " last_activity_at = excluded.last_activity_at",
                    (row[2], worker_id, now + session_lock_ms, now),
                )
            return None if row is None else (row[0], row[1])

        def tx(c: sqlite3.Connection) -> list[tuple[str, str, int]]:
            got = []
            for token in tokens:
                row = take(c, token)
                if row is None:
                    break
                got.append((token, row[0], row[1]))
            return got

        items = []
        for token, data, attempts in await self._run(tx):
            work = decode_message(data)
            if not isinstance(work, ev.ActivityWork):
                raise StoreCorruptionError(f"worker queue holds a {type(work).__name__}")
            items.append(WorkItem(work, token, attempts))
        return items

    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> int:
            renewed = c.execute(
                "UPDATE sessions SET locked_until = ? WHERE owner_id = ? AND locked_until > ?"
                " AND (last_activity_at >= ? OR EXISTS (SELECT 1 FROM worker_queue q"
                " WHERE q.session_id = sessions.session_id AND q.locked_until > ?))",
                (now + session_lock_ms, worker_id, now, now - idle_timeout_ms, now),
            ).rowcount
            c.execute("DELETE FROM sessions WHERE locked_until <= ?", (now,))
            return int(renewed)

        return await self._run(tx)

    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        return await gather_outcomes(self._ack_work(token, result) for token, result in acks)

    async def _ack_work(self, lock_token: str, result: ev.ActivityResult) -> None:
        now = self._clock()
        data = encode_message(result)

        def tx(c: sqlite3.Connection) -> None:
            gone = c.execute(
                "DELETE FROM worker_queue WHERE lock_token = ? AND locked_until >= ?"
                " RETURNING session_id",
                (lock_token, now),
            ).fetchone()
            if gone is None:
                raise LockLostError("activity lock expired, or the activity was cancelled")
            if gone[0] is not None:
                c.execute(
                    "UPDATE sessions SET last_activity_at = ? WHERE session_id = ?", (now, gone[0])
                )
            c.execute(
                "INSERT INTO orchestrator_queue (instance_id, kind, data, visible_at, created_at)"
                " VALUES (?, 'ActivityResult', ?, ?, ?)",
                (result.instance_id, data, now, now),
            )

        await self._run(tx)
        self._notify("orchestration")

    async def abandon_work_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE worker_queue SET lock_token = NULL, locked_until = NULL,"
                " visible_at = ?, attempt_count = attempt_count - ? WHERE lock_token = ?",
                (now + max(0, delay_ms), 1 if ignore_attempt else 0, lock_token),
            )

        await self._run(tx)
        self._notify("activity", now + max(0, delay_ms))

    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE worker_queue SET locked_until = ? WHERE lock_token = ?"
                " AND locked_until >= ?",
                (now + lock_timeout_ms, lock_token, now),
            )
            if cur.rowcount == 0:
                raise LockLostError("activity lock already lapsed, or the activity was cancelled")

        await self._run(tx)

    # ---- worker capability records -------------------------------------------------------

    async def upsert_worker(self, record: WorkerRecord) -> None:
        body = worker_body(record)
        now = self._clock()
        args = (
            record.worker_id,
            record.node_id,
            record.pool,
            record.engine_version,
            body,
            record.config_revision,
            int(record.started_at.timestamp() * 1000),
            now,
        )

        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO workers (worker_id, node_id, pool, engine_version, record,"
                " config_revision, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (worker_id) DO UPDATE SET node_id = excluded.node_id,"
                " pool = excluded.pool, engine_version = excluded.engine_version,"
                " record = excluded.record, config_revision = excluded.config_revision,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                args,
            )

        await self._run(tx)

    async def remove_worker(self, worker_id: str) -> None:
        await self._run(
            lambda c: c.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
        )

    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            c.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - stale_after_ms,))
            sql = (
                "SELECT worker_id, node_id, pool, engine_version, record, config_revision,"
                " started_at, heartbeat_at FROM workers"
            )
            if pool is None:
                return c.execute(sql + " ORDER BY worker_id").fetchall()
            return c.execute(sql + " WHERE pool = ? ORDER BY worker_id", (pool,)).fetchall()

        return [worker_from_row(r) for r in await self._run(tx)]

    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        (a, b, c_), (d, e, f) = replay_range.bounds()

        def tx(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return c.execute(
                "SELECT i.orchestration_name, i.pinned_engine_version,"
                " sum(i.status = ?), coalesce(sum(q.n), 0), coalesce(max(q.a), 0),"
                " sum(i.status = ? AND json_extract(i.error, '$.kind') = 'poison')"
                " FROM instances i LEFT JOIN (SELECT instance_id, count(*) AS n,"
                " max(attempt_count) AS a FROM orchestrator_queue GROUP BY instance_id) q"
                " ON q.instance_id = i.instance_id"
                " WHERE i.pinned_major IS NOT NULL AND NOT ("
                " (i.pinned_major, i.pinned_minor, i.pinned_patch) >= (?, ?, ?) AND"
                " (i.pinned_major, i.pinned_minor, i.pinned_patch) <= (?, ?, ?))"
                " GROUP BY i.orchestration_name, i.pinned_engine_version"
                " ORDER BY i.orchestration_name, i.pinned_engine_version",
                (InstanceStatus.RUNNING, InstanceStatus.FAILED, a, b, c_, d, e, f),
            ).fetchall()

        return [DrainEntry(r[0], r[1], r[2], r[3], r[4], r[5]) for r in await self._run(tx)]

    # ---- reads -------------------------------------------------------------------------

    _INSTANCE_COLS = INSTANCE_COLUMNS
    _instance = staticmethod(instance_from_row)

    async def start_pending(self, instance_id: str) -> bool:
        row = await self._run(
            lambda c: c.execute(
                "SELECT 1 FROM orchestrator_queue WHERE instance_id = ?"
                " AND kind = 'StartOrchestration' LIMIT 1",
                (instance_id,),
            ).fetchone()
        )
        return row is not None

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        sql = f"SELECT {self._INSTANCE_COLS} FROM instances WHERE instance_id = ?"
        row = await self._run(lambda c: c.execute(sql, (instance_id,)).fetchone())
        return None if row is None else self._instance(row)

    async def list_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        version: str | None = None,
        limit: int = 1000,
    ) -> list[InstanceInfo]:
        where, args = [], []
        for col, val in (
            ("status", status_filter(status)),
            ("orchestration_name", name),
            ("orchestration_version", version),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = f"SELECT {self._INSTANCE_COLS} FROM instances"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, instance_id LIMIT ?"
        rows = await self._run(lambda c: c.execute(sql, (*args, limit)).fetchall())
        return [self._instance(r) for r in rows]

    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]:
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT {EXECUTION_COLUMNS} FROM executions"
                " WHERE instance_id = ? ORDER BY execution_id",
                (instance_id,),
            ).fetchall()
        )
        return [execution_from_row(instance_id, r) for r in rows]

    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT data FROM history WHERE instance_id = ? AND execution_id = ?"
                " ORDER BY event_id",
                (instance_id, execution_id),
            ).fetchall()
        )
        return decode_events([r[0] for r in rows])

    # ---- management (delete, prune, depths, metrics) --------------------------------------

    _TREE_SQL = (
        "WITH RECURSIVE tree(instance_id, status) AS ("
        " SELECT instance_id, status FROM instances WHERE instance_id = ?"
        " UNION SELECT c.instance_id, c.status FROM instances c"
        " JOIN tree t ON c.parent_instance_id = t.instance_id)"
        " SELECT instance_id, status FROM tree"
    )

    @staticmethod
    def _delete_tree(c: sqlite3.Connection, ids: list[str]) -> int:
        marks = ", ".join("?" * len(ids))
        for table in ("history", "executions", "orchestrator_queue", "worker_queue"):
            c.execute(f"DELETE FROM {table} WHERE instance_id IN ({marks})", ids)
        c.execute(f"DELETE FROM instance_locks WHERE instance_id IN ({marks})", ids)
        return c.execute(f"DELETE FROM instances WHERE instance_id IN ({marks})", ids).rowcount

    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        def tx(c: sqlite3.Connection) -> int:
            tree = c.execute(self._TREE_SQL, (instance_id,)).fetchall()
            if not tree:
                return 0
            running = sorted(i for i, status in tree if status not in TERMINAL)
            if running and not force:
                raise InstanceRunningError(
                    f"instance {running[0]!r} is still running; delete it with force=True"
                )
            return self._delete_tree(c, [i for i, _ in tree])

        return await self._run(tx)

    async def delete_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        status = status_filter(status)
        before = None if completed_before is None else int(completed_before.timestamp() * 1000)

        def tx(c: sqlite3.Connection) -> int:
            candidates = c.execute(
                f"SELECT instance_id FROM instances WHERE status IN ({sql_list(TERMINAL)})"
                " AND (? IS NULL OR status = ?) AND (? IS NULL OR orchestration_name = ?)"
                " AND (? IS NULL OR updated_at < ?) ORDER BY instance_id",
                (status, status, name, name, before, before),
            ).fetchall()
            total = 0
            for (instance_id,) in candidates:
                tree = c.execute(self._TREE_SQL, (instance_id,)).fetchall()
                if tree and all(st in TERMINAL for _, st in tree):
                    total += self._delete_tree(c, [i for i, _ in tree])
            return total

        return await self._run(tx)

    async def prune_executions(self, instance_id: str, keep_last: int = 1) -> int:
        keep = max(keep_last, 1)

        def tx(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT current_execution_id FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                return 0
            last = row[0] - keep
            c.execute(
                "DELETE FROM history WHERE instance_id = ? AND execution_id <= ?",
                (instance_id, last),
            )
            return c.execute(
                "DELETE FROM executions WHERE instance_id = ? AND execution_id <= ?",
                (instance_id, last),
            ).rowcount

        return await self._run(tx)

    async def queue_depths(self) -> QueueDepths:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> tuple[int, ...]:
            held = (
                "EXISTS (SELECT 1 FROM instance_locks l WHERE l.instance_id = o.instance_id"
                " AND l.locked_until > :now)"
            )
            free = "(w.lock_token IS NULL OR w.locked_until <= :now)"
            row: tuple[int, ...] = c.execute(
                "SELECT"
                f" (SELECT count(*) FROM orchestrator_queue o WHERE visible_at <= :now"
                f"  AND NOT {held}),"
                " (SELECT count(*) FROM orchestrator_queue o WHERE visible_at > :now),"
                f" (SELECT count(*) FROM orchestrator_queue o WHERE visible_at <= :now AND {held}),"
                f" (SELECT count(*) FROM worker_queue w WHERE visible_at <= :now AND {free}),"
                f" (SELECT count(*) FROM worker_queue w WHERE visible_at > :now AND {free}),"
                " (SELECT count(*) FROM worker_queue w WHERE lock_token IS NOT NULL"
                "  AND locked_until > :now)",
                {"now": now},
            ).fetchone()
            return row

        return QueueDepths(*await self._run(tx))

    async def system_metrics(self) -> SystemMetrics:
        now = self._clock()

        def tx(c: sqlite3.Connection) -> tuple[list[tuple[str, int]], tuple[int, ...]]:
            by_status = c.execute(
                "SELECT status, count(*) FROM instances GROUP BY status ORDER BY status"
            ).fetchall()
            counts: tuple[int, ...] = c.execute(
                "SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM history),"
                " (SELECT count(*) FROM instance_locks WHERE locked_until > ?),"
                " (SELECT count(*) FROM sessions WHERE locked_until > ?),"
                " (SELECT count(*) FROM workers)",
                (now, now),
            ).fetchone()
            return by_status, counts

        by_status, counts = await self._run(tx)
        return SystemMetrics(dict(by_status), *counts)


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply pending migrations, each in its own exclusive transaction (safe across processes)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS durox_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    for version, name, sql in migrations():
        conn.execute("BEGIN EXCLUSIVE")
        try:
            done = conn.execute(
                "SELECT 1 FROM durox_migrations WHERE version = ?", (version,)
            ).fetchone()
            if not done:
                log.info("applying sqlite migration %s", name)
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO durox_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, wall_ms()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]
