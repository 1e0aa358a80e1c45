"""Values into the shapes the SQL functions take, and their rows back into durox records."""

from __future__ import annotations

from typing import Any

from durox.core.codec import (
    decode_events,
    decode_message,
    encode_event,
    encode_json,
    encode_message,
)
from durox.core.versions import SemverRange, parse_version
from durox.errors import HistoryDecodeError
from durox.providers._base import OrchestrationItem, TurnCommit
from durox.providers._rows import encode_error


def replay_bounds(replay_range: SemverRange | None) -> tuple[list[int] | None, list[int] | None]:
    """A replay range as the fetch functions take it: two `integer[3]`, or NULLs for any."""
    if replay_range is None:
        return None, None
    (a, b, c), (d, e, f) = replay_range.bounds()
    return [a, b, c], [d, e, f]


def turn(token: str, commit: TurnCommit) -> tuple[Any, ...]:
    """A turn as a `durox_turn` value (migration 0004), field by field in the type's order."""
    upd = commit.instance
    pin = parse_version(upd.engine_version) if upd and upd.engine_version else None
    timers = commit.timers
    msgs = commit.messages
    acts = commit.activities
    return (
        token,
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


def orchestration_item(row: Any) -> OrchestrationItem:
    """A fetched instance (a row of `durox_fetch_orchestration`) as the runtime takes it."""
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
        turn_token=row["turn_token"],
        history_skipped=row["history_skipped"],
    )
    try:
        item.messages = [decode_message(m) for m in row["messages"]]  # type: ignore[misc]
        item.history = decode_events(list(row["history"]))
    except HistoryDecodeError as exc:
        item.history = []
        item.history_error = str(exc)
    return item
