"""Safe activation: a gate orchestration before a new version takes new starts, a ramp that
gives it a growing share of them, an analysis that rolls it back, and a rollback by hand.

The operator only decides what the worker file activates; the workers apply it live. So each
of these is a decision over what `plan_versions` would activate once every worker can run it:
hold a NAME at its previous version (the gate has not passed, the ramp was rolled back, a
person asked for the rollback) or hold it there with a ramp to the new one. State that must
outlive a pass (the gate's instance, the ramp's step and when it began, the version active
before) lives in `status.rollout`, read back on every pass, so the operator keeps no memory.

Time is the store's clock (`StoreView.observed_at`): pauses, the gate's timeout and the
analysis window are measured by the same clock the instances' timestamps use. Without a store
reading nothing here can decide, so a registry that asks for a gate or a ramp holds its new
versions until the store can be read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import semver

from durox_operator.model import Obj
from durox_operator.planner._names import content_hash
from durox_operator.planner._spec import RegistrySpec, RolloutSpec
from durox_operator.planner._store import StoreView, rfc3339
from durox_operator.planner._versions import Learned, Versions, format_versions

DEFAULT_GATE_TIMEOUT: Final = 300
DEFAULT_THRESHOLD_PERCENT: Final = 5.0
DEFAULT_MIN_SAMPLES: Final = 20

RAMPING: Final = "Ramping"
COMPLETED: Final = "Completed"
ROLLED_BACK: Final = "RolledBack"
GATE_RUNNING: Final = "Running"
GATE_PASSED: Final = "Passed"
GATE_FAILED: Final = "Failed"


class OutcomeView(Protocol):
    """`durox.providers.VersionOutcomes`: how a version's instances created in a window fared."""

    @property
    def orchestration_name(self) -> str: ...
    @property
    def orchestration_version(self) -> str: ...
    @property
    def ended(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def poisoned(self) -> int: ...


@dataclass(frozen=True)
class GateSeen:
    """The gate instance as the store holds it: its status word and, when it failed, why."""

    status: str
    error: str | None = None


@dataclass(frozen=True)
class SafeSeen:
    """What the reconciler read for this module (asked for by `reads`)."""

    gate: GateSeen | None = None
    """The gate instance named in `status.rollout.gate`; None when it does not exist (yet)."""
    outcomes: Mapping[str, Sequence[OutcomeView]] = field(default_factory=dict)
    """Window start (RFC 3339, as in the status) -> the outcomes of instances created since."""
    step_gates: Mapping[str, GateSeen] = field(default_factory=dict)
    """Instance id -> a ramp step's gate (`gate.everyStep`) as the store holds it; absent when
    it does not exist (yet)."""


@dataclass(frozen=True)
class Reads:
    """What the reconciler must read from the store before planning."""

    gate_instance: str | None
    windows: tuple[str, ...]
    step_gates: tuple[str, ...] = ()


@dataclass(frozen=True)
class StartGate:
    """Start the gate orchestration on the new version (idempotent: an instance that already
    exists is left alone)."""

    instance_id: str
    orchestration: str
    version: str
    input: Any


@dataclass(frozen=True)
class Safe:
    """This module's decision for one pass."""

    versions: Versions
    status: Mapping[str, Any] | None = None
    """`status.rollout`; None when there is nothing to say."""
    starts: tuple[StartGate, ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()
    """(type, reason, message) for the gate's and the ramp's steps."""
    degraded: tuple[str, str] | None = None
    """(Degraded reason, message): GateFailed or RolledBack."""


def rollout_of(spec: RegistrySpec) -> RolloutSpec:
    return spec.get("rollout", {})


def _before(registry: Obj) -> dict[str, Any]:
    return dict(registry.get("status", {}).get("rollout") or {})


def reads(registry: Obj) -> Reads:
    """The gate instance and the analysis windows the last pass left in the status."""
    before = _before(registry)
    gate = before.get("gate") or {}
    windows = sorted(
        {str(r["stepStartedAt"]) for r in before.get("ramps", []) if r.get("phase") == RAMPING}
    )
    running = gate.get("phase") == GATE_RUNNING
    step_gates = sorted(
        str(r["gate"]["instance"])
        for r in before.get("ramps", [])
        if r.get("phase") == RAMPING and (r.get("gate") or {}).get("phase") == GATE_RUNNING
    )
    return Reads(str(gate["instance"]) if running else None, tuple(windows), tuple(step_gates))


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def _hold(
    versions: Versions, name: str, at: str, reason: str, ramp: tuple[str, float] | None = None
) -> Versions:
    """`versions` with `name` pinned at `at` (its previous version) for `reason`."""
    active = {**versions.active, name: at}
    held = tuple(sorted({*versions.held, name}))
    reasons = {**versions.reasons, name: reason}
    ramps = {k: v for k, v in versions.ramps.items() if k != name}
    if ramp is not None:
        ramps[name] = ramp
    return dataclasses.replace(versions, active=active, held=held, reasons=reasons, ramps=ramps)


def gate_version(
    gate_name: str, changing: Mapping[str, str], versions: Versions, learned: Learned | None
) -> str | None:
    """The version the gate runs on: the new one when the gate is a NAME that changes, else
    the spec's for it, else the highest the workers register."""
    if gate_name in changing:
        return changing[gate_name]
    if gate_name in versions.desired:
        return versions.desired[gate_name]
    known = (learned or {}).get(gate_name, set())
    return str(max(semver.Version.parse(v) for v in known)) if known else None


@dataclass(frozen=True)
class Figures:
    """The analysis of one ramp step: failed shares of the new and the previous version."""

    new: tuple[int, int, int]
    """(ended, failed, poisoned) of the new version's instances created in the window."""
    old: tuple[int, int, int]
    threshold: float
    min_samples: int

    @staticmethod
    def share(ended: int, failed: int) -> float:
        return 100.0 * failed / ended if ended else 0.0

    @property
    def excess(self) -> float:
        """Percentage points by which the new version fails more than the previous one."""
        return self.share(*self.new[:2]) - self.share(*self.old[:2])

    @property
    def enough(self) -> bool:
        return self.new[0] >= self.min_samples

    @property
    def roll_back(self) -> bool:
        return self.enough and self.excess > self.threshold

    def summary(self, to: str, frm: str) -> str:
        (ne, nf, _), (oe, of, _) = self.new, self.old
        return f"{to} failed {nf} of {ne} ended, {frm} {of} of {oe}"

    def describe(self, name: str, to: str, frm: str, since: str) -> str:
        (ne, nf, np_), (oe, of, op) = self.new, self.old
        return (
            f"{name}@{to} failed {nf} of {ne} ended instances ({self.share(ne, nf):.1f}%, "
            f"{np_} poisoned) against {name}@{frm} {of} of {oe} ({self.share(oe, of):.1f}%, "
            f"{op} poisoned) since {since}: {self.excess:+.1f} points, above the threshold "
            f"of {self.threshold:g} (minimum sample {self.min_samples})"
        )


def analyse(
    spec: RegistrySpec, outcomes: Sequence[OutcomeView], name: str, to: str, frm: str
) -> Figures:
    analysis = rollout_of(spec).get("analysis", {})

    def of(version: str) -> tuple[int, int, int]:
        for o in outcomes:
            if o.orchestration_name == name and o.orchestration_version == version:
                return (o.ended, o.failed, o.poisoned)
        return (0, 0, 0)

    return Figures(
        new=of(to),
        old=of(frm),
        threshold=float(analysis.get("thresholdPercent", DEFAULT_THRESHOLD_PERCENT)),
        min_samples=int(analysis.get("minSamples", DEFAULT_MIN_SAMPLES)),
    )


def plan_safe(
    registry: Obj,
    previous: Mapping[str, str] | None,
    versions: Versions,
    store: StoreView | None,
    seen: SafeSeen | None,
    template: str,
    learned: Learned | None = None,
) -> Safe:
    """Decide the gate, the ramps and the rollbacks for one pass.

    `previous` is what the observed ConfigMap activates, `versions` what `plan_versions`
    would publish, `template` the planned pod template's digest: a gate or a rolled-back ramp
    is decided once per pod template and set of desired versions, so a fixed image tries
    again while an unrelated spec edit does not."""
    spec: RegistrySpec = registry["spec"]
    rollout = rollout_of(spec)
    before = _before(registry)
    remembered: dict[str, str] = dict(before.get("previous") or {})
    ramps_before = {str(r["name"]): dict(r) for r in before.get("ramps", [])}
    if previous is None:
        return Safe(versions, before or None)
    known = {n for n in versions.desired}

    def status(**parts: Any) -> dict[str, Any]:
        out = {k: v for k, v in before.items() if k not in ("rollback",)}
        out.update(parts)
        if remembered:
            out["previous"] = dict(remembered)
        return {k: v for k, v in out.items() if v not in (None, [], {})}

    if rollout.get("rollback", False):
        return _by_hand(versions, previous, remembered, ramps_before, status, learned, spec)

    if versions.held or versions.unheld:
        # Workers of two templates: `plan_versions` holds the previous versions (a running
        # ramp pauses at 0%); nothing here moves until the rollout is done.
        return Safe(versions, status() or None)
    changing = {
        n: v for n, v in versions.active.items() if previous.get(n) is not None and previous[n] != v
    }
    if not changing:
        return Safe(versions, status() or None)

    gate = rollout.get("gate")
    steps = rollout.get("steps", [])
    if (gate or steps) and store is None:
        reason = "a gate or a ramp needs the store, which was not read this pass"
        held = versions
        for name in sorted(changing):
            held = _hold(held, name, previous[name], reason)
        return Safe(held, status() or None)
    assert store is not None or not (gate or steps)
    now = rfc3339(store.observed_at) if store is not None else ""
    events: list[tuple[str, str, str]] = []
    degraded: tuple[str, str] | None = None
    starts: list[StartGate] = []
    gate_status = before.get("gate")
    step_gate: StepGate | None = None

    if gate:
        key = content_hash(
            {"desired": format_versions(versions.desired), "template": template, "gate": gate}
        )[:10]
        instance = f"durox-gate-{registry['metadata']['name']}-{key}"
        g = dict(gate_status or {})
        if g.get("instance") != instance:
            version = gate_version(gate["orchestration"], changing, versions, learned)
            g = {
                "orchestration": gate["orchestration"],
                "version": version or "-",
                "instance": instance,
                "phase": GATE_RUNNING,
                "startedAt": now,
            }
            if version is None:
                g |= {"phase": GATE_FAILED, "message": _no_version(gate["orchestration"])}
            else:
                starts.append(
                    StartGate(instance, gate["orchestration"], version, gate.get("input"))
                )
                events.append(("Normal", "GateStarted", _gate_words(g, "started")))
        elif g.get("phase") == GATE_RUNNING:
            found = seen.gate if seen is not None else None
            g = _gate_progress(g, found, store, _timeout(gate))
            if g["phase"] == GATE_PASSED:
                events.append(("Normal", "GatePassed", _gate_words(g, "completed")))
            elif g["phase"] == GATE_RUNNING and found is None:
                # Not in the store: the start did not land (a failed pass); start it again.
                starts.append(
                    StartGate(instance, g["orchestration"], g["version"], gate.get("input"))
                )
        gate_status = g
        if gate.get("everyStep", False):
            step_gate = StepGate(
                gate["orchestration"],
                str(g["version"]),
                gate.get("input"),
                _timeout(gate),
                instance,
            )
        if g["phase"] != GATE_PASSED:
            reason = f"gate {g['orchestration']}@{g['version']} (instance {instance}) " + (
                "failed" if g["phase"] == GATE_FAILED else "has not completed yet"
            )
            if g["phase"] == GATE_FAILED:
                degraded = (
                    "GateFailed",
                    f"the old versions stay active: {_gate_words(g, 'failed')}: "
                    f"{g.get('message', '')}",
                )
            held = versions
            for name in sorted(changing):
                held = _hold(held, name, previous[name], reason)
            return Safe(held, status(gate=gate_status), tuple(starts), tuple(events), degraded)

    ramps: list[dict[str, Any]] = [r for n, r in ramps_before.items() if n not in changing]
    out = versions
    if steps:
        for name in sorted(changing):
            entry, step_events, why, step_starts = _ramp_step(
                spec, name, previous[name], changing[name], ramps_before.get(name), template,
                store, seen, now, steps, step_gate,
            )  # fmt: skip
            events += step_events
            starts += step_starts
            ramps.append(entry)
            if why is not None:
                degraded = degraded or why
            if entry["phase"] == RAMPING:
                words = (
                    f"ramping: step {entry['step']} of {entry['steps']}, "
                    f"{entry['percent']:g}% of new starts on {entry['to']}"
                )
                out = _hold(out, name, previous[name], words, (entry["to"], entry["percent"]))
            elif entry["phase"] == ROLLED_BACK:
                out = _hold(out, name, previous[name], f"rolled back: {entry.get('message', '')}")
    # A NAME whose new version now takes every new start: remember the one it replaces.
    for name in sorted(changing):
        if name not in out.held and name in known:
            remembered[name] = previous[name]
    ramps.sort(key=lambda r: str(r["name"]))
    return Safe(out, status(gate=gate_status, ramps=ramps), tuple(starts), tuple(events), degraded)


@dataclass(frozen=True)
class StepGate:
    """`gate.everyStep`: the gate to run before each step after the first (and before the
    ramp completes), named after the first gate's instance."""

    orchestration: str
    version: str
    input: Any
    timeout: int
    prefix: str


def _timeout(gate: Mapping[str, Any]) -> int:
    return int(gate.get("timeoutSeconds", DEFAULT_GATE_TIMEOUT))


def _ramp_step(
    spec: RegistrySpec,
    name: str,
    frm: str,
    to: str,
    entry: Mapping[str, Any] | None,
    template: str,
    store: StoreView | None,
    seen: SafeSeen | None,
    now: str,
    steps: Sequence[Mapping[str, Any]],
    gate: StepGate | None = None,
) -> tuple[dict[str, Any], list[tuple[str, str, str]], tuple[str, str] | None, list[StartGate]]:
    """One NAME's ramp entry after this pass, its Events, Degraded when it was rolled back,
    and the step gate to start."""
    fresh = (
        entry is None
        or entry.get("from") != frm
        or entry.get("to") != to
        or entry.get("phase") == COMPLETED
        or (entry.get("phase") == ROLLED_BACK and entry.get("template") != template)
    )
    if fresh:
        new = _at_step(name, frm, to, 0, steps, now, template)
        return new, [("Normal", "RampStep", _step_words(new))], None, []
    assert entry is not None and store is not None
    current = dict(entry)
    if current["phase"] == ROLLED_BACK:
        return current, [], ("RolledBack", str(current.get("message", ""))), []
    since = str(current["stepStartedAt"])
    if seen is None or since not in seen.outcomes:
        # The window was not read this pass (the store failed between reads): no verdict and
        # no step on missing figures; the next pass reads it again.
        return current, [], None, []
    figures = analyse(spec, seen.outcomes[since], name, to, frm)
    current["analysis"] = {
        "newEnded": figures.new[0],
        "newFailed": figures.new[1],
        "newPoisoned": figures.new[2],
        "previousEnded": figures.old[0],
        "previousFailed": figures.old[1],
        "previousPoisoned": figures.old[2],
    }
    if figures.roll_back:
        return _rolled_back(current, name, frm, to, now, figures.describe(name, to, frm, since))
    index = int(current["step"]) - 1
    pause = int(steps[index].get("pauseSeconds", 0))
    if store.observed_at - _parse(since) < timedelta(seconds=pause):
        return current, [], None, []
    events: list[tuple[str, str, str]] = []
    if gate is not None:
        # `gate.everyStep`: the gate runs again before the share grows (or the ramp ends).
        instance = f"{gate.prefix}-{name}-{index + 2}"
        g = dict(current.get("gate") or {})
        if g.get("instance") != instance:
            g = {
                "orchestration": gate.orchestration,
                "version": gate.version,
                "instance": instance,
                "phase": GATE_RUNNING,
                "startedAt": now,
            }
            current["gate"] = g
            start = StartGate(instance, gate.orchestration, gate.version, gate.input)
            started = _gate_words(g, f"started before step {index + 2} of {name}'s ramp")
            return current, [("Normal", "GateStarted", started)], None, [start]
        found = seen.step_gates.get(instance) if seen is not None else None
        g = _gate_progress(g, found, store, gate.timeout)
        current["gate"] = g
        if g["phase"] == GATE_FAILED:
            why = f"{_gate_words(g, 'failed')}: {g.get('message', '')}"
            return _rolled_back(current, name, frm, to, now, why)
        if g["phase"] == GATE_RUNNING:
            again = [] if found is not None else [
                StartGate(instance, gate.orchestration, gate.version, gate.input)
            ]  # fmt: skip
            return current, [], None, again
        events.append(("Normal", "GatePassed", _gate_words(g, "completed")))
    last = f" (step {index + 1}: {figures.summary(to, frm)})"
    if index + 1 < len(steps):
        nxt = _at_step(name, frm, to, index + 1, steps, now, template)
        return nxt, [*events, ("Normal", "RampStep", _step_words(nxt) + last)], None, []
    done = {**current, "phase": COMPLETED, "percent": 100, "finishedAt": now}
    done.pop("message", None)
    words = f"{name}: the ramp to {to} is complete; every new start goes to {to} (was {frm}){last}"
    return done, [*events, ("Normal", "RampCompleted", words)], None, []


def _rolled_back(
    current: dict[str, Any], name: str, frm: str, to: str, now: str, why: str
) -> tuple[dict[str, Any], list[tuple[str, str, str]], tuple[str, str] | None, list[StartGate]]:
    message = (
        f"new starts of {name} returned to {frm} at step {current['step']} of "
        f"{current['steps']}: {why}"
    )
    current |= {"phase": ROLLED_BACK, "message": message, "percent": 0, "finishedAt": now}
    # The reason goes with Degraded=RolledBack (its own Warning); this one names the NAME, so
    # a second NAME rolled back while Degraded is already True still gets its Event.
    stopped = (
        f"{name}: the ramp to {to} stopped at step {current['step']} of {current['steps']}; "
        f"new starts return to {frm}"
    )
    return current, [("Warning", "RampRolledBack", stopped)], ("RolledBack", message), []


def _at_step(
    name: str,
    frm: str,
    to: str,
    index: int,
    steps: Sequence[Mapping[str, Any]],
    now: str,
    template: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "from": frm,
        "to": to,
        "step": index + 1,
        "steps": len(steps),
        "percent": float(steps[index]["percent"]),
        "phase": RAMPING,
        "stepStartedAt": now,
        "template": template,
    }


def _step_words(entry: Mapping[str, Any]) -> str:
    return (
        f"{entry['name']}: step {entry['step']} of {entry['steps']}: "
        f"{entry['percent']:g}% of new starts on {entry['to']}, the rest on {entry['from']}"
    )


def _gate_words(g: Mapping[str, Any], what: str) -> str:
    return f"gate {g['orchestration']}@{g['version']} (instance {g['instance']}) {what}"


def _no_version(name: str) -> str:
    return f"no version of {name} is registered by the spec or the live workers"


def _gate_progress(
    g: dict[str, Any], gate: GateSeen | None, store: StoreView | None, timeout: int
) -> dict[str, Any]:
    now = store.observed_at if store is not None else None
    if gate is not None and gate.status == "Completed":
        return g | {"phase": GATE_PASSED, "finishedAt": rfc3339(now) if now else ""}
    if gate is not None and gate.status in ("Failed", "Cancelled"):
        why = gate.error or gate.status.lower()
        return g | {"phase": GATE_FAILED, "message": f"it ended {gate.status}: {why}"[:800]}
    if now is not None and now - _parse(str(g["startedAt"])) > timedelta(seconds=timeout):
        return g | {"phase": GATE_FAILED, "message": f"it did not complete within {timeout}s"}
    return g


def _by_hand(
    versions: Versions,
    previous: Mapping[str, str],
    remembered: dict[str, str],
    ramps_before: Mapping[str, Mapping[str, Any]],
    status: Any,
    learned: Learned | None,
    spec: RegistrySpec,
) -> Safe:
    """`spec.rollout.rollback`: every NAME whose new version took (or was taking) new starts
    goes back to the version active before it. Instances already on the new version keep
    running it: its code is still registered, only the choice for new starts changes."""
    out = versions
    ramps = []
    registered: dict[str, set[str]] = {
        o["name"]: set(o.get("versions", [])) | set((learned or {}).get(o["name"], set()))
        for o in spec.get("orchestrations", [])
    }
    for name in sorted(versions.desired):
        ramp = ramps_before.get(name)
        back: str | None = None
        if ramp is not None and ramp.get("phase") in (RAMPING, ROLLED_BACK):
            back = str(ramp["from"])
        elif name in remembered and remembered[name] != versions.desired[name]:
            back = remembered[name]
        elif previous.get(name) not in (None, versions.desired[name]):
            back = previous[name]
        if ramp is not None:
            stopped = dict(ramp)
            if back is not None and ramp.get("phase") == RAMPING:
                stopped |= {"phase": ROLLED_BACK, "percent": 0, "message": "rolled back by hand"}
            ramps.append(stopped)
        can = registered.get(name, set())
        if back is None or (can and back not in can):
            continue  # nothing to go back to, or a version the workers no longer register
        out = _hold(out, name, back, "rolled back by hand (spec.rollout.rollback)")
    return Safe(out, status(ramps=ramps, rollback=True) | {"rollback": True})
