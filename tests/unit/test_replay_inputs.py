"""Replay compares inputs: code that now passes another input to recorded work diverges.

Activities are matched by name, session and input, sub-orchestrations by name, instance and
input, detached starts by name, instance and input. Inputs are compared as JSON values: key
order does not count, a value's type does (1, 1.0 and True differ), and the same float always
matches itself.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest

from durox.core import events as ev
from durox.core.codec import canonical_json, decode_event, encode_event, same_payload
from durox.core.context import OrchestrationContext
from durox.core.replay import Mismatch, TurnResult
from durox.errors import PayloadError
from tests.unit.histories import start, turn

Ctx = OrchestrationContext


def _record(input: Any) -> Any:
    async def fn(ctx: Ctx, _: Any) -> Any:
        return await ctx.schedule_activity("Record", input)

    return fn


def _history_of(fn: Any) -> list[ev.Event]:
    """The history a first turn of `fn` records, as it reads back from a store."""
    r = turn(fn, messages=[start()])
    return [decode_event(encode_event(e)) for e in r.new_events]


def test_an_activity_with_another_input_is_nondeterminism_naming_both_inputs() -> None:
    h = _history_of(_record("a"))
    r = turn(_record("b"), h, [ev.ActivityResult("i", 1, 2, "result of a")])
    assert r.status == "Failed" and r.error is not None and r.error.kind == "nondeterminism"
    assert '"b"' in r.error.message and '"a"' in r.error.message
    assert r.mismatch == Mismatch(
        2, "scheduled activity 'Record' with input \"b\"", "activity 'Record' with input \"a\""
    )
    assert r.output is None  # the old result was not handed to the new code


def test_the_same_input_replays_and_gets_the_recorded_result() -> None:
    value = {"order": 7, "lines": [{"sku": "x", "qty": 2.5}], "note": None, "ok": True}
    h = _history_of(_record(value))
    r = turn(_record(value), h, [ev.ActivityResult("i", 1, 2, "done")])
    assert r.error is None and r.output == "done"


def test_dict_key_order_does_not_count_but_value_types_do() -> None:
    h = _history_of(_record({"a": 1, "b": [1.5, "x"]}))
    same = turn(_record({"b": [1.5, "x"], "a": 1}), h, [ev.ActivityResult("i", 1, 2, "r")])
    assert same.error is None
    for other in ({"a": 1.0, "b": [1.5, "x"]}, {"a": True, "b": [1.5, "x"]}):
        r = turn(_record(other), h, [ev.ActivityResult("i", 1, 2, "r")])
        assert r.error is not None and r.error.kind == "nondeterminism", other


def test_tuples_match_the_lists_the_history_reads_back() -> None:
    h = _history_of(_record((1, 2)))
    assert turn(_record((1, 2)), h, [ev.ActivityResult("i", 1, 2, "r")]).error is None


@pytest.mark.parametrize("value", [0.1, 1e16, -0.0, 1 / 3, 2.0**-1074, 123456789.123456789])
def test_floats_read_back_from_a_history_compare_equal_to_themselves(value: float) -> None:
    h = _history_of(_record([value]))
    assert turn(_record([value]), h, [ev.ActivityResult("i", 1, 2, "r")]).error is None


def test_a_session_activity_is_matched_by_session_too() -> None:
    def on(session: str) -> Any:
        async def fn(ctx: Ctx, _: Any) -> Any:
            return await ctx.schedule_activity_on_session("Record", "x", session)

        return fn

    h = _history_of(on("s1"))
    r = turn(on("s2"), h, [ev.ActivityResult("i", 1, 2, "r")])
    assert r.error is not None and r.error.kind == "nondeterminism"


def test_a_sub_orchestration_with_another_input_is_nondeterminism() -> None:
    def parent(input: Any, instance_id: str | None = None) -> Any:
        async def fn(ctx: Ctx, _: Any) -> Any:
            return await ctx.schedule_sub_orchestration("Child", input, instance_id=instance_id)

        return fn

    for kid in (None, "kid"):
        h = _history_of(parent({"n": 1}, kid))
        done = [ev.SubOrchestrationResult("i", 1, 2, "out")]
        assert turn(parent({"n": 1}, kid), h, done).output == "out"
        r = turn(parent({"n": 2}, kid), h, done)
        assert r.error is not None and r.error.kind == "nondeterminism"
        assert '{"n":2}' in r.error.message and '{"n":1}' in r.error.message
        assert r.mismatch is not None and "sub-orchestration 'Child'" in r.mismatch.history


def test_a_detached_start_with_another_input_is_nondeterminism() -> None:
    def chain(input: Any) -> Any:
        async def fn(ctx: Ctx, _: Any) -> Any:
            ctx.start_orchestration("Other", "other-1", input)
            return await ctx.wait_for_event("go")

        return fn

    h = _history_of(chain([1, 2]))
    go = [ev.ExternalEvent("i", "go", "went")]
    assert turn(chain([1, 2]), h, go).output == "went"
    r = turn(chain([2, 1]), h, go)
    assert r.error is not None and r.error.kind == "nondeterminism"
    assert r.mismatch == Mismatch(
        2,
        "scheduled detached orchestration 'Other' (other-1) with input [2,1]",
        "detached orchestration 'Other' (other-1) with input [1,2]",
    )
    assert r.messages == []  # the diverging code starts nothing


def test_long_inputs_are_cut_in_the_message() -> None:
    h = _history_of(_record("a" * 10_000))
    r = turn(_record("b" * 10_000), h, [ev.ActivityResult("i", 1, 2, "r")])
    assert r.error is not None and r.error.kind == "nondeterminism"
    assert len(r.error.message) < 400
    assert "(10002 characters)" in r.error.message


def test_an_input_json_cannot_hold_matches_nothing_and_says_so() -> None:
    h = _history_of(_record([1, 2]))
    r = turn(_record({1, 2}), h, [ev.ActivityResult("i", 1, 2, "r")])
    assert isinstance(r, TurnResult) and r.error is not None
    assert r.error.kind == "nondeterminism" and "{1, 2}" in r.error.message


def test_canonical_json_sorts_keys_of_any_type_as_json_would() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'
    assert canonical_json({2: "x", "1": "y"}) == '{"1":"y","2":"x"}'
    assert same_payload({2: "x"}, {"2": "x"})
    assert not same_payload(None, 0) and not same_payload("1", 1) and same_payload(None, None)


def test_values_compared_without_encoding_agree_with_their_json() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    pairs: list[tuple[Any, Any, bool]] = [
        ({"a": [1, {"b": 2.5}]}, {"a": [1, {"b": 2.5}]}, True),
        ({"a": (1, 2)}, {"a": [1, 2]}, True),
        ({"c": Colour.RED, "s": Size.BIG}, {"c": "red", "s": 3}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ([1, 2], [2, 1], False),
        ([0.0], [-0.0], False),
        ({"a": float("nan")}, {"a": None}, False),
        ({"a": {1, 2}}, {"a": [1, 2]}, False),
    ]
    for code, recorded, expected in pairs:
        assert same_payload(code, recorded) is expected, (code, recorded)
        try:
            by_text = canonical_json(code) == canonical_json(recorded)
        except PayloadError:
            by_text = False
        assert by_text is expected, (code, recorded)
