"""What both stores share below the seam: the clock, time and row conversions, migrations.

Each store speaks its own SQL, but the columns they read back mean the same things, so turning
a row into an `InstanceInfo` or a `WorkerRecord` (and refusing a row that cannot be read) is
written once here and cannot drift between SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from durox.core import events as ev
from durox.core.codec import decode_json, encode_json
from durox.core.versions import parse_version
from durox.errors import ConfigurationError, StoreCorruptionError
from durox.providers._base import (
    ExecutionInfo,
    ExecutionRef,
    FailureCount,
    InstanceInfo,
    ObservedWorker,
    StoreObservation,
    VersionOutcomes,
    VersionUsage,
    WorkerRecord,
)
from durox.status import InstanceStatus

Clock = Callable[[], int]
"""Milliseconds since the Unix epoch; injectable so tests can move time."""

INSTANCE_COLUMNS = (
    "instance_id, orchestration_name, orchestration_version, current_execution_id, status,"
    " output, created_at, updated_at, parent_instance_id, error, custom_status,"
    " pinned_engine_version"
)
"""The columns `instance_from_row` reads, in its order."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def bound_ms(when: datetime | None) -> int | None:
    """A time bound as the stores keep times (whole milliseconds since the epoch), rounded
    up: `created_at >= bound_ms(t)` and `created_at < bound_ms(t)` then mean exactly `>= t`
    and `< t` for a `t` between two milliseconds. Integer arithmetic, so no float drift."""
    if when is None:
        return None
    return -((_EPOCH - when) // timedelta(milliseconds=1))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every `NNNN_name.sql` in `package/migrations`, in order."""
    folder = resources.files(package).joinpath("migrations")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return out


def encode_error(error: ev.ErrorDetails) -> str:
    return encode_json({"kind": error.kind, "type": error.type, "message": error.message})


def instance_from_row(row: Sequence[Any]) -> InstanceInfo:
    """An `InstanceInfo` from the `INSTANCE_COLUMNS`; an unreadable row is a permanent error."""
    try:
        err = decode_json(row[9])
        return InstanceInfo(
            instance_id=row[0],
            orchestration_name=row[1],
            orchestration_version=row[2],
            current_execution_id=row[3],
            status=InstanceStatus(row[4]),
            output=decode_json(row[5]),
            created_at=dt(row[6]),
            updated_at=dt(row[7]),
            parent_instance_id=row[8],
            error=ev.ErrorDetails(**err) if err else None,
            custom_status=decode_json(row[10]),
            pinned_engine_version=row[11],
        )
    except (ValueError, TypeError) as exc:
        raise StoreCorruptionError(f"instance row {row[0]!r} is unreadable: {exc}") from exc


EXECUTION_COLUMNS = (
    "execution_id, orchestration_version, status, output, event_count, engine_version,"
    " started_at, completed_at"
)
"""The columns `execution_from_row` reads, in its order."""


def execution_from_row(instance_id: str, row: Sequence[Any]) -> ExecutionInfo:
    return ExecutionInfo(
        instance_id=instance_id,
        execution_id=row[0],
        orchestration_version=row[1],
        status=InstanceStatus(row[2]),
        output=decode_json(row[3]),
        event_count=row[4],
        engine_version=row[5],
        started_at=dt(row[6]),
        completed_at=None if row[7] is None else dt(row[7]),
    )


def execution_ref_from_row(row: Sequence[Any]) -> ExecutionRef:
    """An `ExecutionRef` from (instance_id, execution_id, status, event_count, last active ms)."""
    return ExecutionRef(
        instance_id=row[0],
        execution_id=int(row[1]),
        status=InstanceStatus(row[2]),
        event_count=int(row[3]),
        last_active_at=dt(int(row[4])),
    )


def worker_body(record: WorkerRecord) -> str:
    """The JSON column holding what a worker can do."""
    return encode_json(
        {
            "replay_min": record.replay_min,
            "replay_max": record.replay_max,
            "orchestrations": record.orchestrations,
            "activities": record.activities,
            "session_activities": record.session_activities,
            "config_rejected": record.config_rejected,
        }
    )


def worker_from_row(row: Sequence[Any]) -> WorkerRecord:
    """A `WorkerRecord` from (worker_id, node_id, pool, engine_version, body, config_revision,
    started_at, heartbeat_at)."""
    try:
        body = decode_json(row[4])
        return WorkerRecord(
            worker_id=row[0],
            node_id=row[1],
            pool=row[2],
            engine_version=row[3],
            replay_min=body["replay_min"],
            replay_max=body["replay_max"],
            orchestrations=body["orchestrations"],
            activities=body["activities"],
            session_activities=body["session_activities"],
            config_revision=row[5],
            started_at=dt(row[6]),
            heartbeat_at=dt(row[7]),
            config_rejected=body.get("config_rejected"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreCorruptionError(f"worker row {row[0]!r} is unreadable: {exc}") from exc


def observation_from(
    now_ms: int,
    *,
    pool: str | None,
    failed_since: datetime,
    stale_after_ms: int,
    usage: Sequence[Sequence[Any]],
    failures: Sequence[Sequence[Any]],
    workers: Sequence[Sequence[Any]],
) -> StoreObservation:
    """A `StoreObservation` from a store's three reads, taken in one transaction at `now_ms`:

    - `usage`: (name, version, pin, instances, oldest id, oldest created ms) per name, version
      and pin, the oldest being the version's (the same on each of its pin rows);
    - `failures`: (name, version, failed, poisoned);
    - `workers`: the `worker_from_row` columns.
    """
    pins: dict[tuple[str, str], dict[str | None, int]] = {}
    oldest: dict[tuple[str, str], tuple[str, int]] = {}
    for name, version, pin, n, oldest_id, oldest_ms in usage:
        pins.setdefault((name, version), {})[pin] = int(n)
        oldest[(name, version)] = (oldest_id, int(oldest_ms))
    versions = tuple(
        VersionUsage(
            orchestration_name=name,
            orchestration_version=version,
            instances=sum(pins[name, version].values()),
            by_pin=pins[name, version],
            oldest_instance_id=oldest[name, version][0],
            oldest_created_at=dt(oldest[name, version][1]),
        )
        for name, version in sorted(pins, key=_version_order)
    )
    observed = []
    for row in workers:
        record = worker_from_row(row)
        age_ms = max(now_ms - int(row[7]), 0)  # a heartbeat "from the future" is a fresh one
        observed.append(
            ObservedWorker(record, timedelta(milliseconds=age_ms), age_ms <= stale_after_ms)
        )
    return StoreObservation(
        observed_at=dt(now_ms),
        pool=pool,
        versions=versions,
        failed_since=failed_since,
        failures=tuple(
            FailureCount(n, v, int(f), int(p))
            for n, v, f, p in sorted(failures, key=lambda r: _version_order((r[0], r[1])))
        ),
        stale_after=timedelta(milliseconds=stale_after_ms),
        workers=tuple(sorted(observed, key=lambda w: w.record.worker_id)),
    )


def sorted_outcomes(rows: Sequence[Sequence[Any]]) -> list[VersionOutcomes]:
    """`VersionOutcomes` from (name, version, started, ended, failed, poisoned) rows, ordered
    by name and semver precedence."""
    out = [
        VersionOutcomes(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0),
                        int(r[5] or 0))
        for r in rows
    ]  # fmt: skip
    return sorted(
        out, key=lambda o: _version_order((o.orchestration_name, o.orchestration_version))
    )


def _outcome_order(o: VersionOutcomes) -> tuple[str, int, Any]:
    return _version_order((o.orchestration_name, o.orchestration_version))


def _version_order(key: tuple[str, str]) -> tuple[str, int, Any]:
    """By name, then by semver precedence (1.10.0 after 1.9.0); a version that does not parse
    (never written by durox) after the ones that do."""
    name, version = key
    try:
        return name, 0, parse_version(version)
    except ConfigurationError:
        return name, 1, version
