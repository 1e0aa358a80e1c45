"""The SQLite store's `ProviderAdmin` half: reads, the observation, the drain report, deletion
and pruning, queue depths and metrics. Each operation is one transaction on the store's group-commit
executor; its SQL is in `queries.sql`."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from durox.core import events as ev
from durox.core.codec import decode_events, encode_json
from durox.core.versions import SemverRange
from durox.errors import InstanceRunningError
from durox.providers._base import (
    ENDED_WELL,
    DrainEntry,
    ExecutionInfo,
    ExecutionRef,
    InstanceInfo,
    ProviderAdmin,
    QueueDepths,
    SampleOrder,
    StoreObservation,
    SystemMetrics,
    VersionExecutions,
    VersionOutcomes,
    WorkerRecord,
)
from durox.providers._rows import (
    Clock,
    bound_ms,
    execution_from_row,
    execution_ref_from_row,
    instance_from_row,
    observation_from,
    sorted_outcomes,
    worker_from_row,
)
from durox.providers.sqlite._executor import GroupCommit
from durox.status import TERMINAL, InstanceStatus, status_filter

_TREE_TABLES = (
    "history",
    "executions",
    "orchestrator_queue",
    "worker_queue",
    "instance_locks",
    "instances",
)


class SqliteAdmin(ProviderAdmin):
    """Mixed into `SqliteProvider`, which sets these up."""

    _db: GroupCommit
    _clock: Clock
    _sql: dict[str, str]

    # ---- reads ---------------------------------------------------------------------------

    async def get_instance(self, instance_id: str) -> InstanceInfo | None:
        sql = self._sql["get_instance"]
        row = await self._db.run(lambda c: c.execute(sql, (instance_id,)).fetchone())
        return None if row is None else instance_from_row(row)

    async def start_pending(self, instance_id: str) -> bool:
        sql = self._sql["start_pending"]
        row = await self._db.run(lambda c: c.execute(sql, (instance_id,)).fetchone())
        return row is not None

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
        wanted = status_filter(status)
        after, before = bound_ms(created_after), bound_ms(created_before)
        args = (
            *(wanted, wanted, name, name, version, version, pin, pin),
            *(after, after, before, before, limit, offset),
        )
        sql = self._sql["list_instances"]
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [instance_from_row(r) for r in rows]

    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]:
        sql = self._sql["list_executions"]
        rows = await self._db.run(lambda c: c.execute(sql, (instance_id,)).fetchall())
        return [execution_from_row(instance_id, r) for r in rows]

    async def read_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        sql = self._sql["read_history"]
        rows = await self._db.run(lambda c: c.execute(sql, (instance_id, execution_id)).fetchall())
        return decode_events([r[0] for r in rows])

    async def list_workers(self, pool: str | None, stale_after_ms: int) -> list[WorkerRecord]:
        now = self._clock()
        q = self._sql

        def tx(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            c.execute(q["drop_stale_workers"], (now - stale_after_ms,))
            return c.execute(q["list_workers"], (pool, pool)).fetchall()

        return [worker_from_row(r) for r in await self._db.run(tx)]

    async def observe(
        self, *, pool: str | None, failed_since: datetime, stale_after_ms: int
    ) -> StoreObservation:
        now = self._clock()
        since = int(failed_since.timestamp() * 1000)
        q = self._sql

        def tx(c: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            return (
                c.execute(q["observe_usage"]).fetchall(),
                c.execute(q["observe_failures"], (since,)).fetchall(),
                c.execute(q["observe_workers"], (pool, pool)).fetchall(),
            )

        usage, failures, workers = await self._db.run(tx)
        return observation_from(
            now,
            pool=pool,
            failed_since=failed_since,
            stale_after_ms=stale_after_ms,
            usage=usage,
            failures=failures,
            workers=workers,
        )

    async def outcomes(self, *, since: datetime) -> list[VersionOutcomes]:
        sql, start = self._sql["outcomes"], int(since.timestamp() * 1000)
        rows = await self._db.run(lambda c: c.execute(sql, (start,)).fetchall())
        return sorted_outcomes(rows)

    async def drain_report(self, replay_range: SemverRange) -> list[DrainEntry]:
        (a, b, c_), (d, e, f) = replay_range.bounds()
        sql = self._sql["drain_report"]
        rows = await self._db.run(lambda c: c.execute(sql, (a, b, c_, d, e, f)).fetchall())
        return [DrainEntry(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # ---- management ----------------------------------------------------------------------

    def _delete_tree(self, c: sqlite3.Connection, ids: list[str]) -> int:
        """Delete instances with everything of theirs; returns how many instances went."""
        doomed = encode_json(ids)
        deleted = 0
        for table in _TREE_TABLES:
            deleted = c.execute(self._sql[f"delete_tree_{table}"], (doomed,)).rowcount
        return int(deleted)  # the last table is `instances`

    async def delete_instance(self, instance_id: str, force: bool = False) -> int:
        tree_sql = self._sql["instance_tree"]

        def tx(c: sqlite3.Connection) -> int:
            tree = c.execute(tree_sql, (instance_id,)).fetchall()
            if not tree:
                return 0
            running = sorted(i for i, status in tree if status not in TERMINAL)
            if running and not force:
                raise InstanceRunningError(
                    f"instance {running[0]!r} is still running; delete it with force=True"
                )
            return self._delete_tree(c, [i for i, _ in tree])

        return await self._db.run(tx)

    async def delete_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        wanted = status_filter(status)
        before = None if completed_before is None else int(completed_before.timestamp() * 1000)
        q = self._sql

        def tx(c: sqlite3.Connection) -> int:
            candidates = c.execute(
                q["deletable_instances"], (wanted, wanted, name, name, before, before)
            ).fetchall()
            total = 0
            for (instance_id,) in candidates:
                tree = c.execute(q["instance_tree"], (instance_id,)).fetchall()
                if tree and all(st in TERMINAL for _, st in tree):
                    total += self._delete_tree(c, [i for i, _ in tree])
            return total

        return await self._db.run(tx)

    async def prune_executions(self, instance_id: str, keep_last: int = 1) -> int:
        keep = max(keep_last, 1)
        q = self._sql

        def tx(c: sqlite3.Connection) -> int:
            row = c.execute(q["current_execution"], (instance_id,)).fetchone()
            if row is None:
                return 0
            last = row[0] - keep
            c.execute(q["prune_history"], (instance_id, last))
            return int(c.execute(q["prune_executions"], (instance_id, last)).rowcount)

        return await self._db.run(tx)

    async def queue_depths(self) -> QueueDepths:
        now = self._clock()
        sql = self._sql["queue_depths"]

        def tx(c: sqlite3.Connection) -> tuple[int, ...]:
            row: tuple[int, ...] = c.execute(sql, {"now": now}).fetchone()
            return row

        return QueueDepths(*await self._db.run(tx))

    async def system_metrics(self) -> SystemMetrics:
        now = self._clock()
        q = self._sql

        def tx(c: sqlite3.Connection) -> tuple[list[tuple[str, int]], tuple[int, ...]]:
            by_status = c.execute(q["instances_by_status"]).fetchall()
            counts: tuple[int, ...] = c.execute(q["store_counts"], (now, now)).fetchone()
            return by_status, counts

        by_status, counts = await self._db.run(tx)
        return SystemMetrics(dict(by_status), *counts)

    # ---- replay-check reads --------------------------------------------------------------

    async def execution_versions(
        self, *, ended_since: datetime | None = None
    ) -> list[VersionExecutions]:
        since = _ms(ended_since)
        args = (since, since, *ENDED_WELL)
        sql = self._sql["execution_versions"]
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
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
        since = _ms(ended_since)
        args = (name, version, since, since, *ENDED_WELL, max(limit, 0))
        q = self._sql
        sql = (
            q["sample_executions_longest"] if order == "longest" else q["sample_executions_recent"]
        )
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        return [execution_ref_from_row(r) for r in rows]


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)
