"""What both stores share below the seam: the clock, time and row conversions, migrations.

Each store speaks its own SQL, but the columns they read back mean the same things, so turning
a row into an `InstanceInfo` or a `WorkerRecord` (and refusing a row that cannot be read) is
written once here and cannot drift between SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from durox.core import events as ev
from durox.core.codec import decode_json, encode_json
from durox.errors import StoreCorruptionError
from durox.providers._base import ExecutionInfo, InstanceInfo, WorkerRecord
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
