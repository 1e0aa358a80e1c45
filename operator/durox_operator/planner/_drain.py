"""`spec.drain.mode: Auto`: the drain pool started and removed by what the store holds.

The pool is wanted while instances not ended are pinned to an engine version outside the
main pool's replay range; once none is, it stays `removeAfterSeconds` longer (late messages
for an instance may still arrive) and then goes. The planner has no clock: "since when
nothing is left" is the store's clock (`observed_at`), kept in `status.drain.emptySince`, so
the decision survives an operator restart. Without an observation the pool stays as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import semver

from durox_operator.model import Obj
from durox_operator.planner._spec import (
    drain_auto,
    drain_remove_after,
    replay_range,
    spec_of,
)
from durox_operator.planner._store import StoreView, rfc3339


@dataclass(frozen=True)
class AutoDrain:
    """One pass's drain decision in Auto mode."""

    wanted: bool
    pinned: Mapping[str, int] = field(default_factory=dict)
    """Instances not ended per engine pin outside the main replay range."""
    empty_since: str | None = None
    events: tuple[tuple[str, str], ...] = ()
    """(reason, message) of each step taken: DrainStarted, DrainEmpty, DrainFinished."""


def pinned_outside(registry: Obj, store: StoreView) -> dict[str, int]:
    """Instances not ended per engine pin outside the main pool's replay range (none when the
    spec sets no range: the main workers then take every pin their engine can replay)."""
    limits = replay_range(spec_of(registry))
    if limits is None:
        return {}
    low = semver.Version.parse(limits.get("min", "0.0.0"))
    high = semver.Version.parse(limits["max"])
    out: dict[str, int] = {}
    for usage in store.versions:
        for pin, n in usage.by_pin.items():
            if pin is None or n <= 0:
                continue
            try:
                inside = low <= semver.Version.parse(pin) <= high
            except ValueError:
                inside = False
            if not inside:
                out[pin] = out.get(pin, 0) + n
    return out


def _counts(pinned: Mapping[str, int]) -> str:
    return ", ".join(f"{n} pinned to {pin}" for pin, n in sorted(pinned.items()))


def auto_drain(registry: Obj, store: StoreView | None, exists: bool) -> AutoDrain | None:
    """The Auto mode decision; None in Manual mode. `exists`: the drain Deployment does."""
    spec = spec_of(registry)
    if not drain_auto(spec):
        return None
    before: Mapping[str, Any] = registry.get("status", {}).get("drain", {})
    if store is None:
        return AutoDrain(exists, dict(before.get("pinned", {})), before.get("emptySince"))
    pinned = pinned_outside(registry, store)
    if pinned:
        started = (
            ()
            if exists
            else (
                (
                    "DrainStarted",
                    f"starting the drain pool: {_counts(pinned)}, outside the main replay range",
                ),
            )
        )
        return AutoDrain(True, pinned, None, started)
    if not exists:
        return AutoDrain(False)
    delay = drain_remove_after(spec)
    since = before.get("emptySince")
    events: tuple[tuple[str, str], ...] = ()
    if since is None:
        since = rfc3339(store.observed_at)
        events = (
            (
                "DrainEmpty",
                "nothing is pinned outside the main replay range any more; the drain pool goes "
                f"in {delay}s unless work for it returns",
            ),
        )
    began = datetime.strptime(str(since), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if (store.observed_at - began).total_seconds() >= delay:
        return AutoDrain(
            False,
            events=(
                (
                    "DrainFinished",
                    "the drain is finished: nothing pinned outside the main replay range for "
                    f"{delay}s; removing the drain pool",
                ),
            ),
        )
    return AutoDrain(True, {}, str(since), events)


def with_drain(registry: Obj, enabled: bool) -> Obj:
    """`registry` with `spec.drain.enabled` as Auto mode decided it, for the rest of the pass."""
    out = copy.deepcopy(dict(registry))
    out["spec"].setdefault("drain", {})["enabled"] = enabled
    return out
