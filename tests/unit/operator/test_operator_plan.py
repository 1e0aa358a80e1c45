"""`plan(registry, observed)` on its own: every write, delete and Event a pass makes, and the
status it reports, decided from plain dicts. The reconciler only walks what these pin down."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import yaml

from durox_operator import planner
from durox_operator.model import ACTIVE_ANNOTATION
from durox_operator.planner import Apply, Delete, Event, HandOver, Observed, Plan
from tests.unit.operator.support import registry

NOW = "2026-01-02T03:04:05Z"
UID = "1111-2222"  # the fixture registry's uid


def _shape(plan: Plan) -> list[tuple[str, ...]]:
    """Each step as (what, slot or reason, event reason): the order matters."""
    shape: list[tuple[str, ...]] = []
    for step in plan.steps:
        if isinstance(step, Apply):
            shape.append(("apply", step.slot, step.event.reason))
        elif isinstance(step, Delete):
            shape.append(("delete", step.slot, step.event.reason))
        elif isinstance(step, HandOver):
            shape.append(("handover", step.slot))
        elif isinstance(step, Event):
            shape.append(("event", step.type, step.reason))
        elif isinstance(step, planner.StartGate):
            shape.append(("start gate", step.orchestration, step.version))
        else:
            shape.append(("job", type(step).__name__, ""))
    return shape


def _stored(obj: Any, generation: int = 1) -> dict[str, Any]:
    """`obj` as the apiserver returns it once written: a uid and a generation."""
    out = copy.deepcopy(dict(obj))
    out["metadata"] |= {"uid": f"uid-{out['metadata']['name']}", "generation": generation}
    return out


def _rolled_out(dep: dict[str, Any]) -> dict[str, Any]:
    n = dep["spec"].get("replicas", 1)
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
    }
    return dep


def _rolling(dep: dict[str, Any]) -> dict[str, Any]:
    """A new template applied: the controller has not observed it and no worker runs it."""
    dep["metadata"]["generation"] += 1
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"] - 1,
        "replicas": 2,
        "updatedReplicas": 0,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    return dep


def _converge(body: dict[str, Any], observed: Observed | None = None) -> Observed:
    """Walk the plan as a perfect cluster would; Deployments come out rolled out."""
    observed = observed or Observed()
    result = planner.plan(body, observed)
    after = observed
    for step in result.steps:
        if isinstance(step, Apply):
            stored = _stored(step.obj)
            if stored["kind"] == "Deployment":
                _rolled_out(stored)
            after = after.with_child(step.slot, stored)
        elif isinstance(step, Delete):
            after = after.with_child(step.slot, None)
    return after


def _with_status(body: dict[str, Any], plan: Plan, after: Observed) -> dict[str, Any]:
    report = plan.report(after, NOW)
    if report.status is not None:
        body = copy.deepcopy(body)
        body["status"] = copy.deepcopy(dict(report.status))
    return body


def _file(step: Apply) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(step.obj["data"]["worker.yaml"])
    return loaded


def _policy(step: Apply, name: str) -> dict[str, Any]:
    return next(p for p in _file(step)["orchestrations"] if p["name"] == name)


def _condition(status: Any, kind: str) -> tuple[str, str]:
    cond = next(c for c in status["conditions"] if c["type"] == kind)
    return cond["status"], cond["reason"]


def _new_image_and_version(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["spec"]["image"] = "example.invalid/orders:1.1.0"
    body["spec"]["orchestrations"][0]["versions"].append("1.11.0")
    return body


# -- creation and idempotence -----------------------------------------------------------------


def test_a_first_pass_creates_the_file_then_the_deployment() -> None:
    result = planner.plan(registry(), Observed())
    assert _shape(result) == [
        ("apply", "configmap", "CreatedConfigMap"),
        ("apply", "deployment", "CreatedDeployment"),
    ]
    assert result.deletes == () and result.events == ()
    assert result.refused is None and result.invalid is None
    [cm, dep] = result.applies
    assert cm.obj["metadata"]["name"] == dep.obj["metadata"]["name"] == "orders"
    assert cm.obj["metadata"]["annotations"][ACTIVE_ANNOTATION] == "checkout@1.10.0,refund@2.0.0"
    assert _policy(cm, "checkout") == {"name": "checkout", "policy": "latest"}
    assert cm.event == Event("Normal", "CreatedConfigMap", "created ConfigMap orders")


def test_a_converged_registry_plans_nothing_and_reports_nothing_new() -> None:
    body = registry()
    observed = _converge(body)
    result = planner.plan(body, observed)
    assert result.steps == ()
    body = _with_status(body, result, observed)
    assert _condition(body["status"], "Available") == ("True", "WorkersAvailable")
    assert planner.plan(body, observed).report(observed, "2030-01-01T00:00:00Z").status is None


def test_the_plan_is_frozen() -> None:
    result = planner.plan(registry(), Observed())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.steps = ()  # type: ignore[misc]


def test_an_existing_child_is_rewritten_not_created() -> None:
    body = registry()
    observed = _converge(body)
    tampered = copy.deepcopy(dict(observed.configmap or {}))
    tampered["data"]["worker.yaml"] = "tampered"
    result = planner.plan(body, observed.with_child("configmap", tampered))
    assert _shape(result) == [("apply", "configmap", "RestoredConfigMap")]
    body["spec"]["worker"] = {"httpPort": 9090}
    result = planner.plan(body, observed)
    assert [s[2] for s in _shape(result)] == ["UpdatedConfigMap", "UpdatedDeployment"]


# -- versions: activated at once, or held for a rollout --------------------------------------


def test_a_policy_change_rewrites_the_file_and_announces_the_activation() -> None:
    body = registry()
    observed = _converge(body)
    body["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.0.0"}
    result = planner.plan(body, observed)
    assert _shape(result) == [
        ("apply", "configmap", "UpdatedConfigMap"),
        ("event", "Normal", "ActivatedVersions"),
    ]
    assert "checkout@1.0.0 (was 1.10.0)" in result.events[0].message
    assert result.published_after == 1


def test_a_new_version_with_a_new_image_is_held_until_the_rollout_ends() -> None:
    body = registry()
    observed = _converge(body)
    body = _new_image_and_version(body)
    result = planner.plan(body, observed)
    assert _shape(result) == [
        ("apply", "configmap", "UpdatedConfigMap"),
        ("apply", "deployment", "UpdatedDeployment"),
        ("event", "Warning", "ReplayCheckSkipped"),  # support.registry skips the check
    ]
    assert result.versions is not None and result.versions.held == ("checkout",)
    assert _policy(result.applies[0], "checkout") == {
        "name": "checkout",
        "policy": "exact",
        "version": "1.10.0",
    }
    status = result.report(observed, NOW).status
    assert status is not None and status["activeVersions"] == "checkout@1.10.0,refund@2.0.0"
    assert _condition(status, "Progressing") == ("True", "HoldingVersions")

    # The Deployment rolls: still held, nothing new to write.
    rolling = observed.with_child("configmap", _stored(result.applies[0].obj))
    rolling = rolling.with_child("deployment", _rolling(_stored(result.applies[1].obj)))
    assert planner.plan(body, rolling).steps == ()
    assert planner.plan(body, rolling).versions.held == ("checkout",)  # type: ignore[union-attr]

    # Rolled out: the new version is activated, and announced.
    done = rolling.with_child("deployment", _rolled_out(dict(rolling.deployment or {})))
    released = planner.plan(body, done)
    assert _shape(released) == [
        ("apply", "configmap", "UpdatedConfigMap"),
        ("event", "Normal", "ActivatedVersions"),
    ]
    assert _policy(released.applies[0], "checkout") == {"name": "checkout", "policy": "latest"}
    assert released.versions is not None and released.versions.held == ()


def test_a_version_the_new_spec_no_longer_registers_moves_with_a_warning() -> None:
    body = registry()
    observed = _converge(body)
    body["spec"]["image"] = "example.invalid/orders:2.0.0"
    body["spec"]["orchestrations"][0]["versions"] = ["1.11.0"]
    result = planner.plan(body, observed)
    assert ("event", "Warning", "ActivatedVersions") in _shape(result)
    assert result.versions is not None and result.versions.unheld == {"checkout": "1.10.0"}


def test_a_first_creation_holds_nothing_even_with_a_new_version() -> None:
    result = planner.plan(_new_image_and_version(registry()), Observed())
    assert result.versions is not None and result.versions.held == ()
    assert result.events == ()  # CreatedConfigMap says it; no ActivatedVersions


# -- the drain pool -----------------------------------------------------------------------------


def test_drain_on_writes_its_pair_after_the_main_pool() -> None:
    body = registry(drain={"enabled": True, "supportedVersions": {"max": "0.9.0"}})
    result = planner.plan(body, Observed())
    assert _shape(result) == [
        ("apply", "configmap", "CreatedConfigMap"),
        ("apply", "deployment", "CreatedDeployment"),
        ("apply", "drain_configmap", "CreatedConfigMap"),
        ("apply", "drain_deployment", "CreatedDeployment"),
    ]
    drain_cm, drain_dep = result.applies[2:]
    assert drain_cm.obj["metadata"]["name"] == drain_dep.obj["metadata"]["name"] == "orders-drain"
    assert _file(drain_cm)["supported_replay_versions"] == {"min": "0.0.0", "max": "0.9.0"}
    assert drain_dep.obj["spec"]["replicas"] == 1
    assert result.drain is True


def test_drain_off_deletes_our_drain_pair_deployment_first() -> None:
    on = registry(drain={"enabled": True})
    observed = _converge(on)
    result = planner.plan(registry(drain={"enabled": False}), observed)
    assert _shape(result) == [
        ("delete", "drain_deployment", "DeletedDeployment"),
        ("delete", "drain_configmap", "DeletedConfigMap"),
    ]
    dep, cm = result.deletes
    assert (dep.kind, dep.namespace, dep.name, dep.uid) == (
        "Deployment",
        "shop",
        "orders-drain",
        "uid-orders-drain",
    )
    assert (cm.kind, cm.name) == ("ConfigMap", "orders-drain")
    assert result.applies == ()


def test_drain_off_leaves_drain_children_that_are_going_or_not_ours() -> None:
    observed = _converge(registry(drain={"enabled": True}))
    going = copy.deepcopy(dict(observed.drain_deployment or {}))
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    theirs = copy.deepcopy(dict(observed.drain_configmap or {}))
    theirs["metadata"]["ownerReferences"] = [{"controller": True, "uid": "someone-else"}]
    observed = observed.with_child("drain_deployment", going)
    observed = observed.with_child("drain_configmap", theirs)
    result = planner.plan(registry(), observed)
    assert result.steps == () and result.refused is None


def test_a_rolling_drain_pool_holds_versions_in_both_files() -> None:
    body = registry(drain={"enabled": True})
    observed = _converge(body)
    body = _new_image_and_version(body)
    first = planner.plan(body, observed)
    pinned = {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    drain_file = next(a for a in first.applies if a.slot == "drain_configmap")
    assert _policy(first.applies[0], "checkout") == _policy(drain_file, "checkout") == pinned
    after = observed
    for step in first.applies:
        stored = _stored(step.obj)
        after = after.with_child(step.slot, stored)
    after = after.with_child("deployment", _rolled_out(dict(after.deployment or {})))
    after = after.with_child("drain_deployment", _rolling(dict(after.drain_deployment or {})))
    result = planner.plan(body, after)
    assert result.versions is not None and result.versions.held == ("checkout",)
    assert result.versions.waiting_for is not None
    assert result.versions.waiting_for.startswith("drain pool: ")
    assert result.steps == ()  # the files written by the first pass already hold


# -- refusing: someone else's objects, unreadable children, an invalid spec -------------------


def _foreign(kind: str, name: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": "shop", "uid": "theirs"}}


@pytest.mark.parametrize(
    ("slot", "kind", "name"),
    [
        ("configmap", "ConfigMap", "orders"),
        ("deployment", "Deployment", "orders"),
        ("drain_configmap", "ConfigMap", "orders-drain"),
        ("drain_deployment", "Deployment", "orders-drain"),
    ],
)
def test_a_foreign_child_refuses_every_write(slot: Any, kind: str, name: str) -> None:
    body = registry(drain={"enabled": True})
    result = planner.plan(body, Observed().with_child(slot, _foreign(kind, name)))
    assert result.steps == ()
    assert result.refused == (
        f"{kind} {name} already exists and is not controlled by this registry; delete it or "
        "rename the registry"
    )
    status = result.report(Observed(), NOW).status
    assert status is not None
    assert _condition(status, "Degraded") == ("True", "ApplyFailed")
    assert "configRevision" not in status  # nothing was published
    assert ("Warning", "ApplyFailed") in [
        (e.type, e.reason) for e in result.report(Observed(), NOW).events
    ]


def test_a_foreign_drain_child_is_no_obstacle_while_the_drain_pool_is_off() -> None:
    observed = Observed().with_child("drain_deployment", _foreign("Deployment", "orders-drain"))
    result = planner.plan(registry(), observed)
    assert result.refused is None
    assert _shape(result) == [
        ("apply", "configmap", "CreatedConfigMap"),
        ("apply", "deployment", "CreatedDeployment"),
    ]


def test_unreadable_children_refuse_every_write() -> None:
    result = planner.plan(registry(), Observed(unreadable="GET configmaps: HTTP 403: forbidden"))
    assert result.steps == ()
    assert result.refused == "GET configmaps: HTTP 403: forbidden"
    status = result.report(Observed(), NOW).status
    assert status is not None and _condition(status, "Degraded") == ("True", "ApplyFailed")


def test_an_invalid_spec_writes_nothing_and_says_so() -> None:
    body = registry()
    body["spec"]["orchestrations"][0]["policy"] = "exact"  # without a version
    observed = _converge(registry())
    result = planner.plan(body, observed)
    assert result.steps == () and result.invalid is not None
    report = result.report(observed, NOW)
    assert report.status is not None
    assert _condition(report.status, "Degraded") == ("True", "InvalidSpec")
    assert report.status["activeVersions"] == "-"
    assert [(e.type, e.reason) for e in report.events] == [("Warning", "InvalidSpec")]


def test_an_invalid_drain_range_is_an_invalid_spec() -> None:
    body = registry(drain={"enabled": True, "supportedVersions": {"min": "2.0.0", "max": "1.0.0"}})
    assert planner.plan(body, Observed()).invalid is not None
    body["spec"]["drain"]["enabled"] = False  # not used, so not checked
    assert planner.plan(body, Observed()).invalid is None


# -- the report: after all steps, or after a failed one ----------------------------------------


def test_the_report_reads_the_deployment_the_apply_returned() -> None:
    body = registry()
    result = planner.plan(body, Observed())
    created = Observed().with_child("deployment", _stored(result.applies[1].obj))
    status = result.report(created, NOW).status
    assert status is not None
    assert _condition(status, "Available") == ("False", "WorkersUnavailable")
    assert _condition(status, "Progressing") == ("True", "RollingOut")
    assert status["configRevision"] == result.config.revision  # type: ignore[union-attr]
    nothing = result.report(Observed(), NOW).status
    assert nothing is not None and _condition(nothing, "Available") == ("False", "Creating")


def test_a_failure_before_the_file_is_written_keeps_the_published_status() -> None:
    body = registry()
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    published = body["status"]["configRevision"]
    body["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.0.0"}
    result = planner.plan(body, observed)
    failed = result.report(observed, NOW, completed=0, failure="HTTP 500").status
    assert failed is not None
    assert failed["configRevision"] == published
    assert failed["activeVersions"] == "checkout@1.10.0,refund@2.0.0"
    assert _condition(failed, "Degraded") == ("True", "ApplyFailed")
    # The file went out, a later step failed: the status reports the new file.
    later = result.report(observed, NOW, completed=2, failure="HTTP 500").status
    assert later is not None and later["configRevision"] != published
    assert later["activeVersions"] == "checkout@1.0.0,refund@2.0.0"


def test_with_nothing_to_write_the_file_counts_as_published_at_once() -> None:
    body = registry()
    observed = _converge(body)
    body["spec"]["image"] = "example.invalid/orders:1.1.0"  # only the Deployment changes
    result = planner.plan(body, observed)
    assert _shape(result) == [
        ("apply", "deployment", "UpdatedDeployment"),
        ("event", "Warning", "ReplayCheckSkipped"),  # support.registry skips the check
    ]
    assert result.published_after == 0
    status = result.report(observed, NOW, completed=0, failure="HTTP 500").status
    assert status is not None and status["configRevision"] == result.config.revision  # type: ignore[union-attr]


def test_condition_flips_become_events_and_a_blocking_one_is_a_warning() -> None:
    body = registry()
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    stalled = copy.deepcopy(dict(observed.deployment or {}))
    stalled["status"]["conditions"] = [
        {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}
    ]
    report = planner.plan(body, observed).report(observed.with_child("deployment", stalled), NOW)
    assert [(e.type, e.reason) for e in report.events] == [("Warning", "RolloutStalled")]
    assert report.events[0].message == "Degraded=True: too slow"
