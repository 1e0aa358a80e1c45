"""JSON encoding of events and messages, shared by every store.

Stores keep events as opaque JSON text and call `decode_events` when they load a history, so an
event kind this engine does not know (written by a newer engine) fails there, in the store's
fetch, with `HistoryDecodeError`, and never reaches the replay engine. Encoding is compact and
flat; the kind tag is the class name so histories stay readable in a SQL console.

A whole history is decoded by one msgspec call over the joined rows, which is the cold-replay hot
path. Only when that fails is the history decoded again row by row, to name the bad row and say
whether it is not JSON, not an object, of an unknown kind or malformed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec

from durox.core import events as ev
from durox.errors import (
    ConfigurationError,
    HistoryDecodeError,
    PayloadError,
    PayloadTooLargeError,
)

_EVENT_TYPES = ev.Event.__args__
_MESSAGE_TYPES = (*ev.Message.__args__, ev.ActivityWork)
_EVENT_KINDS = frozenset(t.__name__ for t in _EVENT_TYPES)
_MESSAGE_KINDS = frozenset(t.__name__ for t in _MESSAGE_TYPES)

_encode_text = msgspec.json.Encoder().encode
# User payloads are checked by the standard library, which refuses what JSON cannot hold (a
# datetime, a set, NaN) where msgspec would quietly turn it into something else.
_strict_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# The form replay compares inputs in (`same_payload`): the strict encoding with sorted keys.
_canonical_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
).encode
_history_decoder = msgspec.json.Decoder(list[ev.Event])
_event_decoder = msgspec.json.Decoder(ev.Event)
_message_decoder = msgspec.json.Decoder(ev.Message | ev.ActivityWork)
_any_decoder = msgspec.json.Decoder()


def _explain(
    text: str | bytes, kinds: frozenset[str], what: str, exc: Exception
) -> HistoryDecodeError:
    """Say why `text` is not a readable `what`, for a row the typed decoder refused."""
    try:
        data = _any_decoder.decode(text)
    except msgspec.DecodeError as parse_exc:
        return HistoryDecodeError(f"{what} is not valid JSON: {parse_exc}")
    if not isinstance(data, dict):
        return HistoryDecodeError(f"{what} is not a JSON object: {data!r:.200}")
    kind = data.get("k")
    if not isinstance(kind, str) or kind not in kinds:
        return HistoryDecodeError(f"unknown {what} kind {kind!r}: written by a newer engine?")
    return HistoryDecodeError(f"malformed {what} {kind}: {exc}")


def encode_event(event: ev.Event) -> str:
    return _encode_text(event).decode()


def encoded_size(events: Sequence[ev.Event]) -> int:
    """The bytes `events` take encoded (as a store keeps them), give or take a comma each."""
    if not events:
        return 0
    return len(_encode_text(events))


def decode_event(text: str | bytes) -> ev.Event:
    try:
        result: ev.Event = _event_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _explain(text, _EVENT_KINDS, "history event", exc) from exc
    return result


def decode_events(texts: list[str]) -> list[ev.Event]:
    """Decode a whole history at once. Any failure falls back to row-by-row decoding so the
    error names the bad row."""
    if not texts:
        return []
    try:
        result: list[ev.Event] = _history_decoder.decode("[" + ",".join(texts) + "]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [decode_event(t) for t in texts]
    return result


def encode_message(message: ev.Message | ev.ActivityWork) -> str:
    return _encode_text(message).decode()


def decode_message(text: str | bytes) -> ev.Message | ev.ActivityWork:
    try:
        result: ev.Message | ev.ActivityWork = _message_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _explain(text, _MESSAGE_KINDS, "queue message", exc) from exc
    return result


DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
"""The default `max_payload_bytes` (docs/payloads.md says why 2 MiB)."""


def check_max_payload_bytes(value: int) -> None:
    """`ConfigurationError` unless `value` is a whole number of bytes, at least 1 KiB."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ConfigurationError(f"max_payload_bytes must be an int of at least 1024: {value!r}")


def encode_json(value: Any) -> str:
    """Encode a user payload; raises `PayloadError` for values JSON cannot hold."""
    try:
        return _strict_dumps(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"value is not JSON-serializable: {exc}") from exc


def check_payload(value: Any, limit: int | None, what: str) -> str:
    """Encode a user payload and hold it to `limit` bytes of UTF-8 JSON (None: no limit):
    `PayloadError` if JSON cannot hold it, `PayloadTooLargeError` naming `what` if too big."""
    text = encode_json(value)
    # A character is at most 4 bytes of UTF-8: most payloads pass without being encoded.
    if limit is not None and len(text) * 4 > limit:
        size = len(text.encode())
        if size > limit:
            raise PayloadTooLargeError(what, size, limit)
    return text


def canonical_json(value: Any) -> str:
    """`value` as replay compares it: strict JSON, keys sorted, floats in their shortest
    round-trip form. Two values give the same text exactly when they read back from the store
    as the same JSON, whatever the order their dict keys were built in."""
    try:
        return _canonical_dumps(value)
    except TypeError:
        # Keys of mixed types cannot be sorted; JSON makes every key a string, so sort those.
        return _canonical_dumps(_any_decoder.decode(encode_json(value)))
    except ValueError as exc:
        raise PayloadError(f"value is not JSON-serializable: {exc}") from exc


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _same_json(code: Any, recorded: Any) -> bool | None:
    """The JSON-value comparison of `same_payload` for plain dicts, lists and scalars, walked
    once without encoding: True or False, or None for anything else (a tuple, a subclass, a
    key that is not a string), which the caller settles by encoding. A float compares by its
    repr, which is its JSON form (so 0.0 and -0.0 differ, as they do in JSON)."""
    tc = type(code)
    if tc is not type(recorded):
        return None if tc not in _PLAIN else False if type(recorded) in _PLAIN else None
    if tc is dict:
        if len(code) != len(recorded):
            return False
        for key, value in code.items():
            if type(key) is not str:
                return None
            if key not in recorded:
                return False
            same = _same_json(value, recorded[key])
            if not same:
                return same
        return True
    if tc is list:
        if len(code) != len(recorded):
            return False
        for a, b in zip(code, recorded, strict=True):
            same = _same_json(a, b)
            if not same:
                return same
        return True
    if tc is float:
        return repr(code) == repr(recorded)
    if tc in _PLAIN:
        return bool(code == recorded)
    return None


def same_payload(code: Any, recorded: Any) -> bool:
    """Whether the value the code passes now is the one the history recorded (`recorded` was
    read back from the store): whether both have the same `canonical_json`. Plain values are
    compared without encoding them; a value JSON cannot hold matches nothing."""
    same = _same_json(code, recorded)
    if same is not None:
        return same
    try:
        return canonical_json(code) == canonical_json(recorded)
    except PayloadError:
        return False


def short_json(value: Any, limit: int = 80) -> str:
    """A payload for an error message: its JSON, cut to about `limit` characters."""
    try:
        text = canonical_json(value)
    except PayloadError:
        text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def decode_json(text: str | bytes | None) -> Any:
    return None if text is None else _any_decoder.decode(text)
