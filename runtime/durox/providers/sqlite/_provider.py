"""SQLite store: the `Provider` half (queues, sessions, worker records) and construction.

Every operation is one function run as a transaction by the group-commit executor
(`_executor`), with its statements taken by name from `queries.sql`; the `ProviderAdmin` half is
in `_admin`. In-process wake-ups give idle dispatchers, and clients waiting for an instance to
end, millisecond latency without polling; what other processes commit to the same file wakes
nobody here, and is found by the polling fallbacks.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    LockLostError,
    StoreCorruptionError,
)
from durox.providers._base import (
    CompletionWatch,
    OrchestrationItem,
    QueueKind,
    Store,
    TurnCommit,
    WorkerRecord,
    WorkItem,
    gather_outcomes,
)
from durox.providers._completions import Completions
from durox.providers._rows import (
    EXECUTION_COLUMNS,
    INSTANCE_COLUMNS,
    Clock,
    encode_error,
    wall_ms,
    worker_body,
)
from durox.providers._sql import load_queries
from durox.providers._wakeups import Wakeups
from durox.providers.sqlite._admin import SqliteAdmin
from durox.providers.sqlite._executor import GroupCommit, Tx
from durox.status import TERMINAL, InstanceStatus

QUERIES = load_queries(
    "durox.providers.sqlite",
    {"{INSTANCE_COLUMNS}": INSTANCE_COLUMNS, "{EXECUTION_COLUMNS}": EXECUTION_COLUMNS},
)
"""The store's statements by name (`queries.sql`)."""


class SqliteProvider(SqliteAdmin, Store):
    """`await SqliteProvider.open(path)` or `await SqliteProvider.in_memory()`."""

    def __init__(self, db: GroupCommit, clock: Clock, label: str) -> None:
        """Use `open` or `in_memory`."""
        self._db = db
        self._clock = clock
        self._label = label
        self._sql = QUERIES
        self._wakeups = Wakeups(clock)
        self._completions = Completions()  # never pushed: other processes may share the file
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
        return cls(await GroupCommit.start(str(p), synchronous.upper()), clock or wall_ms, str(p))

    @classmethod
    async def in_memory(cls, *, clock: Clock | None = None) -> SqliteProvider:
        """A private store that lives as long as this object (tests, experiments)."""
        return cls(await GroupCommit.start(":memory:", "OFF"), clock or wall_ms, ":memory:")

    async def close(self) -> None:
        await self._db.close()

    def __repr__(self) -> str:
        return f"SqliteProvider({self._label!r})"

    async def _run(self, fn: Tx[Any]) -> Any:
        """Run one transaction (tests reach behind the store's back with it)."""
        return await self._db.run(fn)

    def _token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    def _notify(self, kind: QueueKind, visible_at: int | None = None, count: int = 1) -> None:
        self._wakeups.notify(kind, visible_at, count)

    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> bool:
        return await self._wakeups.wait(kind, timeout_s)

    def fetch_covers_wakeups(self, kind: QueueKind, count: int | None) -> None:
        self._wakeups.covered(kind, count)

    def watch_completion(self, instance_id: str) -> CompletionWatch:
        return self._completions.watch(instance_id)

    # ---- orchestration queue -----------------------------------------------------------

    async def start_instance(self, message: ev.StartOrchestration) -> None:
        now = self._clock()
        row = (message.instance_id, "StartOrchestration", encode_message(message), now, now)
        q = self._sql

        def tx(c: sqlite3.Connection) -> None:
            if c.execute(q["instance_taken"], (message.instance_id,) * 2).fetchone():
                raise InstanceAlreadyExistsError(f"instance {message.instance_id!r} exists")
            c.execute(q["enqueue_orchestrator"], row)

        await self._db.run(tx)
        self._notify("orchestration")

    async def enqueue_orchestrator_message(self, message: ev.Message, delay_ms: int = 0) -> None:
        now = self._clock()
        visible = now + max(0, delay_ms)
        row = (message.instance_id, type(message).__name__, encode_message(message), visible, now)
        sql = self._sql["enqueue_orchestrator"]
        await self._db.run(lambda c: c.execute(sql, row))
        self._notify("orchestration", visible)

    proves_turn_state = True

    async def enqueue_event(self, message: ev.ExternalEvent | ev.CancelRequest) -> bool:
        now = self._clock()
        i = message.instance_id
        args = (i, type(message).__name__, encode_message(message), now, now, i, i)
        sql = self._sql["enqueue_event"]
        queued: int = await self._db.run(lambda c: c.execute(sql, args).rowcount)
        if queued:
            self._notify("orchestration")
        return queued > 0

    async def fetch_orchestration_items(
        self,
        lock_timeout_ms: int,
        replay_range: SemverRange | None = None,
        max_items: int = 1,
        *,
        kept: Mapping[str, str] | None = None,
        sticky_ms: int = 0,
    ) -> list[OrchestrationItem]:
        now = self._clock()
        if lock_timeout_ms <= 0:
            max_items = min(max_items, 1)  # a lease over at once could be taken again
        tokens = [self._token() for _ in range(max(max_items, 0))]
        q = self._sql
        prefix = self._token_prefix
        sticky = (now, now, len(prefix), prefix, now - max(0, sticky_ms))
        next_args: tuple[int | str, ...]
        if replay_range is None:
            next_sql, next_args = q["next_instance"], sticky
        else:
            (a, b, c_), (d, e, f) = replay_range.bounds()
            next_sql, next_args = q["next_instance_in_range"], (*sticky, a, b, c_, d, e, f)

        def take(c: sqlite3.Connection, token: str) -> OrchestrationItem | None:
            row = c.execute(next_sql, next_args).fetchone()
            if row is None:
                return None
            instance_id: str = row[0]
            c.execute(q["lock_instance"], (instance_id, token, now + lock_timeout_ms))
            rows = c.execute(q["take_messages"], (token, instance_id, now)).fetchall()
            inst = c.execute(q["instance_for_turn"], (instance_id,)).fetchone()
            history_rows: list[tuple[str]] = []
            count = 0
            skipped = False
            if inst is not None:
                count = c.execute(q["history_length"], (instance_id, inst[2])).fetchone()[0]
                if inst[3] == InstanceStatus.RUNNING:
                    skipped = (
                        kept is not None
                        and inst[5] is not None
                        and kept.get(instance_id) == inst[5]
                    )
                    if not skipped:
                        history_rows = c.execute(
                            q["read_history"], (instance_id, inst[2])
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
                turn_token=inst[5] if inst else None,
                history_skipped=skipped,
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

        return await self._db.run(tx)

    async def ack_orchestration_items(
        self, acks: Sequence[tuple[str, TurnCommit]]
    ) -> list[DuroxError | None]:
        # Side by side: the group commit gathers them into one transaction, each in its own
        # savepoint, so one that fails is rolled back alone.
        return await gather_outcomes(self._ack_turn(token, commit) for token, commit in acks)

    async def _ack_turn(self, lock_token: str, commit: TurnCommit) -> None:
        now = self._clock()
        xid = commit.execution_id
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
        # NULL unless the worker keeps the state: no kept state can match it, and no worker
        # is preferred for the next turn.
        turn_token = lock_token if commit.keeps_state else None
        inst_args: tuple[Any, ...] | None = None
        if upd is not None:
            pin = parse_version(upd.engine_version) if upd.engine_version else None
            inst_args = (
                upd.name,
                upd.version,
                xid,
                upd.status,
                None if upd.output is None else encode_json(upd.output),
                None if upd.error is None else encode_error(upd.error),
                None if upd.custom_status is None else encode_json(upd.custom_status),
                upd.parent_instance_id,
                upd.engine_version,
                pin.major if pin else None,
                pin.minor if pin else None,
                pin.patch if pin else None,
                now,
                now,
            )
        q = self._sql

        def tx(c: sqlite3.Connection) -> str:
            lock = c.execute(q["lock_of_token"], (lock_token,)).fetchone()
            if lock is None or lock[1] < now:
                raise LockLostError("orchestration lock expired or was taken before the ack")
            instance_id: str = lock[0]
            c.execute(q["delete_locked_messages"], (lock_token,))
            if upd is not None and inst_args is not None:
                if upd.started_execution:
                    c.execute(
                        q["insert_execution"],
                        (instance_id, xid, upd.version, upd.engine_version, now),
                    )
                c.execute(q["upsert_instance"], (instance_id, *inst_args, turn_token))
                c.execute(
                    q["update_execution"],
                    (
                        upd.status,
                        inst_args[4],
                        len(history_rows),
                        upd.status,
                        now,
                        instance_id,
                        xid,
                    ),
                )
            else:
                c.execute(q["set_turn_token"], (turn_token, instance_id))
            if history_rows:
                c.executemany(
                    q["insert_history"], [(instance_id, xid, i, d) for i, d in history_rows]
                )
            if work_rows:
                c.executemany(q["insert_work"], work_rows)
            if queue_rows:
                c.executemany(q["enqueue_orchestrator"], queue_rows)
            if commit.cancelled_activities:
                c.executemany(
                    q["cancel_work"], [(instance_id, xid, i) for i in commit.cancelled_activities]
                )
            c.execute(q["unlock_instance"], (lock_token,))
            return instance_id

        instance_id = await self._db.run(tx)
        if upd is not None and upd.status in TERMINAL:
            self._completions.ended(instance_id)  # committed: its waiters may read it now
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
        q = self._sql

        def tx(c: sqlite3.Connection) -> None:
            c.execute(q["release_messages"], (visible, 1 if ignore_attempt else 0, lock_token))
            c.execute(q["unlock_instance"], (lock_token,))

        await self._db.run(tx)
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
        q = self._sql

        def take(c: sqlite3.Connection, token: str) -> tuple[str, int] | None:
            if max_sessions is None:
                can_claim = 1
            elif max_sessions <= 0:
                can_claim = 0
            else:
                owned = c.execute(q["sessions_owned"], (worker_id, now)).fetchone()[0]
                can_claim = 1 if owned < max_sessions else 0
            row = c.execute(
                q["take_work"],
                (token, now + lock_timeout_ms, now, now, worker_id, now, now, can_claim),
            ).fetchone()
            if row is not None and row[2] is not None:
                c.execute(q["claim_session"], (row[2], worker_id, now + session_lock_ms, now))
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
        for token, data, attempts in await self._db.run(tx):
            work = decode_message(data)
            if not isinstance(work, ev.ActivityWork):
                raise StoreCorruptionError(f"worker queue holds a {type(work).__name__}")
            items.append(WorkItem(work, token, attempts))
        return items

    async def renew_sessions(
        self, worker_id: str, session_lock_ms: int, idle_timeout_ms: int
    ) -> int:
        now = self._clock()
        args = (now + session_lock_ms, worker_id, now, now - idle_timeout_ms, now)
        q = self._sql

        def tx(c: sqlite3.Connection) -> int:
            renewed = c.execute(q["renew_sessions"], args).rowcount
            c.execute(q["drop_lapsed_sessions"], (now,))
            return int(renewed)

        return await self._db.run(tx)

    async def ack_work_items(
        self, acks: Sequence[tuple[str, ev.ActivityResult]]
    ) -> list[DuroxError | None]:
        return await gather_outcomes(self._ack_work(token, result) for token, result in acks)

    async def _ack_work(self, lock_token: str, result: ev.ActivityResult) -> None:
        now = self._clock()
        row = (result.instance_id, "ActivityResult", encode_message(result), now, now)
        q = self._sql

        def tx(c: sqlite3.Connection) -> None:
            gone = c.execute(q["delete_work"], (lock_token, now)).fetchone()
            if gone is None:
                raise LockLostError("activity lock expired, or the activity was cancelled")
            if gone[0] is not None:
                c.execute(q["touch_session"], (now, gone[0]))
            c.execute(q["enqueue_orchestrator"], row)

        await self._db.run(tx)
        self._notify("orchestration")

    async def abandon_work_item(
        self, lock_token: str, delay_ms: int = 0, ignore_attempt: bool = False
    ) -> None:
        now = self._clock()
        args = (now + max(0, delay_ms), 1 if ignore_attempt else 0, lock_token)
        sql = self._sql["release_work"]
        await self._db.run(lambda c: c.execute(sql, args))
        self._notify("activity", now + max(0, delay_ms))

    async def renew_work_item_lock(self, lock_token: str, lock_timeout_ms: int) -> None:
        now = self._clock()
        sql = self._sql["renew_work"]

        def tx(c: sqlite3.Connection) -> None:
            if c.execute(sql, (now + lock_timeout_ms, lock_token, now)).rowcount == 0:
                raise LockLostError("activity lock already lapsed, or the activity was cancelled")

        await self._db.run(tx)

    # ---- worker capability records -------------------------------------------------------

    async def upsert_worker(self, record: WorkerRecord) -> None:
        args = (
            record.worker_id,
            record.node_id,
            record.pool,
            record.engine_version,
            worker_body(record),
            record.config_revision,
            int(record.started_at.timestamp() * 1000),
            self._clock(),
        )
        sql = self._sql["upsert_worker"]
        await self._db.run(lambda c: c.execute(sql, args))

    async def remove_worker(self, worker_id: str) -> None:
        sql = self._sql["remove_worker"]
        await self._db.run(lambda c: c.execute(sql, (worker_id,)))
