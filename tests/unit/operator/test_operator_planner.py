"""The planner's decisions, checked without kopf, a client or a cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from operator_fixtures import deployment, registry

from durox.worker_config import WorkerConfig
from durox_operator import planner
from durox_operator.model import HASH_ANNOTATION, Condition

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
    assert planner.active_versions({"orchestrations": []}) == "-"


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


def test_unset_replicas_are_left_to_an_autoscaler() -> None:
    body = registry()
    del body["spec"]["replicas"]
    assert "replicas" not in planner.plan_deployment(body, _config(body))["spec"]


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
    assert times == {"Available": LATER, "Progressing": LATER, "Degraded": NOW}
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
