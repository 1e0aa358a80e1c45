"""Small builders for hand-made histories, so engine tests read like the timelines they test."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durox.core import events as ev
from durox.core.context import OrchestrationContext
from durox.core.replay import Dropped, Handler, TurnResult, Unresolved, run_turn

T0 = 1_700_000_000_000
ENGINE = "0.1.0"


class History:
    """An execution's history under construction; `add` returns the new event's id."""

    def __init__(self, name: str = "O", version: str = "1.0.0", input: Any = None) -> None:
        self.events: list[ev.Event] = [ev.OrchestrationStarted(1, T0, name, version, input, ENGINE)]

    def add(self, cls: type, *args: Any, ts: int | None = None) -> int:
        eid = len(self.events) + 1
        self.events.append(cls(eid, T0 + eid if ts is None else ts, *args))
        return eid

    def extend(self, events: Sequence[ev.Event]) -> History:
        self.events.extend(events)
        return self


def resolver(table: Mapping[tuple[str, str], Handler], latest: bool = True) -> Any:
    def resolve(
        name: str, version: str | None, instance_id: str = ""
    ) -> tuple[str, Handler] | None:
        versions = sorted(v for (n, v) in table if n == name)
        if not versions:
            return None
        chosen = version if version is not None else versions[-1]
        if (name, chosen) not in table:
            return None
        return chosen, table[(name, chosen)]

    return resolve


def turn(
    fn: Callable[..., Any] | Mapping[tuple[str, str], Handler],
    history: Sequence[ev.Event] = (),
    messages: Sequence[ev.Message] = (),
    *,
    instance_id: str = "i",
    execution_id: int | None = None,
    now: int = T0 + 1000,
) -> TurnResult:
    """Run one turn and insist that it produced a result (not Unresolved or Dropped)."""
    out = turn_any(
        fn, history, messages, instance_id=instance_id, execution_id=execution_id, now=now
    )
    assert isinstance(out, TurnResult), out
    return out


def turn_any(
    fn: Callable[..., Any] | Mapping[tuple[str, str], Handler],
    history: Sequence[ev.Event] = (),
    messages: Sequence[ev.Message] = (),
    *,
    instance_id: str = "i",
    execution_id: int | None = None,
    now: int = T0 + 1000,
) -> TurnResult | Unresolved | Dropped:
    table: Mapping[tuple[str, str], Handler] = (
        fn if isinstance(fn, Mapping) else {("O", "1.0.0"): fn}
    )
    if execution_id is None:
        execution_id = 1 if history else 0
    return run_turn(
        instance_id=instance_id,
        execution_id=execution_id,
        history=history,
        messages=messages,
        resolve=resolver(table),
        now_ms=now,
        engine_version=ENGINE,
        context_factory=OrchestrationContext,
    )


def start(
    input: Any = None, name: str = "O", version: str | None = None, instance_id: str = "i"
) -> ev.StartOrchestration:
    return ev.StartOrchestration(instance_id, name, version, input)


def kinds(events: Sequence[ev.Event]) -> list[str]:
    return [type(e).__name__ for e in events]
