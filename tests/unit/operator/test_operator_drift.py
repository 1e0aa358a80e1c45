"""Drift: which fields of a child in the cluster no longer hold what the operator applied.

Each case is a hand edit a user makes (`kubectl scale`, `kubectl set image`, `kubectl set env`,
an edited worker file) or a difference that is *not* drift (the apiserver's defaults and
encodings, fields other managers own, replicas an autoscaler owns)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from durox_operator import planner
from durox_operator.planner import Observed
from tests.unit.operator.support import registry

Edit = Callable[[dict[str, Any]], None]


def _planned(body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = body or registry()
    return planner.plan_deployment(body, planner.worker_config(body))


def _worker(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _env(dep: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in _worker(dep)["env"] if e["name"] == name)


def _as_stored(dep: dict[str, Any]) -> dict[str, Any]:
    """`dep` as the apiserver returns it: defaults filled in, other managers' additions,
    empty values dropped, quantities canonical, named lists reordered."""
    out = copy.deepcopy(dep)
    out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "3"
    out["metadata"] |= {"uid": "u", "generation": 4, "resourceVersion": "77"}
    out["spec"]["progressDeadlineSeconds"] = 600
    pod = out["spec"]["template"]["spec"]
    pod |= {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default"}
    pod["volumes"][0]["configMap"]["defaultMode"] = 420
    pod["containers"].append({"name": "istio-proxy", "image": "istio/proxyv2:1.2.3"})
    worker = pod["containers"][0]
    worker["terminationMessagePath"] = "/dev/termination-log"
    worker["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
    worker["env"][1]["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    worker["env"].reverse()
    for env in worker["env"]:
        if env.get("value") == "":
            del env["value"]
    worker["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}
    out["status"] = {"replicas": 2}
    return out


def test_what_the_apiserver_adds_or_re_encodes_is_not_drift() -> None:
    body = registry(
        pod={
            "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
            "env": [{"name": "EMPTY", "value": ""}],
        }
    )
    planned = _planned(body)
    assert planner.drift(planned, _as_stored(planned)) == []
    assert not planner.needs_apply(planned, _as_stored(planned))


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (lambda d: d["spec"].update(replicas=1), ["spec.replicas (was 1)"]),
        (
            lambda d: _worker(d).update(image="evil:6"),
            ["spec.template.spec.containers[worker].image (was evil:6)"],
        ),
        (
            lambda d: _env(d, "DUROX_LOG_FORMAT").update(value="text"),
            ["spec.template.spec.containers[worker].env[DUROX_LOG_FORMAT].value (was text)"],
        ),
        (
            lambda d: _worker(d)["env"].remove(_env(d, "DUROX_LOG_FORMAT")),
            ["spec.template.spec.containers[worker].env[DUROX_LOG_FORMAT] (was unset)"],
        ),
        (
            lambda d: _worker(d).update(args=["worker", "--app", "x:y"]),
            ["spec.template.spec.containers[worker].args (was ['worker', '--app', 'x:y'])"],
        ),
        (
            lambda d: d["spec"]["template"]["spec"].update(automountServiceAccountToken=True),
            ["spec.template.spec.automountServiceAccountToken (was True)"],
        ),
        (
            lambda d: d["metadata"]["labels"].pop("durox.dev/registry"),
            ["metadata.labels.durox.dev/registry (was unset)"],
        ),
    ],
    ids=["scale", "set-image", "set-env", "env-removed", "args", "pod-field", "label"],
)
def test_hand_edits_of_the_deployment_are_drift(edit: Edit, found: list[str]) -> None:
    planned = _planned()
    observed = _as_stored(planned)
    edit(observed)
    assert planner.drift(planned, observed) == found
    assert planner.needs_apply(planned, observed)
    assert not planner.planned_anew(planned, observed)  # the plan did not change


def test_replicas_an_autoscaler_owns_are_not_drift() -> None:
    body = registry()
    del body["spec"]["replicas"]
    planned = _planned(body)
    assert "replicas" not in planned["spec"]  # left out of the apply, so no manager conflict
    observed = _as_stored(planned)
    observed["spec"]["replicas"] = 7
    assert planner.drift(planned, observed) == []


def test_an_edited_worker_file_is_drift_and_an_added_key_is_not() -> None:
    body = registry()
    planned = planner.plan_configmap(body, planner.worker_config(body))
    observed = copy.deepcopy(planned)
    observed["data"]["notes.txt"] = "someone else's key"
    assert planner.drift(planned, observed) == []
    observed["data"]["worker.yaml"] = "pool: tampered\n"
    assert planner.drift(planned, observed) == ["data.worker.yaml (was pool: tampered\n)"]


def _converged(body: dict[str, Any]) -> Observed:
    observed = Observed()
    for step in planner.plan(body, observed).applies:
        obj = dict(step.obj)
        observed = observed.with_child(
            step.slot, _as_stored(obj) if obj["kind"] == "Deployment" else obj
        )
    return observed


def test_the_plan_restores_drift_with_an_event_naming_each_field() -> None:
    body = registry()
    observed = _converged(body)
    assert planner.plan(body, observed).steps == ()
    dep = copy.deepcopy(dict(observed.deployment or {}))
    dep["spec"]["replicas"] = 1
    _worker(dep)["image"] = "evil:6"
    plan = planner.plan(body, observed.with_child("deployment", dep))
    [apply] = plan.applies
    assert apply.slot == "deployment"
    assert apply.obj == _planned(body)  # the whole planned object, applied again
    assert apply.event == planner.Event(
        "Normal",
        "RestoredDeployment",
        "restored Deployment orders: spec.template.spec.containers[worker].image (was evil:6), "
        "spec.replicas (was 1)",
    )


def test_a_changed_plan_is_an_update_not_a_restore() -> None:
    body = registry()
    observed = _converged(body)
    body["spec"]["image"] = "example.invalid/orders:2.0.0"
    [apply] = planner.plan(body, observed).applies
    assert apply.event.reason == "UpdatedDeployment"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("1024Mi", Decimal(2**30)),
        ("1e3", Decimal(1000)),
        ("1k", Decimal(1000)),
        (2, Decimal(2)),
        ("25%", None),
        ("1.0.0", None),
        (True, None),
    ],
)
def test_quantities_are_compared_by_value(text: Any, value: Decimal | None) -> None:
    assert planner.quantity(text) == value
