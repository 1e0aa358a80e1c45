"""Poisoning decided by the pure core: what a failed-for-good instance's history gets."""

from __future__ import annotations

from typing import Any

from durox.core import events as ev
from durox.core.poison import poison_turn
from durox.core.replay import TurnResult
from durox.status import InstanceStatus
from tests.unit.histories import ENGINE, T0

NOW = T0 + 1_000
PARENT = ev.ParentRef("parent-1", 3, 7)
ERROR = ev.ErrorDetails("poison", "PoisonMessage", "gave up")


def _poison(**overrides: Any) -> TurnResult | None:
    args: dict[str, Any] = {
        "instance_id": "i",
        "running": False,
        "execution_id": 0,
        "history": [],
        "history_length": 0,
        "messages": [],
        "name": None,
        "version": None,
        "pinned_engine_version": None,
        "engine_version": "9.9.9",
        "now_ms": NOW,
        **overrides,
    }
    return poison_turn("gave up", **args)


def _running(parent: ev.ParentRef | None = None, length: int = 4) -> TurnResult | None:
    started = ev.OrchestrationStarted(1, T0, "O", "1.2.0", None, ENGINE, parent)
    timer = ev.TimerCreated(2, T0 + 2, T0 + 60_000)
    return _poison(
        running=True,
        execution_id=2,
        history=[started, timer],
        history_length=length,
        messages=[ev.ActivityResult("i", 2, 3, 1)],
        name="O",
        version="1.2.0",
        pinned_engine_version=ENGINE,
    )


def test_a_running_execution_fails_after_its_last_event_pinned_as_it_was() -> None:
    turn = _running(length=4)
    assert turn == TurnResult(
        instance_id="i",
        execution_id=2,
        name="O",
        version="1.2.0",
        engine_version=ENGINE,
        parent=None,
        new_events=[ev.OrchestrationFailed(5, NOW, ERROR)],
        status=InstanceStatus.FAILED,
        error=ERROR,
    )


def test_a_running_sub_orchestration_tells_its_parent() -> None:
    turn = _running(parent=PARENT)
    assert turn is not None
    assert turn.parent == PARENT
    assert turn.messages == [ev.SubOrchestrationResult("parent-1", 3, 7, None, ERROR)]


def test_an_execution_written_before_pinning_stays_unpinned() -> None:
    turn = _poison(running=True, execution_id=1, history_length=2, name="O", version="1.0.0")
    assert turn is not None
    assert turn.engine_version is None  # not this engine's: the store keeps the pin it had


def test_an_unreadable_history_still_numbers_after_the_stored_length() -> None:
    turn = _poison(
        running=True, execution_id=1, history_length=9, name="O", version="1.0.0"
    )  # history empty: it could not be decoded
    assert turn is not None
    assert turn.new_events == [ev.OrchestrationFailed(10, NOW, ERROR)]
    assert turn.parent is None and turn.messages == []


def test_a_start_that_never_ran_becomes_an_execution_that_starts_and_fails() -> None:
    start = ev.StartOrchestration("i", "O", None, {"x": 1}, execution_id=1, parent=PARENT)
    turn = _poison(messages=[start])
    assert turn == TurnResult(
        instance_id="i",
        execution_id=1,
        name="O",
        version="0.0.0",
        engine_version="9.9.9",
        parent=PARENT,
        new_events=[
            ev.OrchestrationStarted(1, NOW, "O", "0.0.0", {"x": 1}, "9.9.9", PARENT),
            ev.OrchestrationFailed(2, NOW, ERROR),
        ],
        status=InstanceStatus.FAILED,
        error=ERROR,
        messages=[ev.SubOrchestrationResult("parent-1", 3, 7, None, ERROR)],
        started_execution=True,
    )


def test_only_the_next_execution_s_start_counts() -> None:
    stale = ev.StartOrchestration("i", "O", "1.0.0", None, execution_id=1)
    assert _poison(execution_id=1, messages=[stale]) is None
    nxt = ev.StartOrchestration("i", "O", "2.0.0", None, execution_id=2)
    turn = _poison(execution_id=1, messages=[stale, nxt])
    assert turn is not None
    assert (turn.execution_id, turn.version, turn.started_execution) == (2, "2.0.0", True)


def test_nothing_running_and_no_start_leaves_nothing_to_fail() -> None:
    assert _poison(messages=[ev.ActivityResult("i", 1, 2, None)]) is None
