"""The planner's decisions, checked without kopf, a client or a cluster."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest
import yaml

from durox.worker_config import WorkerConfig
from durox_operator import planner
from durox_operator.model import HASH_ANNOTATION, Condition
from tests.unit.operator.support import deployment, registry

NOW = "2026-01-02T03:04:05Z"
LATER = "2026-01-02T04:00:00Z"


def _config(body: dict[str, Any]) -> WorkerConfig:
    return planner.worker_config(body)


# -- worker configuration -------------------------------------------------------------------


def test_worker_config_carries_pool_policies_and_replay_range() -> None:
    config = _config(registry())
    assert config.pool == "orders"
    assert [(p.name, p.policy, p.version) for p in config.orchestrations] == [
        ("checkout", "latest", None),
        ("refund", "exact", "2.0.0"),
    ]
    assert config.supported_replay_versions is not None
    assert (config.supported_replay_versions.min, config.supported_replay_versions.max) == (
        "0.1.0",
        "0.3.0",
    )
    assert config.http_port == 8080


def test_explicit_pool_and_concurrency_reach_the_config() -> None:
    config = _config(registry(pool="blue", worker={"orchestrationConcurrency": 7}))
    assert config.pool == "blue"
    assert config.orchestration_concurrency == 7


def test_configmap_file_round_trips_through_the_worker_model() -> None:
    body = registry()
    config = _config(body)
    cm = planner.plan_configmap(body, config)
    parsed = WorkerConfig.model_validate(yaml.safe_load(cm["data"]["worker.yaml"]))
    assert parsed == config


def test_revision_is_stable_and_follows_the_content() -> None:
    assert _config(registry()).revision == _config(registry()).revision
    pinned = registry()
    pinned["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.0.0"}
    assert _config(pinned).revision != _config(registry()).revision
    # the image is not part of the worker configuration
    assert _config(registry(image="other:2")).revision == _config(registry()).revision


def test_spec_the_worker_model_refuses_is_invalid() -> None:
    body = registry()
    body["spec"]["orchestrations"][0] |= {"policy": "exact"}  # no version
    with pytest.raises(planner.InvalidSpec, match="needs a version"):
        planner.worker_config(body)


def test_active_versions_compare_as_semver_not_text() -> None:
    assert planner.active_versions(registry()["spec"]) == "checkout@1.10.0,refund@2.0.0"
    assert planner.active_versions(cast(Any, {"orchestrations": []})) == "-"


# -- children -------------------------------------------------------------------------------


def test_children_are_owned_and_labelled() -> None:
    body = registry()
    config = _config(body)
    for child in (planner.plan_configmap(body, config), planner.plan_deployment(body, config)):
        meta = child["metadata"]
        assert meta["name"] == "orders"
        assert meta["namespace"] == "shop"
        [owner] = meta["ownerReferences"]
        assert owner == {
            "apiVersion": "durox.dev/v1alpha1",
            "kind": "OrchestrationRegistry",
            "name": "orders",
            "uid": "1111-2222",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "durox-operator"
        assert meta["labels"]["app.kubernetes.io/instance"] == "orders"
        assert meta["labels"]["durox.dev/registry"] == "orders"


def test_deployment_runs_the_worker_with_secure_defaults_and_probes() -> None:
    body = registry()
    dep = planner.plan_deployment(body, _config(body))
    pod = dep["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "example.invalid/orders:1.0.0"
    assert container["command"] == ["durox"]
    assert container["args"] == [
        "worker",
        "--app",
        "orders.app:app",
        "--config",
        "/etc/durox/worker.yaml",
    ]
    assert not any("STORE" in arg for arg in container["args"])  # the secret stays in env
    env = {e["name"]: e for e in container["env"]}
    assert env["DUROX_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "orders-store",
        "key": "url",
    }
    assert env["DUROX_NODE_ID"]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in config_mount  # a subPath mount would never see the swapped file
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "durox-worker",
        "app.kubernetes.io/instance": "orders",
    }


def test_pod_settings_reach_the_pod() -> None:
    pod_settings = {
        "resources": {"requests": {"cpu": "100m"}},
        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
        "nodeSelector": {"pool": "workers"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "serviceAccountName": "orders-worker",
        "annotations": {"example.com/team": "shop"},
    }
    body = registry(pod=pod_settings, imagePullPolicy="Always")
    dep = planner.plan_deployment(body, _config(body))
    template = dep["spec"]["template"]
    pod = template["spec"]
    [container] = pod["containers"]
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    assert {"name": "LOG_LEVEL", "value": "debug"} in container["env"]
    assert container["imagePullPolicy"] == "Always"
    assert pod["nodeSelector"] == {"pool": "workers"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["serviceAccountName"] == "orders-worker"
    assert template["metadata"]["annotations"]["example.com/team"] == "shop"


def test_workers_prefer_to_spread_over_nodes_by_default() -> None:
    body = registry()
    pod = planner.plan_deployment(body, _config(body))["spec"]["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]
    # preferred only: a pool larger than the cluster still fits
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = planner.plan_deployment(body, _config(body))["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": selector}
    drain = planner.plan_deployment(body, _config(body), drain=True)
    [drain_term] = drain["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert drain_term["podAffinityTerm"]["labelSelector"] == {
        "matchLabels": drain["spec"]["selector"]["matchLabels"]
    }


def test_the_users_affinity_replaces_the_default() -> None:
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]}]}]}}}  # fmt: skip
    body = registry(pod={"affinity": mine})
    assert (
        planner.plan_deployment(body, _config(body))["spec"]["template"]["spec"]["affinity"] == mine
    )
    body = registry(pod={"affinity": {}})
    assert (
        "affinity" not in planner.plan_deployment(body, _config(body))["spec"]["template"]["spec"]
    )


def test_unset_replicas_are_left_to_an_autoscaler() -> None:
    body = registry()
    del body["spec"]["replicas"]
    assert "replicas" not in planner.plan_deployment(body, _config(body))["spec"]


def test_a_count_the_plan_stops_writing_is_handed_over_at_its_value() -> None:
    body = registry()
    before = planner.plan_deployment(body, _config(body))
    assert planner.replicas_released(before, before) is None  # still ours
    del body["spec"]["replicas"]
    after = planner.plan_deployment(body, _config(body))
    observed = copy.deepcopy(before)
    observed["spec"]["replicas"] = 7  # scaled since, by whoever
    released = planner.replicas_released(after, observed)
    assert released == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"replicas": 7},
    }
    configmap = planner.plan_configmap(body, _config(body))
    assert planner.replicas_released(configmap, configmap) is None


def test_a_policy_change_touches_the_configmap_only() -> None:
    before = registry()
    after = registry()
    after["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.9.0"}
    after["spec"]["replay"]["supportedVersions"]["max"] = "0.4.0"
    cm_before = planner.plan_configmap(before, _config(before))
    cm_after = planner.plan_configmap(after, _config(after))
    assert cm_before["data"] != cm_after["data"]
    assert planner.needs_apply(cm_after, cm_before)
    dep_before = planner.plan_deployment(before, _config(before))
    dep_after = planner.plan_deployment(after, _config(after))
    assert dep_after == dep_before
    assert not planner.needs_apply(dep_after, dep_before)


@pytest.mark.parametrize(
    "change",
    [
        {"pool": "blue"},
        {"worker": {"orchestrationConcurrency": 9}},
        {"worker": {"activityConcurrency": 9}},
        {"worker": {"httpPort": 9090}},
    ],
    ids=["pool", "orchestration-concurrency", "activity-concurrency", "port"],
)
def test_a_start_up_setting_changes_the_file_and_rolls_the_pods(change: dict[str, Any]) -> None:
    # the worker reads these only when it starts, so a live reload cannot apply them
    before, after = registry(), registry(**change)
    cm_before = planner.plan_configmap(before, _config(before))
    assert planner.needs_apply(planner.plan_configmap(after, _config(after)), cm_before)
    template_before = planner.plan_deployment(before, _config(before))["spec"]["template"]
    template_after = planner.plan_deployment(after, _config(after))["spec"]["template"]
    assert (
        template_before["metadata"]["annotations"]["durox.dev/startup-config"]
        != template_after["metadata"]["annotations"]["durox.dev/startup-config"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"image": "example.invalid/orders:1.1.0"},
        {"app": "orders.v2:app"},
        {"pod": {"nodeSelector": {"pool": "big"}}},
    ],
    ids=["image", "app", "pod"],
)
def test_a_pod_change_rolls_the_deployment_only(change: dict[str, Any]) -> None:
    before, after = registry(), registry(**change)
    dep_before = planner.plan_deployment(before, _config(before))
    dep_after = planner.plan_deployment(after, _config(after))
    assert dep_before["spec"]["template"] != dep_after["spec"]["template"]
    assert planner.needs_apply(dep_after, dep_before)
    cm_before = planner.plan_configmap(before, _config(before))
    assert not planner.needs_apply(planner.plan_configmap(after, _config(after)), cm_before)


def test_planning_is_deterministic_and_hash_ignores_server_fields() -> None:
    body = registry()
    desired = planner.plan_deployment(body, _config(body))
    assert desired == planner.plan_deployment(copy.deepcopy(body), _config(body))
    observed = copy.deepcopy(desired)
    observed["metadata"] |= {"resourceVersion": "42", "generation": 5}
    observed["status"] = {"replicas": 2}
    assert not planner.needs_apply(desired, observed)
    assert planner.needs_apply(desired, None)
    del observed["metadata"]["annotations"][HASH_ANNOTATION]
    assert planner.needs_apply(desired, observed)


def test_hand_edited_worker_file_is_drift() -> None:
    body = registry()
    desired = planner.plan_configmap(body, _config(body))
    observed = copy.deepcopy(desired)
    assert not planner.needs_apply(desired, observed)
    observed["data"]["worker.yaml"] = "pool: hacked\n"
    assert planner.needs_apply(desired, observed)


# -- status ---------------------------------------------------------------------------------


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_before_the_deployment_exists() -> None:
    body = registry()
    status = planner.plan_status(body, None, NOW, config=_config(body))
    assert _conditions(status) == {
        "Ready": ("False", "Creating"),
        "Reconciling": ("True", "Creating"),
        "Stalled": ("False", "AsExpected"),
        "Available": ("False", "Creating"),
        "Progressing": ("True", "Creating"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["workers"] == "0/2"


def test_status_of_a_finished_rollout() -> None:
    body = registry()
    status = planner.plan_status(body, deployment(), NOW, config=_config(body))
    assert _conditions(status) == {
        "Ready": ("True", "WorkersAvailable"),
        "Reconciling": ("False", "RolloutComplete"),
        "Stalled": ("False", "AsExpected"),
        "Available": ("True", "WorkersAvailable"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["workers"] == "2/2"
    assert status["activeVersions"] == "checkout@1.10.0,refund@2.0.0"
    assert status["configRevision"] == _config(body).revision


@pytest.mark.parametrize(
    "observed",
    [
        deployment(generation=2, observed=1),  # the controller has not seen the new template
        deployment(updated=1, total=3),  # half way: old pods still running
        deployment(available=1, ready=1, updated=2),  # new pods not ready yet
    ],
    ids=["unobserved", "surging", "not-ready"],
)
def test_status_during_a_rollout(observed: dict[str, Any]) -> None:
    status = planner.plan_status(registry(), observed, NOW)
    assert _conditions(status)["Progressing"] == ("True", "RollingOut")


def test_stalled_rollout_is_degraded() -> None:
    stalled = deployment(
        available=1,
        updated=1,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet orders-abc has timed out progressing.",
            }
        ],
    )
    status = planner.plan_status(registry(), stalled, NOW)
    assert _conditions(status)["Degraded"] == ("True", "RolloutStalled")
    assert _conditions(status)["Available"] == ("False", "WorkersUnavailable")


def test_invalid_and_apply_failures_are_degraded() -> None:
    status = planner.plan_status(registry(), None, NOW, error=planner.InvalidSpec("bad"))
    assert _conditions(status)["Degraded"] == ("True", "InvalidSpec")
    assert status["activeVersions"] == "-"
    status = planner.plan_status(registry(), deployment(), NOW, apply_error="HTTP 403")
    assert _conditions(status)["Degraded"] == ("True", "ApplyFailed")


def test_unchanged_situation_plans_unchanged_status() -> None:
    body = registry()
    first = planner.plan_status(body, deployment(), NOW, config=_config(body))
    body["status"] = first
    second = planner.plan_status(body, deployment(), LATER, config=_config(body))
    assert second == first  # transition times kept, so nothing to write
    assert not planner.status_changed(body, second)
    assert planner.condition_events(body, second) == []


def test_transition_time_moves_only_when_status_flips() -> None:
    body = registry()
    body["status"] = planner.plan_status(body, deployment(available=0, ready=0), NOW)
    after = planner.plan_status(body, deployment(), LATER)
    times = {c["type"]: c["lastTransitionTime"] for c in after["conditions"]}
    assert times == {
        "Ready": LATER,
        "Reconciling": LATER,
        "Stalled": NOW,
        "Available": LATER,
        "Progressing": LATER,
        "Degraded": NOW,
    }
    assert planner.status_changed(body, after)
    flipped = planner.condition_events(body, after)
    assert {(c.type, c.status) for c in flipped} == {
        ("Available", "True"),
        ("Progressing", "False"),
    }


def test_replicas_left_to_an_autoscaler_are_read_from_the_deployment() -> None:
    body = registry()
    del body["spec"]["replicas"]
    status = planner.plan_status(body, deployment(replicas=5, updated=5, ready=5, available=5), NOW)
    assert status["replicas"] == 5
    assert status["workers"] == "5/5"


def test_condition_reasons_come_from_a_fixed_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        Condition("Available", "True", "AllGood", "fine")


def test_control_is_judged_by_the_owner_uid() -> None:
    body = registry()
    child = planner.plan_configmap(body, _config(body))
    assert planner.controlled_by(child, body)
    other = registry()
    other["metadata"]["uid"] = "someone-else"
    assert not planner.controlled_by(child, other)
    assert not planner.controlled_by({"metadata": {}}, body)


def test_user_env_replaces_defaults_by_name_without_duplicates() -> None:
    body = registry(pod={"env": [{"name": "DUROX_LOG_FORMAT", "value": "text"}, {"name": "A"}]})
    [container] = planner.plan_deployment(body, _config(body))["spec"]["template"]["spec"][
        "containers"
    ]
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names))
    assert {"name": "DUROX_LOG_FORMAT", "value": "text"} in container["env"]
    assert names[-1] == "A"


# -- holding versions during a rollout -------------------------------------------------------

NEW_IMAGE = "example.invalid/orders:1.1.0"


def _observed(planned: dict[str, Any], **status: Any) -> dict[str, Any]:
    """The cluster's copy of a planned Deployment, with the status `deployment(...)` gives."""
    live = deployment(**status)
    observed = copy.deepcopy(planned)
    observed["metadata"]["generation"] = live["metadata"]["generation"]
    observed["status"] = live["status"]
    return observed


def _published(body: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap an earlier pass published for `body`, taken at its word."""
    return planner.plan_configmap(body, _config(body))


def _upgrade(**changes: Any) -> dict[str, Any]:
    """A registry whose image changes and whose checkout gains 1.11.0 (so `latest` moves)."""
    body = registry(image=NEW_IMAGE, **changes)
    body["spec"]["orchestrations"][0]["versions"].append("1.11.0")
    return body


def _plan(
    body: dict[str, Any], configmap: dict[str, Any] | None, observed: dict[str, Any] | None
) -> tuple[planner.Versions, dict[str, Any], dict[str, Any]]:
    """What one reconcile pass plans: the versions, the ConfigMap and the Deployment."""
    dep = planner.plan_deployment(body, _config(body))
    versions = planner.plan_versions(
        body["spec"],
        planner.published_versions(configmap),
        planner.rollout_pending(body["spec"], dep, observed),
    )
    return versions, planner.plan_configmap(body, _config_with(body, versions), versions), dep


def _config_with(body: dict[str, Any], versions: planner.Versions) -> WorkerConfig:
    return planner.worker_config(body, versions)


def _policies(cm: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    parsed = WorkerConfig.model_validate(yaml.safe_load(cm["data"]["worker.yaml"]))
    return {p.name: (p.policy, p.version) for p in parsed.orchestrations}


def test_configmap_records_what_it_activates() -> None:
    cm = _published(registry())
    assert cm["metadata"]["annotations"]["durox.dev/active-versions"] == (
        "checkout@1.10.0,refund@2.0.0"
    )
    assert planner.published_versions(cm) == {"checkout": "1.10.0", "refund": "2.0.0"}
    assert planner.published_versions(None) is None
    assert planner.published_versions({"metadata": {}}) is None  # written before it was recorded
    assert planner.parse_versions(planner.format_versions({})) == {}
    assert planner.parse_versions("a@1.0.0, junk ,b@2.0.0") == {"a": "1.0.0", "b": "2.0.0"}


def test_image_and_policy_change_together_hold_the_old_version() -> None:
    old = registry()
    observed = _observed(planner.plan_deployment(old, _config(old)))  # rolled out
    new = _upgrade()
    versions, cm, dep = _plan(new, _published(old), observed)
    assert versions.held == ("checkout",)
    assert versions.active == {"checkout": "1.10.0", "refund": "2.0.0"}
    assert versions.desired == {"checkout": "1.11.0", "refund": "2.0.0"}
    assert _policies(cm) == {"checkout": ("exact", "1.10.0"), "refund": ("exact", "2.0.0")}
    assert planner.published_versions(cm) == {"checkout": "1.10.0", "refund": "2.0.0"}
    assert planner.needs_apply(dep, observed)  # the new template rolls meanwhile
    assert versions.waiting_for == "the pod template is changing"

    status = planner.plan_status(new, observed, NOW, config=_config(new), versions=versions)
    assert _conditions(status)["Progressing"] == ("True", "HoldingVersions")
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Progressing")
    assert "checkout@1.10.0 (wants 1.11.0)" in message
    assert "pod template" in message
    assert status["activeVersions"] == "checkout@1.10.0,refund@2.0.0"
    assert status["versions"] == [
        {"name": "checkout", "active": "1.10.0", "desired": "1.11.0"},
        {"name": "refund", "active": "2.0.0", "desired": "2.0.0"},
    ]


def test_a_new_exact_version_is_held_too() -> None:
    old = registry()
    new = registry(image=NEW_IMAGE)
    new["spec"]["orchestrations"][1] = {
        "name": "refund", "versions": ["2.0.0", "2.1.0"], "policy": "exact", "version": "2.1.0",
    }  # fmt: skip
    versions, cm, _ = _plan(
        new, _published(old), _observed(planner.plan_deployment(old, _config(old)))
    )
    assert versions.held == ("refund",)
    assert _policies(cm)["refund"] == ("exact", "2.0.0")
    assert _policies(cm)["checkout"] == ("latest", None)  # unchanged NAMEs keep their policy


def test_a_version_the_new_spec_drops_cannot_be_held() -> None:
    old = registry()
    new = registry(image=NEW_IMAGE)
    new["spec"]["orchestrations"][0]["versions"] = ["3.0.0"]
    versions, cm, _ = _plan(
        new, _published(old), _observed(planner.plan_deployment(old, _config(old)))
    )
    assert versions.held == ()
    assert versions.unheld == {"checkout": "1.10.0"}
    assert versions.active["checkout"] == "3.0.0"
    assert _policies(cm)["checkout"] == ("latest", None)
    status = planner.plan_status(
        new, deployment(generation=2, observed=1), NOW, config=_config(new), versions=versions
    )
    assert _conditions(status)["Progressing"] == ("True", "RollingOut")
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Progressing")
    assert "cannot hold checkout@3.0.0 (the spec no longer registers 1.10.0)" in message
    event = planner.activation_event(planner.published_versions(_published(old)), versions)
    assert event is not None and event[0] == "Warning"
    assert "no longer registers checkout@1.10.0, so it could not be held" in event[1]


def test_a_new_name_is_not_held() -> None:
    old = registry()
    new = _upgrade()
    new["spec"]["orchestrations"].append({"name": "ship", "versions": ["1.0.0"]})
    versions, cm, _ = _plan(
        new, _published(old), _observed(planner.plan_deployment(old, _config(old)))
    )
    assert versions.held == ("checkout",)
    assert versions.active["ship"] == "1.0.0"
    assert _policies(cm)["ship"] == ("latest", None)


def test_first_creation_activates_the_desired_versions() -> None:
    new = _upgrade()
    versions, cm, _ = _plan(new, None, None)
    assert versions.held == ()
    assert versions.active == versions.desired
    assert cm == planner.plan_configmap(new, _config(new))
    # a ConfigMap left behind without its Deployment: no old worker serves, nothing to hold
    versions, _, _ = _plan(new, _published(registry()), None)
    assert versions.held == ()


def test_a_configmap_without_the_record_holds_nothing() -> None:
    old = registry()
    legacy = _published(old)
    del legacy["metadata"]["annotations"]["durox.dev/active-versions"]
    versions, _, _ = _plan(
        _upgrade(), legacy, _observed(planner.plan_deployment(old, _config(old)))
    )
    assert versions.held == ()


def test_a_policy_only_change_activates_at_once_without_new_pods() -> None:
    old = registry()
    observed = _observed(planner.plan_deployment(old, _config(old)))
    new = registry()
    new["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.9.0"}
    versions, cm, dep = _plan(new, _published(old), observed)
    assert versions.held == ()
    assert versions.active["checkout"] == "1.9.0"
    assert _policies(cm)["checkout"] == ("exact", "1.9.0")
    assert not planner.needs_apply(dep, observed)
    assert planner.activation_event(planner.published_versions(_published(old)), versions) == (
        "Normal",
        "new instances now start on checkout@1.9.0 (was 1.10.0)",
    )


@pytest.mark.parametrize(
    "status",
    [
        {"generation": 2, "observed": 1},
        {"updated": 1, "total": 3},
        {"available": 1, "ready": 1},
        {"updated": 1},
    ],
    ids=["unobserved", "surging", "not-available", "not-updated"],
)
def test_an_incomplete_rollout_keeps_holding(status: dict[str, Any]) -> None:
    old, new = registry(), _upgrade()
    held_cm = _plan(new, _published(old), _observed(planner.plan_deployment(old, _config(old))))[1]
    # the new template is applied; the Deployment is still rolling
    observed = _observed(planner.plan_deployment(new, _config(new)), **status)
    versions, cm, _ = _plan(new, held_cm, observed)
    assert versions.held == ("checkout",)
    assert versions.waiting_for is not None and versions.waiting_for.startswith("rollout under way")
    assert not planner.needs_apply(cm, held_cm)  # nothing to write while it waits


def test_terminating_workers_of_the_old_template_keep_holding() -> None:
    """The Deployment's `replicas` leaves out terminating pods, whose workers still run the old
    image (until SIGTERM, then through their grace period): found by the real-pod e2e test."""
    old, new = registry(), _upgrade()
    held_cm = _plan(new, _published(old), _observed(planner.plan_deployment(old, _config(old))))[1]
    observed = _observed(planner.plan_deployment(new, _config(new)))
    observed["status"]["terminatingReplicas"] = 1
    versions, cm, _ = _plan(new, held_cm, observed)
    assert versions.held == ("checkout",)
    assert (
        versions.waiting_for == "rollout under way: 2 of 2 workers updated, 2 ready, 1 terminating"
    )
    assert not planner.needs_apply(cm, held_cm)


def test_a_complete_rollout_releases_held_versions() -> None:
    old, new = registry(), _upgrade()
    held_cm = _plan(new, _published(old), _observed(planner.plan_deployment(old, _config(old))))[1]
    observed = _observed(planner.plan_deployment(new, _config(new)))  # rolled out
    versions, cm, _ = _plan(new, held_cm, observed)
    assert versions.held == ()
    assert versions.active == versions.desired
    assert _policies(cm)["checkout"] == ("latest", None)
    assert planner.needs_apply(cm, held_cm)
    event = planner.activation_event(planner.published_versions(held_cm), versions)
    assert event == ("Normal", "new instances now start on checkout@1.11.0 (was 1.10.0)")
    status = planner.plan_status(new, observed, NOW, config=_config(new), versions=versions)
    assert _conditions(status)["Progressing"] == ("False", "RolloutComplete")
    assert status["activeVersions"] == "checkout@1.11.0,refund@2.0.0"


def test_holding_never_touches_the_pod_template() -> None:
    old, new = registry(), _upgrade()
    versions, _, dep = _plan(
        new, _published(old), _observed(planner.plan_deployment(old, _config(old)))
    )
    assert versions.held
    held_config = planner.worker_config(new, versions)
    assert held_config.revision != _config(new).revision
    assert planner.plan_deployment(new, held_config) == dep
    assert planner.startup_digest(held_config) == planner.startup_digest(_config(new))


def test_planning_a_hold_twice_gives_byte_identical_children() -> None:
    old, new = registry(), _upgrade()
    observed = _observed(planner.plan_deployment(old, _config(old)))
    first = _plan(new, _published(old), observed)
    second = _plan(copy.deepcopy(new), _published(copy.deepcopy(old)), copy.deepcopy(observed))
    assert first[0] == second[0]
    for a, b in zip(first[1:], second[1:], strict=True):
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    # and holding again from the held ConfigMap plans that same ConfigMap
    again = _plan(new, first[1], observed)
    assert json.dumps(again[1], sort_keys=True) == json.dumps(first[1], sort_keys=True)


def test_activation_events_only_for_changes_after_the_first_publication() -> None:
    def taken(**desired: str) -> planner.Versions:
        return planner.Versions(desired=desired, active=desired)

    assert planner.activation_event(None, taken(a="1.0.0")) is None
    assert planner.activation_event({"a": "1.0.0"}, taken(a="1.0.0")) is None
    assert planner.activation_event({}, taken(a="1.0.0")) == (
        "Normal",
        "new instances now start on a@1.0.0 (new)",
    )


# -- the drain pool -------------------------------------------------------------------------


def _drained(**drain: Any) -> dict[str, Any]:
    return registry(drain={"enabled": True, **drain})


def test_drain_file_widens_the_replay_range_and_keeps_the_policies() -> None:
    body = _drained(supportedVersions={"min": "0.0.1", "max": "0.9.0"})
    main, drain = _config(body), planner.worker_config(body, drain=True)
    assert drain.supported_replay_versions is not None
    assert (drain.supported_replay_versions.min, drain.supported_replay_versions.max) == (
        "0.0.1",
        "0.9.0",
    )
    assert drain.drain is False
    assert drain.orchestrations == main.orchestrations
    assert drain.pool == main.pool
    assert drain.revision != main.revision
    assert (
        main.supported_replay_versions is not None and main.supported_replay_versions.max == "0.3.0"
    )


def test_drain_without_a_range_is_drain_mode() -> None:
    drain = planner.worker_config(_drained(), drain=True)
    assert drain.drain is True
    assert drain.supported_replay_versions is None
    cm = planner.plan_configmap(_drained(), drain, drain=True)
    assert yaml.safe_load(cm["data"]["worker.yaml"])["drain"] is True


def test_drain_children_are_named_labelled_and_selected_apart() -> None:
    body = _drained(replicas=3)
    config = planner.worker_config(body, drain=True)
    cm = planner.plan_configmap(body, config, drain=True)
    dep = planner.plan_deployment(body, config, drain=True)
    main = planner.plan_deployment(body, _config(body))
    for child in (cm, dep):
        meta = child["metadata"]
        assert meta["name"] == "orders-drain"
        assert meta["labels"]["app.kubernetes.io/component"] == "drain-worker"
        assert meta["labels"]["app.kubernetes.io/instance"] == "orders-drain"
        assert meta["labels"]["durox.dev/registry"] == "orders"  # its events reach the registry
        assert meta["ownerReferences"] == main["metadata"]["ownerReferences"]
    selector, main_selector = (
        dep["spec"]["selector"]["matchLabels"],
        main["spec"]["selector"]["matchLabels"],
    )
    assert selector["app.kubernetes.io/instance"] != main_selector["app.kubernetes.io/instance"]
    # neither selector matches the other pool's pods
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    main_pod_labels = main["spec"]["template"]["metadata"]["labels"]
    assert not main_selector.items() <= pod_labels.items()
    assert not selector.items() <= main_pod_labels.items()
    assert dep["spec"]["replicas"] == 3
    pod = dep["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": "orders-drain"}} in pod["volumes"]
    assert pod["containers"] == main["spec"]["template"]["spec"]["containers"]
    assert planner.plan_deployment(_drained(), config, drain=True)["spec"]["replicas"] == 1


def test_the_longest_name_leaves_room_for_the_drain_suffix() -> None:
    body = _drained()
    body["metadata"]["name"] = "r" * 52
    name = planner.child_name(body, drain=True)
    assert len(name) == 58
    assert len(planner.labels(body, drain=True)["app.kubernetes.io/instance"]) <= 63


def _drain_observed(body: dict[str, Any], **status: Any) -> dict[str, Any]:
    """The drain Deployment planned for `body`, rolled out with one worker unless told."""
    dep = planner.plan_deployment(body, planner.worker_config(body, drain=True), drain=True)
    counts = {"replicas": 1, "updated": 1, "ready": 1, "available": 1} | status
    return _observed(dep, **counts)


def test_drain_status_and_conditions() -> None:
    body = _drained()
    main = deployment()
    status = planner.plan_status(body, main, NOW, drain=_drain_observed(body))
    assert status["drain"] == {"enabled": True, "workers": "1/1"}
    assert _conditions(status)["Progressing"] == ("False", "RolloutComplete")

    status = planner.plan_status(body, main, NOW, drain=None)
    assert _conditions(status)["Progressing"] == ("True", "RollingOut")
    assert status["drain"] == {"enabled": True, "workers": "0/1"}

    rolling = _drain_observed(body, updated=0, ready=0, available=0)
    status = planner.plan_status(body, main, NOW, drain=rolling)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "RollingOut",
        "drain pool: 0 of 1 workers updated, 0 ready",  # one pod exists, none is Ready
    )
    assert _conditions(status)["Available"] == ("True", "WorkersAvailable")  # the main pool's

    stalled = _drain_observed(
        body,
        available=0,
        conditions=[
            {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "timed out"}
        ],
    )
    status = planner.plan_status(body, main, NOW, drain=stalled)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["reason"], degraded["message"]) == ("RolloutStalled", "drain pool: timed out")

    status = planner.plan_status(registry(), main, NOW)
    assert status["drain"] == {"enabled": False, "workers": "0/0"}


def test_a_rolling_drain_pool_holds_versions_too() -> None:
    old = _drained()
    new = _upgrade(drain={"enabled": True})
    desired_drain = planner.plan_deployment(new, planner.worker_config(new, drain=True), drain=True)
    assert planner.rollout_pending(
        new["spec"], desired_drain, _drain_observed(old), drain=True
    ) == ("drain pool: the pod template is changing")
    assert (
        planner.rollout_pending(new["spec"], desired_drain, _drain_observed(new), drain=True)
        is None
    )
    assert planner.rollout_pending(new["spec"], desired_drain, None, drain=True) is None
    waiting = _drain_observed(new, updated=0)
    assert planner.rollout_pending(new["spec"], desired_drain, waiting, drain=True) == (
        "drain pool: rollout under way: 0 of 1 workers updated, 1 ready"
    )
