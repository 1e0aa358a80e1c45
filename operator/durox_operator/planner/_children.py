"""The children a registry plans (worker ConfigMap and Deployment), and when to apply them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from durox.worker_config import WorkerConfig
from durox_operator.model import (
    ACTIVE_ANNOTATION,
    CONFIG_DIR,
    CONFIG_FILE,
    HASH_ANNOTATION,
    STARTUP_ANNOTATION,
    TEMPLATE_ANNOTATION,
    Obj,
)
from durox_operator.planner._config import render_worker_config, startup_digest
from durox_operator.planner._drift import drift
from durox_operator.planner._names import (
    CONTAINER,
    RUN_AS_USER,
    child_name,
    content_hash,
    labels,
    owner_reference,
    selector_labels,
)
from durox_operator.planner._spec import drain_replicas, paused, pod_of, secret_key, spec_of
from durox_operator.planner._versions import Versions, desired_versions, format_versions


def _with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """Stamp an object with the digest of its own planned content."""
    obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = content_hash(obj)
    return obj


def plan_configmap(
    registry: Obj, config: WorkerConfig, versions: Versions | None = None, drain: bool = False
) -> dict[str, Any]:
    """The worker file, annotated with what it activates (the spec's versions unless held)."""
    active = desired_versions(spec_of(registry)) if versions is None else versions.active
    return _with_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": child_name(registry, drain),
                "namespace": registry["metadata"]["namespace"],
                "labels": labels(registry, drain),
                "annotations": {ACTIVE_ANNOTATION: format_versions(active)},
                "ownerReferences": [owner_reference(registry)],
            },
            "data": {CONFIG_FILE: render_worker_config(config)},
        }
    )


def _container(registry: Obj, config: WorkerConfig) -> dict[str, Any]:
    spec = spec_of(registry)
    pod = pod_of(spec)
    port = config.http_port

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 2,
        }

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec["image"],
        "command": ["durox"],
        # The worker reads its store URL from the environment, so the Secret's value never
        # appears in the process's arguments.
        "args": ["worker", "--app", spec["app"], "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": [
            {
                "name": "DUROX_STORE_URL",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": spec["store"]["secretRef"]["name"],
                        "key": secret_key(spec),
                    }
                },
            },
            {"name": "DUROX_NODE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DUROX_LOG_FORMAT", "value": "json"},
        ],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 6),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    container["env"] = _merge_env(container["env"], pod.get("env", []))
    if "imagePullPolicy" in spec:
        container["imagePullPolicy"] = spec["imagePullPolicy"]
    if "resources" in pod:
        container["resources"] = pod["resources"]
    return container


def _merge_env(
    defaults: Sequence[Mapping[str, Any]], extra: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Defaults, then the user's variables; a user variable replaces a default of its name.

    Server-side apply keys `env` by name and refuses duplicates, so they must not reach it."""
    merged = {e["name"]: dict(e) for e in defaults}
    for e in extra:
        merged[e["name"]] = dict(e)
    return list(merged.values())


def plan_deployment(
    registry: Obj, config: WorkerConfig, drain: bool = False, pause: bool = False
) -> dict[str, Any]:
    """The worker Deployment (the drain pool's when `drain`). The config revision is
    deliberately absent from the pod template: the ConfigMap is mounted as a folder (never
    subPath), so the kubelet swaps the file in place and the worker reloads it without a
    restart. The metadata carries the template's digest, so a pass can tell that a new
    template is about to roll (see `rollout_pending`). `pause` stops the rollout whatever
    the spec says (the removal guard)."""
    spec = spec_of(registry)
    pod = pod_of(spec)
    pod_spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "containers": [_container(registry, config)],
        "volumes": [
            {"name": "config", "configMap": {"name": child_name(registry, drain)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    if "nodeSelector" in pod:
        pod_spec["nodeSelector"] = pod["nodeSelector"]
    if "tolerations" in pod:
        pod_spec["tolerations"] = pod["tolerations"]
    if "serviceAccountName" in pod:
        pod_spec["serviceAccountName"] = pod["serviceAccountName"]
    template_meta: dict[str, Any] = {
        "labels": labels(registry, drain),
        "annotations": {
            **pod.get("annotations", {}),
            STARTUP_ANNOTATION: startup_digest(config),
        },
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(registry, drain)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "revisionHistoryLimit": 5,
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if paused(spec) or pause:  # left out when false, so resuming removes the field we set
        deployment_spec["paused"] = True
    if drain:
        deployment_spec["replicas"] = drain_replicas(spec)
    elif "replicas" in spec:  # unset: an autoscaler owns the count, so we must not write it
        deployment_spec["replicas"] = spec["replicas"]
    # The digest goes on the pods too, so each pod (and, by its name, which every worker
    # publishes as its node id, each capability record) says which template it runs.
    template_hash = content_hash(deployment_spec["template"])
    template_meta["annotations"][TEMPLATE_ANNOTATION] = template_hash
    return _with_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": child_name(registry, drain),
                "namespace": registry["metadata"]["namespace"],
                "labels": labels(registry, drain),
                "annotations": {TEMPLATE_ANNOTATION: template_hash},
                "ownerReferences": [owner_reference(registry)],
            },
            "spec": deployment_spec,
        }
    )


def controlled_by(observed: Obj, registry: Obj) -> bool:
    """Whether `observed` names this registry (by uid) as its controller."""
    uid = registry["metadata"]["uid"]
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in observed.get("metadata", {}).get("ownerReferences", [])
    )


def needs_apply(desired: Obj, observed: Obj | None) -> bool:
    """Whether the observed child differs from the plan: absent, planned differently (its
    planned-content hash, which the apiserver's defaulting cannot disturb), or edited since
    (a field the operator applies holds something else: see `drift`)."""
    return observed is None or planned_anew(desired, observed) or bool(drift(desired, observed))


def planned_anew(desired: Obj, observed: Obj) -> bool:
    """Whether the plan for this child changed since it was last applied."""
    have = observed.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    return bool(have != desired["metadata"]["annotations"][HASH_ANNOTATION])
