"""The codec: every history event and message round-trips, the stored form is stable, and
what cannot be read or written fails with a clear, permanent error."""

from __future__ import annotations

import pytest

from durox.core import events as ev
from durox.core.codec import (
    decode_event,
    decode_events,
    decode_message,
    encode_event,
    encode_json,
    encode_message,
)
from durox.errors import HistoryDecodeError, PayloadError

ERR = ev.ErrorDetails("application", "ValueError", "x")
PARENT = ev.ParentRef("p", 2, 5)

EVENTS: list[ev.Event] = [
    ev.OrchestrationStarted(1, 10, "N", "1.0.0", {"a": [1, 2]}, "0.1.0", PARENT),
    ev.OrchestrationCompleted(2, 11, "out"),
    ev.OrchestrationFailed(3, 12, ERR),
    ev.OrchestrationContinuedAsNew(4, 13, 1, "1.0.1"),
    ev.OrchestrationCancelRequested(5, 14, "why"),
    ev.ActivityScheduled(6, 15, "A", None, "s1"),
    ev.ActivityCompleted(7, 16, 6, 1.5),
    ev.ActivityFailed(8, 17, 6, ERR),
    ev.TimerCreated(9, 18, 1000),
    ev.TimerFired(10, 19, 9),
    ev.EventSubscribed(11, 20, "e"),
    ev.EventRaised(12, 21, "e", "ünïcode"),
    ev.SubOrchestrationScheduled(13, 22, "C", "c1", None, None),
    ev.SubOrchestrationCompleted(14, 23, 13, True),
    ev.SubOrchestrationFailed(15, 24, 13, ERR),
    ev.OrchestrationChained(16, 25, "D", "d1", [], "2.0.0"),
    ev.ScheduledCancelled(17, 26, 6),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_kind_round_trips(event: ev.Event) -> None:
    assert decode_event(encode_event(event)) == event


def test_every_event_kind_is_covered() -> None:
    assert {type(e) for e in EVENTS} == set(ev.Event.__args__)


@pytest.mark.parametrize(
    "message",
    [
        ev.StartOrchestration("i", "N", None, 1, 2, PARENT),
        ev.ActivityResult("i", 1, 2, None, ERR),
        ev.TimerDue("i", 1, 2, 3),
        ev.ExternalEvent("i", "e", {"k": 1}),
        ev.SubOrchestrationResult("i", 1, 2, "r"),
        ev.CancelRequest("i", "r"),
        ev.ActivityWork("i", 1, 2, "A", None, "s"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_kind_round_trips(message: ev.Message) -> None:
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"k":"EventFromTheFuture","event_id":1,"ts":0}', "unknown history event kind"),
        ("not json", "not valid JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"k":"TimerFired","event_id":1}', "malformed"),
        ('{"k":"TimerFired","event_id":"1","ts":0,"source_event_id":1}', "malformed"),
        ('{"k":"TimerFired","event_id":1,"ts":0,"source_event_id":1,"extra":2}', "malformed"),
    ],
)
def test_unreadable_events_raise_a_permanent_decode_error(text: str, match: str) -> None:
    with pytest.raises(HistoryDecodeError, match=match) as info:
        decode_event(text)
    assert info.value.retryable is False


def test_stored_form_is_a_kind_tag_then_every_field_in_order() -> None:
    # Histories written before the msgspec codec must read back, and new rows look the same.
    text = (
        '{"k":"ActivityFailed","event_id":8,"ts":17,"source_event_id":6,'
        '"error":{"kind":"application","type":"ValueError","message":"x"}}'
    )
    assert encode_event(ev.ActivityFailed(8, 17, 6, ERR)) == text
    assert decode_event(text) == ev.ActivityFailed(8, 17, 6, ERR)
    started = '{"k":"ActivityScheduled","event_id":6,"ts":15,"name":"A","input":null}'
    assert decode_event(started) == ev.ActivityScheduled(6, 15, "A", None, None)


def test_a_history_with_one_bad_row_names_that_row() -> None:
    rows = [encode_event(e) for e in EVENTS[:3]] + ['{"k":"Nope"}']
    assert decode_events(rows[:3]) == EVENTS[:3]
    with pytest.raises(HistoryDecodeError, match="unknown history event kind 'Nope'"):
        decode_events(rows)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"x", object()])
def test_payloads_json_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(PayloadError):
        encode_json(value)


def test_batch_decoding_matches_row_decoding_and_names_a_bad_row() -> None:
    texts = [encode_event(e) for e in EVENTS]
    assert decode_events(texts) == EVENTS
    assert decode_events([]) == []
    # An older row without a defaulted field still decodes (slow path, same result).
    legacy = '{"k":"ActivityScheduled","event_id":6,"ts":15,"name":"A","input":null}'
    assert decode_events([legacy]) == [ev.ActivityScheduled(6, 15, "A", None)]
    with pytest.raises(HistoryDecodeError, match="EventFromTheFuture"):
        decode_events([*texts, '{"k":"EventFromTheFuture","event_id":99,"ts":0}'])
