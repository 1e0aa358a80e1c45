"""Replaying one recorded history against candidate code (`durox.replaycheck.replay_execution`):
pure, no store. The histories in `histories/` were recorded from real runs of `apps.app`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from durox import OrchestrationContext, OrchestrationRegistry
from durox.core import events as ev
from durox.core.codec import decode_event
from durox.replaycheck import Divergence, Skipped, replay_execution
from durox.worker import App
from tests.unit.replaycheck import apps

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def recorded(instance: str) -> tuple[dict[str, Any], list[ev.Event]]:
    doc = json.loads((Path(__file__).parent / "histories" / f"{instance}-exec1.json").read_text())
    return doc, [decode_event(json.dumps(e)) for e in doc["events"]]


def check(app: App | OrchestrationRegistry, events: list[ev.Event]) -> Divergence | Skipped | None:
    registry = app if isinstance(app, OrchestrationRegistry) else app.orchestrations
    return replay_execution(events, resolve=registry.resolve, instance_id="i", execution_id=1)


def test_the_recordings_hold_waiting_and_completed_executions() -> None:
    statuses = {json.loads(p.read_text())["status"] for p in HISTORIES}
    assert statuses == {"Running", "Completed"}


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_unchanged_code_replays_every_recorded_history(path: Path) -> None:
    events = [decode_event(json.dumps(e)) for e in json.loads(path.read_text())["events"]]
    assert check(apps.unchanged, events) is None


@pytest.mark.parametrize("instance", ["order-waiting-a", "order-shipped"])
def test_swapped_activities_are_caught_at_the_first_one_naming_both(instance: str) -> None:
    _, events = recorded(instance)
    found = check(apps.changed_order, events)
    assert isinstance(found, Divergence)
    assert (found.kind, found.event_id) == ("nondeterminism", 2)
    assert found.code == "scheduled activity 'Charge'"
    assert found.history == "activity 'Reserve'"
    assert found.message == (
        "code scheduled activity 'Charge' but the history has activity 'Reserve' at event 2"
    )
    assert (found.name, found.version) == (apps.ORDER, "1.0.0")


def test_another_input_to_the_same_activity_is_caught_naming_both_inputs() -> None:
    _, events = recorded("order-waiting-a")
    found = check(apps.changed_input, events)
    assert isinstance(found, Divergence)
    assert (found.kind, found.event_id) == ("nondeterminism", 2)
    assert found.code == (
        'scheduled activity \'Reserve\' with input {"item":"order-waiting-a","quantity":2}'
    )
    assert found.history == "activity 'Reserve' with input \"order-waiting-a\""
    assert found.message == (
        "code scheduled activity 'Reserve' with input "
        '{"item":"order-waiting-a","quantity":2} but the history has it with input '
        '"order-waiting-a" at event 2'
    )


def test_an_added_timer_is_caught_where_the_history_has_the_next_activity() -> None:
    _, events = recorded("order-waiting-b")
    found = check(apps.added_timer, events)
    assert isinstance(found, Divergence)
    assert (found.kind, found.event_id) == ("nondeterminism", 4)
    assert (found.code, found.history) == ("scheduled a timer", "activity 'Charge'")


def test_a_removed_version_has_no_code_to_replay_with() -> None:
    _, events = recorded("order-waiting-a")
    found = check(apps.removed_version, events)
    assert isinstance(found, Divergence) and found.kind == "removed_version"
    assert "no code for rc-test::orchestration::order@1.0.0" in found.message
    _, newer = recorded("order-new-waiting")  # 1.1.0 is still there
    assert check(apps.removed_version, newer) is None


def test_a_different_ending_is_caught_at_the_recorded_end() -> None:
    async def fails_after_shipping(ctx: OrchestrationContext, item: str) -> list[Any]:
        r = await ctx.schedule_activity("Reserve", item)
        c = await ctx.schedule_activity("Charge", item)
        await ctx.wait_for_event("shipped")
        raise ValueError(f"lost {r} {c}")

    registry = OrchestrationRegistry.builder().register(apps.ORDER, fails_after_shipping).build()
    _, events = recorded("order-shipped")
    found = check(registry, events)
    assert isinstance(found, Divergence) and found.kind == "ending"
    assert found.event_id == len(events)
    assert found.code.startswith("fails with ValueError: lost reserved order-shipped")
    assert found.history == f"OrchestrationCompleted at event {len(events)}"
    # the same code on a history still waiting for the event: no difference yet
    _, waiting = recorded("order-waiting-a")
    assert check(registry, waiting) is None


def test_code_that_ends_where_the_history_runs_on_is_an_ending_divergence() -> None:
    async def done_at_once(ctx: OrchestrationContext, item: str) -> str:
        return "done"

    registry = OrchestrationRegistry.builder().register("O", done_at_once).build()
    events: list[ev.Event] = [ev.OrchestrationStarted(1, 0, "O", "1.0.0", None, "0.1.0")]
    found = check(registry, events)
    assert isinstance(found, Divergence) and found.kind == "ending"
    assert (found.event_id, found.code) == (2, "completes")
    assert found.history == "nothing after event 1: the execution is still running"


def test_histories_this_engine_may_not_replay_are_skipped_with_the_reason() -> None:
    _, events = recorded("order-waiting-a")
    start = events[0]
    assert isinstance(start, ev.OrchestrationStarted)
    newer = ev.OrchestrationStarted(
        1, start.ts, start.name, start.version, start.input, "99.0.0", None
    )
    skipped = check(apps.unchanged, [newer, *events[1:]])
    assert isinstance(skipped, Skipped) and skipped.reason == "engine_pin"
    assert "99.0.0" in skipped.detail


def test_endings_the_code_did_not_choose_and_unreadable_histories_are_skipped() -> None:
    _, events = recorded("order-waiting-a")
    poisoned = ev.OrchestrationFailed(
        len(events) + 1, 0, ev.ErrorDetails("poison", "Poisoned", "fetched 11 times")
    )
    skipped = check(apps.unchanged, [*events, poisoned])
    assert isinstance(skipped, Skipped) and skipped.reason == "not_code_ending"
    unreadable = check(apps.unchanged, events[1:])
    assert isinstance(unreadable, Skipped) and unreadable.reason == "unreadable"
    assert check(apps.unchanged, []) == Skipped("unreadable", "the history starts with nothing")


def test_the_public_surface_is_pinned() -> None:
    import durox.replaycheck

    assert sorted(durox.replaycheck.__all__) == [
        "DEFAULT_ENDED_WITHIN",
        "DEFAULT_MAX_HISTORIES",
        "DEFAULT_TIMEOUT",
        "Divergence",
        "DivergenceKind",
        "EXIT_CLEAN",
        "EXIT_DIVERGED",
        "EXIT_INCOMPLETE",
        "HasOrchestrations",
        "REPORT_FORMAT",
        "ReplayCheckError",
        "ReplayCheckReport",
        "SUMMARY_FORMAT",
        "SUMMARY_LIMIT",
        "SkipReason",
        "Skipped",
        "VersionReport",
        "replay_check",
        "replay_execution",
        "summary_bytes",
        "summary_document",
    ]
