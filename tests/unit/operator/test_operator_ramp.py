"""Safe activation in the planner (issue 13, items 3 to 6): a gate orchestration before a new
version takes new starts, ramps step by step, the analysis that rolls a ramp back, and the
rollback by hand. Each pass is planned from constructed store observations at a given store
time, then walked as a perfect cluster would (the file applied, the status written)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import yaml

from durox.providers import VersionOutcomes
from durox_operator import planner
from durox_operator.planner import Apply, GateSeen, Observed, Plan, SafeSeen, StartGate
from tests.unit.operator.support import T0, registry, store, worker
from tests.unit.operator.test_operator_plan import (
    _converge,
    _new_image_and_version,
    _rolled_out,
    _stored,
)

NEW = {"checkout": ["1.0.0", "1.9.0", "1.10.0", "1.11.0"], "refund": ["2.0.0"]}
STEPS = [{"percent": 10, "pauseSeconds": 60}, {"percent": 50, "pauseSeconds": 60}]


def _upgrade(**rollout: Any) -> tuple[dict[str, Any], Observed]:
    """checkout@1.10.0 active; the spec wants 1.11.0 from a new image that every worker runs."""
    body = registry()
    observed = _converge(body)
    body = _new_image_and_version(body)
    body["spec"]["rollout"] = {**body["spec"]["rollout"], **rollout}  # the replay check skipped
    first = planner.plan(body, observed)
    done = observed.with_child("configmap", _stored(first.applies[0].obj))
    done = done.with_child("deployment", _rolled_out(_stored(first.applies[1].obj)))
    return body, done


class Run:
    """Passes of one registry: each planned at a store time, then walked (file and status)."""

    def __init__(self, body: dict[str, Any], observed: Observed) -> None:
        self.body, self.observed = body, observed

    def step(self, seconds: float = 0, seen: SafeSeen | None = None, read: bool = True) -> Plan:
        at = store(worker("w1", NEW), worker("w2", NEW))
        at = type(at)(**{**_fields(at), "observed_at": T0 + timedelta(seconds=seconds)})
        observed = self.observed.with_store(at if read else None).with_safe(seen)
        result = planner.plan(self.body, observed)
        for step in result.applies:
            self.observed = self.observed.with_child(step.slot, _stored(step.obj))
        report = result.report(self.observed, "2026-01-02T03:00:00Z")
        if report.status is not None:
            self.body = copy.deepcopy(self.body)
            self.body["status"] = copy.deepcopy(dict(report.status))
        self.report = report
        return result

    def new_image(self, image: str) -> None:
        """A fixed image: its template rolls out (the old file stays meanwhile), then done."""
        self.body = copy.deepcopy(self.body)
        self.body["spec"]["image"] = image
        rolling = self.step(1)
        (dep,) = [a for a in rolling.applies if a.slot == "deployment"]
        self.observed = self.observed.with_child("deployment", _rolled_out(_stored(dep.obj)))

    @property
    def rollout(self) -> dict[str, Any]:
        return dict(self.body["status"].get("rollout", {}))

    def condition(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            c for c in self.body["status"]["conditions"] if c["type"] == kind
        )
        return found


def _fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def _checkout(result: Plan) -> dict[str, Any]:
    """The checkout entry of the worker file the plan publishes."""
    assert result.config is not None
    text = planner.render_worker_config(result.config)
    entry: dict[str, Any] = next(
        o for o in yaml.safe_load(text)["orchestrations"] if o["name"] == "checkout"
    )
    return entry


def _events(result: Plan) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in result.events]


def _outcomes(since: str, new: tuple[int, int, int], old: tuple[int, int, int]) -> SafeSeen:
    rows: Sequence[VersionOutcomes] = (
        VersionOutcomes("checkout", "1.10.0", old[0], old[0], old[1], old[2]),
        VersionOutcomes("checkout", "1.11.0", new[0], new[0], new[1], new[2]),
    )
    return SafeSeen(outcomes={since: rows})


# -- without a gate or a ramp: the negative control ---------------------------------------------


def test_without_a_gate_or_ramp_the_new_version_is_activated_at_once() -> None:
    run = Run(*_upgrade())
    result = run.step()
    assert _checkout(result) == {"name": "checkout", "policy": "latest"}
    assert ("Normal", "ActivatedVersions") in _events(result)
    assert run.rollout == {"previous": {"checkout": "1.10.0"}}


# -- gates --------------------------------------------------------------------------------------


GATE = {"orchestration": "checkout", "input": {"smoke": True}, "timeoutSeconds": 120}


def test_a_gate_starts_on_the_new_version_and_holds_the_old_one_until_it_completes() -> None:
    run = Run(*_upgrade(gate=GATE))
    first = run.step()
    (start,) = [s for s in first.steps if isinstance(s, StartGate)]
    assert (start.orchestration, start.version, start.input) == (
        "checkout",
        "1.11.0",
        GATE["input"],
    )
    assert start.instance_id.startswith("durox-gate-orders-")
    assert _checkout(first) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    assert ("Normal", "GateStarted") in _events(first)
    assert run.rollout["gate"]["phase"] == "Running"
    progressing = run.condition("Progressing")
    assert progressing["reason"] == "HoldingVersions"
    assert "gate checkout@1.11.0" in progressing["message"]

    running = run.step(30, SafeSeen(gate=GateSeen("Running")))
    assert not [s for s in running.steps if isinstance(s, StartGate)]  # started once
    assert _checkout(running)["policy"] == "exact"

    passed = run.step(40, SafeSeen(gate=GateSeen("Completed")))
    assert _checkout(passed) == {"name": "checkout", "policy": "latest"}
    assert ("Normal", "GatePassed") in _events(passed)
    assert ("Normal", "ActivatedVersions") in _events(passed)
    assert run.rollout["gate"]["phase"] == "Passed"
    assert run.rollout["previous"] == {"checkout": "1.10.0"}
    later = run.step(500)  # nothing more to gate: the version is active
    assert not [s for s in later.steps if isinstance(s, StartGate)] and later.applies == ()


def test_a_gate_that_fails_keeps_the_old_version_active_and_says_why() -> None:
    run = Run(*_upgrade(gate=GATE))
    run.step()
    failed = run.step(20, SafeSeen(gate=GateSeen("Failed", "AssertionError: total is 0")))
    assert _checkout(failed) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    degraded = run.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "GateFailed")
    assert "AssertionError: total is 0" in degraded["message"]
    assert "old versions stay active" in degraded["message"]
    assert ("Warning", "GateFailed") in [(e.type, e.reason) for e in run.report.events]
    assert run.condition("Stalled")["status"] == "True"
    # It stays failed (the same template and versions): no new start, still held.
    again = run.step(400, SafeSeen())
    assert not [s for s in again.steps if isinstance(s, StartGate)]
    assert _checkout(again)["policy"] == "exact"


def test_a_gate_that_does_not_complete_in_time_fails() -> None:
    run = Run(*_upgrade(gate=GATE))
    run.step()
    assert run.step(119, SafeSeen(gate=GateSeen("Running"))).held_back is None
    late = run.step(121, SafeSeen(gate=GateSeen("Running")))
    assert late.held_back is not None and late.held_back[0] == "GateFailed"
    assert "did not complete within 120s" in late.held_back[1]


def test_a_gate_instance_not_in_the_store_is_started_again() -> None:
    run = Run(*_upgrade(gate=GATE))
    first = run.step()
    lost = run.step(5, SafeSeen(gate=None))
    assert [s for s in lost.steps if isinstance(s, StartGate)] == [
        s for s in first.steps if isinstance(s, StartGate)
    ]


def test_a_fixed_image_runs_the_gate_again() -> None:
    run = Run(*_upgrade(gate=GATE))
    first = run.step()
    run.step(20, SafeSeen(gate=GateSeen("Failed", "boom")))
    run.new_image("example.invalid/orders:1.1.1")
    retried = run.step(30)
    (old,) = [s for s in first.steps if isinstance(s, StartGate)]
    (new,) = [s for s in retried.steps if isinstance(s, StartGate)]
    assert new.instance_id != old.instance_id


def test_a_gate_on_another_name_runs_the_version_the_workers_register() -> None:
    run = Run(*_upgrade(gate={"orchestration": "refund"}))
    (start,) = [s for s in run.step().steps if isinstance(s, StartGate)]
    assert (start.orchestration, start.version) == ("refund", "2.0.0")
    run = Run(*_upgrade(gate={"orchestration": "smoke"}))
    run.step()
    assert run.rollout["gate"]["phase"] == "Failed"
    assert run.condition("Degraded")["reason"] == "GateFailed"


def test_without_the_store_a_gate_or_ramp_holds_the_new_version() -> None:
    run = Run(*_upgrade(gate=GATE))
    result = run.step(read=False)
    assert _checkout(result)["policy"] == "exact"
    assert "needs the store" in run.condition("Progressing")["message"]


# -- ramps --------------------------------------------------------------------------------------


def test_a_ramp_advances_one_step_per_pause_then_completes() -> None:
    run = Run(*_upgrade(steps=STEPS))
    first = run.step()
    assert _checkout(first) == {
        "name": "checkout",
        "policy": "exact",
        "version": "1.10.0",
        "ramp": {"version": "1.11.0", "percent": 10.0},
    }
    assert _events(first).count(("Normal", "RampStep")) == 1
    (ramp,) = run.rollout["ramps"]
    assert (ramp["step"], ramp["steps"], ramp["percent"], ramp["phase"]) == (1, 2, 10, "Ramping")
    assert ramp["stepStartedAt"] == "2026-01-02T03:00:00Z"
    assert "step 1 of 2, 10% of new starts on 1.11.0" in run.condition("Progressing")["message"]
    assert planner.reads(run.body).windows == ("2026-01-02T03:00:00Z",)

    waiting = run.step(59, _outcomes("2026-01-02T03:00:00Z", (5, 0, 0), (40, 0, 0)))
    assert waiting.applies == () and _events(waiting) == []

    second = run.step(60, _outcomes("2026-01-02T03:00:00Z", (5, 0, 0), (40, 0, 0)))
    assert _checkout(second)["ramp"] == {"version": "1.11.0", "percent": 50.0}
    (stepped,) = [e.message for e in second.events if e.reason == "RampStep"]
    assert stepped == (
        "checkout: step 2 of 2: 50% of new starts on 1.11.0, the rest on 1.10.0 "
        "(step 1: 1.11.0 failed 0 of 5 ended, 1.10.0 0 of 40)"
    )
    (ramp,) = run.rollout["ramps"]
    assert (ramp["step"], ramp["stepStartedAt"]) == (2, "2026-01-02T03:01:00Z")

    done = run.step(125, _outcomes("2026-01-02T03:01:00Z", (30, 1, 0), (30, 1, 0)))
    assert _checkout(done) == {"name": "checkout", "policy": "latest"}
    assert ("Normal", "RampCompleted") in _events(done)
    assert ("Normal", "ActivatedVersions") in _events(done)
    (ramp,) = run.rollout["ramps"]
    assert ramp["phase"] == "Completed"
    assert run.rollout["previous"] == {"checkout": "1.10.0"}
    assert run.step(500).applies == ()


def test_a_ramp_that_fails_more_than_the_previous_version_rolls_back() -> None:
    run = Run(*_upgrade(steps=STEPS, analysis={"thresholdPercent": 10, "minSamples": 20}))
    run.step()
    bad = run.step(30, _outcomes("2026-01-02T03:00:00Z", (20, 6, 2), (100, 5, 0)))
    assert _checkout(bad) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    (ramp,) = run.rollout["ramps"]
    assert (ramp["phase"], ramp["percent"]) == ("RolledBack", 0)
    assert ramp["analysis"]["newFailed"] == 6 and ramp["analysis"]["previousEnded"] == 100
    degraded = run.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    assert (
        "checkout@1.11.0 failed 6 of 20 ended instances (30.0%, 2 poisoned)"
        in (degraded["message"])
    )
    assert "checkout@1.10.0 5 of 100 (5.0%" in degraded["message"]
    assert ("Warning", "RampRolledBack") in _events(bad)
    assert ("Warning", "RolledBack") in [(e.type, e.reason) for e in run.report.events]
    assert run.condition("VersionsMatch")["reason"] == "AsListed"  # one template serves
    # The ramp stays stopped: later passes advance nothing, even after the pause.
    later = run.step(600, SafeSeen())
    assert _checkout(later)["policy"] == "exact" and _events(later) == []
    assert planner.reads(run.body).windows == ()


def test_a_step_does_not_advance_on_figures_that_were_not_read() -> None:
    run = Run(*_upgrade(steps=STEPS))
    run.step()
    unread = run.step(600, SafeSeen())  # the window's read failed this pass
    assert unread.applies == () and _events(unread) == []
    assert run.rollout["ramps"][0]["step"] == 1
    read = run.step(610, _outcomes("2026-01-02T03:00:00Z", (0, 0, 0), (0, 0, 0)))
    assert _checkout(read)["ramp"]["percent"] == 50.0  # read, and empty: no verdict, it steps


@pytest.mark.parametrize(
    ("new", "old", "rolls_back"),
    [
        ((19, 19, 0), (100, 0, 0), False),  # below the minimum sample: no verdict yet
        ((20, 2, 0), (100, 1, 0), False),  # 10% against 1%: 9 points, within 10
        ((20, 3, 0), (100, 1, 0), True),  # 15% against 1%: 14 points
        ((20, 20, 0), (0, 0, 0), True),  # nothing ended on the previous version
        ((20, 4, 0), (20, 4, 0), False),  # both fail as much
    ],
)
def test_the_threshold_and_the_minimum_sample(
    new: tuple[int, int, int], old: tuple[int, int, int], rolls_back: bool
) -> None:
    run = Run(*_upgrade(steps=STEPS, analysis={"thresholdPercent": 10, "minSamples": 20}))
    run.step()
    result = run.step(30, _outcomes("2026-01-02T03:00:00Z", new, old))
    assert (result.held_back is not None) is rolls_back
    assert ("ramp" not in _checkout(result)) is rolls_back


def test_a_rolled_back_ramp_starts_again_with_a_fixed_image() -> None:
    run = Run(*_upgrade(steps=STEPS))
    run.step()
    run.step(30, _outcomes("2026-01-02T03:00:00Z", (50, 50, 0), (50, 0, 0)))
    run.new_image("example.invalid/orders:1.1.1")
    again = run.step(50)
    assert _checkout(again)["ramp"] == {"version": "1.11.0", "percent": 10.0}
    assert run.rollout["ramps"][0]["phase"] == "Ramping"
    assert run.condition("Degraded")["status"] == "False"


def test_a_gate_runs_before_the_ramp() -> None:
    run = Run(*_upgrade(gate=GATE, steps=STEPS))
    first = run.step()
    assert "ramp" not in _checkout(first) and "ramps" not in run.rollout
    passed = run.step(10, SafeSeen(gate=GateSeen("Completed")))
    assert _checkout(passed)["ramp"] == {"version": "1.11.0", "percent": 10.0}
    # Once the gate passed for these versions and this template, the ramp goes on alone.
    second = run.step(70, _outcomes("2026-01-02T03:00:10Z", (1, 0, 0), (1, 0, 0)))
    assert _checkout(second)["ramp"]["percent"] == 50.0
    assert not [s for s in second.steps if isinstance(s, StartGate)]


# -- rollback by hand ---------------------------------------------------------------------------


def _rollback(run: Run, on: bool = True) -> None:
    run.body = copy.deepcopy(run.body)
    run.body["spec"]["rollout"]["rollback"] = on
    run.body["metadata"]["generation"] += 1


def test_a_rollback_by_hand_during_a_ramp_stops_it_at_the_previous_version() -> None:
    run = Run(*_upgrade(steps=STEPS))
    run.step()
    _rollback(run)
    result = run.step(10)
    assert _checkout(result) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    assert run.rollout["rollback"] is True
    assert run.rollout["ramps"][0]["phase"] == "RolledBack"
    assert "rolled back by hand" in run.condition("Progressing")["message"]


def test_a_rollback_by_hand_after_activation_returns_to_the_version_before() -> None:
    run = Run(*_upgrade())
    run.step()
    assert run.rollout["previous"] == {"checkout": "1.10.0"}
    _rollback(run)
    back = run.step(10)
    assert _checkout(back) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    assert ("Normal", "ActivatedVersions") in _events(back)  # "now start on checkout@1.10.0"
    # Instances on 1.11.0 keep running: the image still registers it, the file only pins new
    # starts, and the Deployment is not touched.
    assert [a.slot for a in back.applies] == ["configmap"]
    assert run.step(20).applies == ()  # stays rolled back
    _rollback(run, on=False)
    forward = run.step(30)
    assert _checkout(forward) == {"name": "checkout", "policy": "latest"}


def test_a_rollback_by_hand_with_nothing_to_go_back_to_changes_nothing() -> None:
    body = registry()
    body["spec"]["rollout"] = {**body["spec"]["rollout"], "rollback": True}
    observed = _converge(body)
    result = planner.plan(body, observed)
    assert result.applies == ()


# -- the analysis figures -----------------------------------------------------------------------


def test_figures() -> None:
    spec = registry(rollout={"analysis": {"thresholdPercent": 5, "minSamples": 10}})["spec"]
    rows = [
        VersionOutcomes("checkout", "1.0.0", 50, 40, 2, 0),
        VersionOutcomes("checkout", "2.0.0", 12, 10, 3, 1),
        VersionOutcomes("other", "2.0.0", 99, 99, 99, 0),
    ]
    f = planner.analyse(spec, rows, "checkout", "2.0.0", "1.0.0")
    assert (f.new, f.old) == ((10, 3, 1), (40, 2, 0))
    assert f.excess == pytest.approx(25.0) and f.enough and f.roll_back
    assert planner.analyse(spec, [], "checkout", "2.0.0", "1.0.0").roll_back is False
    default = planner.analyse(registry()["spec"], rows, "checkout", "2.0.0", "1.0.0")
    assert (default.threshold, default.min_samples) == (5.0, 20)


def test_a_ramped_file_is_one_the_worker_accepts() -> None:
    run = Run(*_upgrade(steps=STEPS))
    result = run.step()
    (cm,) = [a for a in result.applies if isinstance(a, Apply) and a.slot == "configmap"]
    from durox.worker_config import WorkerConfig

    parsed = WorkerConfig.model_validate(yaml.safe_load(cm.obj["data"]["worker.yaml"]))
    (policy,) = [p for p in parsed.orchestrations if p.name == "checkout"]
    assert policy.ramp is not None and policy.ramp.percent == 10.0


# -- a gate at every step -------------------------------------------------------------------------


def _step_gate(run: Run) -> dict[str, Any]:
    return dict(run.rollout["ramps"][0].get("gate") or {})


def test_a_gate_at_every_step_must_pass_before_the_share_grows() -> None:
    run = Run(*_upgrade(gate={**GATE, "everyStep": True}, steps=STEPS))
    run.step()
    run.step(5, SafeSeen(gate=GateSeen("Completed")))  # the first gate: the ramp starts
    window = "2026-01-02T03:00:05Z"
    fine = _outcomes(window, (5, 0, 0), (40, 0, 0))
    due = run.step(70, fine)
    (start,) = [s for s in due.steps if isinstance(s, StartGate)]
    assert start.instance_id == run.rollout["gate"]["instance"] + "-checkout-2"
    assert (start.orchestration, start.version) == ("checkout", "1.11.0")
    assert _checkout(due)["ramp"]["percent"] == 10.0  # not before the gate passed
    assert planner.reads(run.body).step_gates == (start.instance_id,)

    running = {start.instance_id: GateSeen("Running")}
    held = run.step(80, SafeSeen(outcomes=fine.outcomes, step_gates=running))
    assert held.applies == () and not [s for s in held.steps if isinstance(s, StartGate)]

    passed = {start.instance_id: GateSeen("Completed")}
    grown = run.step(90, SafeSeen(outcomes=fine.outcomes, step_gates=passed))
    assert _checkout(grown)["ramp"]["percent"] == 50.0
    assert [r for _, r in _events(grown)] == ["GatePassed", "RampStep"]
    assert "gate" not in run.rollout["ramps"][0]

    # Before the ramp completes, the gate runs once more.
    window = run.rollout["ramps"][0]["stepStartedAt"]
    last = run.step(160, _outcomes(window, (5, 0, 0), (5, 0, 0)))
    (final,) = [s for s in last.steps if isinstance(s, StartGate)]
    assert final.instance_id.endswith("-checkout-3") and "ramp" in _checkout(last)


def test_a_gate_that_fails_at_a_step_rolls_the_ramp_back() -> None:
    run = Run(*_upgrade(gate={**GATE, "everyStep": True}, steps=STEPS))
    run.step()
    run.step(5, SafeSeen(gate=GateSeen("Completed")))
    fine = _outcomes("2026-01-02T03:00:05Z", (5, 0, 0), (40, 0, 0))
    run.step(70, fine)
    instance = _step_gate(run)["instance"]
    failed = {instance: GateSeen("Failed", "ValueError: no price")}
    result = run.step(80, SafeSeen(outcomes=fine.outcomes, step_gates=failed))
    assert _checkout(result) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    degraded = run.condition("Degraded")
    assert degraded["reason"] == "RolledBack" and "ValueError: no price" in degraded["message"]
    assert ("Warning", "RampRolledBack") in _events(result)


def test_a_gate_at_every_step_that_times_out_rolls_back_and_a_lost_one_starts_again() -> None:
    run = Run(*_upgrade(gate={**GATE, "everyStep": True}, steps=STEPS))
    run.step()
    run.step(5, SafeSeen(gate=GateSeen("Completed")))
    fine = _outcomes("2026-01-02T03:00:05Z", (5, 0, 0), (40, 0, 0))
    run.step(70, fine)
    lost = run.step(80, fine)  # not in the store: started again
    assert [s.instance_id for s in lost.steps if isinstance(s, StartGate)] == [
        _step_gate(run)["instance"]
    ]
    late = run.step(70 + 121, fine)
    assert late.held_back is not None and "did not complete within 120s" in late.held_back[1]


def test_without_every_step_no_gate_runs_between_steps() -> None:
    run = Run(*_upgrade(gate=GATE, steps=STEPS))
    run.step()
    run.step(5, SafeSeen(gate=GateSeen("Completed")))
    grown = run.step(70, _outcomes("2026-01-02T03:00:05Z", (5, 0, 0), (40, 0, 0)))
    assert not [s for s in grown.steps if isinstance(s, StartGate)]
    assert _checkout(grown)["ramp"]["percent"] == 50.0


def test_rolling_forward_after_a_rollback_by_hand_ramps_again() -> None:
    run = Run(*_upgrade(steps=STEPS))
    run.step()
    run.step(60, _outcomes("2026-01-02T03:00:00Z", (1, 0, 0), (1, 0, 0)))
    run.step(120, _outcomes("2026-01-02T03:01:00Z", (1, 0, 0), (1, 0, 0)))
    assert run.rollout["ramps"][0]["phase"] == "Completed"
    _rollback(run)
    run.step(130)
    _rollback(run, on=False)
    again = run.step(140)
    assert _checkout(again)["ramp"] == {"version": "1.11.0", "percent": 10.0}
    assert run.rollout["ramps"][0]["step"] == 1
