"""Every recorded history of the example orchestrations replays against today's code.

A failure here means a change would break executions already in flight: make the change a new
orchestration version instead of editing the old one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durox.core import events as ev
from durox.core.codec import decode_event, encode_event
from durox.core.context import OrchestrationContext
from durox.core.replay import TurnResult, run_turn
from durox.demo.health_monitor import orchestrations

CORPUS = sorted((Path(__file__).parent / "corpus" / "histories").glob("*.json"))


def test_the_corpus_is_not_empty() -> None:
    versions = {json.loads(p.read_text())["version"] for p in CORPUS}
    assert versions == {"1.0.0", "1.0.1", "1.0.2"}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_recorded_history_replays_to_the_recorded_ending(path: Path) -> None:
    doc = json.loads(path.read_text())
    events = [decode_event(json.dumps(e)) for e in doc["events"]]
    *body, last = events
    assert isinstance(last, ev.TERMINAL_EVENTS)
    registry = orchestrations(with_1_0_2=True)
    result = run_turn(
        instance_id="corpus",
        execution_id=doc["execution_id"],
        history=body,
        messages=[],
        resolve=registry.resolve,
        now_ms=last.ts,
        engine_version="0.1.0",
        context_factory=OrchestrationContext,
    )
    assert isinstance(result, TurnResult)
    assert result.error is None or result.error.kind != "nondeterminism", result.error
    assert [encode_event(e) for e in result.new_events] == [encode_event(last)]
    assert result.traces == []  # replay is silent
