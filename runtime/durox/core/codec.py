"""JSON encoding of events and messages, shared by every store.

Stores keep events as opaque JSON text and call `decode_event` when they load a history, so an
event kind this engine does not know (written by a newer engine) fails here, in the store's
fetch, with `UnknownEventError`, and never reaches the replay engine. Encoding is compact and
flat; the kind tag is the class name so histories stay readable in a SQL console.
"""

from __future__ import annotations

import json
import operator
from dataclasses import fields
from typing import Any

from durox.core import events as ev
from durox.errors import HistoryDecodeError


def _kinds(*classes: type) -> dict[str, tuple[type, tuple[str, ...]]]:
    return {c.__name__: (c, tuple(f.name for f in fields(c))) for c in classes}


_EVENT_KINDS = _kinds(
    ev.OrchestrationStarted,
    ev.OrchestrationCompleted,
    ev.OrchestrationFailed,
    ev.OrchestrationContinuedAsNew,
    ev.OrchestrationCancelRequested,
    ev.ActivityScheduled,
    ev.ActivityCompleted,
    ev.ActivityFailed,
    ev.TimerCreated,
    ev.TimerFired,
    ev.EventSubscribed,
    ev.EventRaised,
    ev.SubOrchestrationScheduled,
    ev.SubOrchestrationCompleted,
    ev.SubOrchestrationFailed,
    ev.OrchestrationChained,
    ev.ScheduledCancelled,
)
_MESSAGE_KINDS = _kinds(
    ev.StartOrchestration,
    ev.ActivityResult,
    ev.TimerDue,
    ev.ExternalEvent,
    ev.SubOrchestrationResult,
    ev.CancelRequest,
    ev.ActivityWork,
)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def _to_plain(obj: Any) -> dict[str, Any]:
    kind = type(obj).__name__
    out: dict[str, Any] = {"k": kind}
    table = _EVENT_KINDS if kind in _EVENT_KINDS else _MESSAGE_KINDS
    for name in table[kind][1]:
        value = getattr(obj, name)
        if isinstance(value, ev.ErrorDetails):
            value = {"kind": value.kind, "type": value.type, "message": value.message}
        elif isinstance(value, ev.ParentRef):
            value = {
                "instance_id": value.instance_id,
                "execution_id": value.execution_id,
                "event_id": value.event_id,
            }
        out[name] = value
    return out


def _from_plain(data: Any, table: dict[str, tuple[type, tuple[str, ...]]], what: str) -> Any:
    if not isinstance(data, dict):
        raise HistoryDecodeError(f"{what} is not a JSON object: {data!r:.200}")
    kind = data.pop("k", None)
    entry = table.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise HistoryDecodeError(f"unknown {what} kind {kind!r}: written by a newer engine?")
    cls, _ = entry
    err = data.get("error")
    if isinstance(err, dict):
        data["error"] = ev.ErrorDetails(**err)
    parent = data.get("parent")
    if isinstance(parent, dict):
        data["parent"] = ev.ParentRef(**parent)
    try:
        return cls(**data)
    except TypeError as exc:
        raise HistoryDecodeError(f"malformed {what} {kind}: {exc}") from exc


def encode_event(event: ev.Event) -> str:
    return _dumps(_to_plain(event))


def decode_event(text: str | bytes) -> ev.Event:
    try:
        data = _loads(text)
    except ValueError as exc:
        raise HistoryDecodeError(f"history event is not valid JSON: {exc}") from exc
    result: ev.Event = _from_plain(data, _EVENT_KINDS, "history event")
    return result


def _fast_constructors() -> dict[str, Any]:
    """Per kind, a function from a decoded JSON object to the event, nested parts included."""

    def make(cls: type, names: tuple[str, ...]) -> Any:
        nested = [n for n in names if n in ("error", "parent")]
        size = len(names) + 1  # the fields and the kind tag; anything else takes the slow path

        pick = operator.itemgetter(*names)

        def build(d: dict[str, Any]) -> Any:
            if len(d) != size:
                raise KeyError("field set differs")
            if not nested:
                return cls(*pick(d))
            err = d.get("error")
            if isinstance(err, dict):
                d["error"] = ev.ErrorDetails(**err)
            parent = d.get("parent")
            if isinstance(parent, dict):
                d["parent"] = ev.ParentRef(**parent)
            return cls(*pick(d))

        return build

    return {kind: make(cls, names) for kind, (cls, names) in _EVENT_KINDS.items()}


_FAST = _fast_constructors()


def decode_events(texts: list[str]) -> list[ev.Event]:
    """Decode a whole history at once: one JSON parse for all rows, then one constructor call
    per event. Any failure falls back to row-by-row decoding so the error names the bad row."""
    if not texts:
        return []
    try:
        rows = _loads("[" + ",".join(texts) + "]")
        fast = _FAST
        return [fast[row["k"]](row) for row in rows]
    except (ValueError, KeyError, TypeError, IndexError):
        return [decode_event(t) for t in texts]


def encode_message(message: ev.Message | ev.ActivityWork) -> str:
    return _dumps(_to_plain(message))


def decode_message(text: str | bytes) -> ev.Message | ev.ActivityWork:
    try:
        data = _loads(text)
    except ValueError as exc:
        raise HistoryDecodeError(f"queue message is not valid JSON: {exc}") from exc
    result: ev.Message | ev.ActivityWork = _from_plain(data, _MESSAGE_KINDS, "queue message")
    return result


def encode_json(value: Any) -> str:
    """Encode a user payload; raises `PayloadError` for values JSON cannot hold."""
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        from durox.errors import PayloadError

        raise PayloadError(f"value is not JSON-serializable: {exc}") from exc


def decode_json(text: str | bytes | None) -> Any:
    return None if text is None else _loads(text)
