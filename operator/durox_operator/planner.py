"""Pure planning: an OrchestrationRegistry (plus what we observed) in, desired objects out.

Everything the operator decides lives here, as functions of their arguments only: no client, no
kopf, no clock (the time comes in as `now`). That keeps every decision unit-testable, and it is
what makes reconciling idempotent: the same registry always plans byte-identical children, and a
content hash on each child lets the reconciler see "nothing changed" and write nothing.

Two kinds of change are kept apart on purpose. Version policies and the replay range live in
the worker configuration file, a ConfigMap the worker re-reads live; nothing about them reaches
the pod template, so changing a policy never restarts a worker. Image, app entry, pod settings
and the few file settings a worker reads only at start-up (pool, concurrency, port: the
worker's `RESTART_FIELDS`) reach the pod template, so changing them rolls the Deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import semver
import yaml

from durox.worker import RESTART_FIELDS
from durox.worker_config import OrchestrationPolicy, ReplayVersions, WorkerConfig
from durox_operator.model import (
    API_VERSION,
    CONFIG_DIR,
    CONFIG_FILE,
    FIELD_MANAGER,
    HASH_ANNOTATION,
    KIND,
    REGISTRY_LABEL,
    STARTUP_ANNOTATION,
    Condition,
    Obj,
)

CONTAINER: Final = "worker"
RUN_AS_USER: Final = 65532
DEFAULT_HTTP_PORT: Final = 8080


class InvalidSpec(ValueError):
    """The registry passed the apiserver's schema but cannot be turned into a worker config.

    Permanent: retrying without a spec change gives the same answer.
    """


# -- names and labels --------------------------------------------------------------------------


def child_name(registry: Obj) -> str:
    """The ConfigMap and the Deployment share the registry's name; the kinds keep them apart."""
    return str(registry["metadata"]["name"])


def selector_labels(registry: Obj) -> dict[str, str]:
    """Labels that select the pool's pods; immutable in a Deployment, so kept minimal."""
    return {
        "app.kubernetes.io/name": "durox-worker",
        "app.kubernetes.io/instance": child_name(registry),
    }


def labels(registry: Obj) -> dict[str, str]:
    return {
        **selector_labels(registry),
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "durox",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        REGISTRY_LABEL: child_name(registry),
    }


def owner_reference(registry: Obj) -> dict[str, Any]:
    meta = registry["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def content_hash(obj: Any) -> str:
    """A short, stable digest of a JSON-able value: key order and whitespace do not matter."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the worker configuration -------------------------------------------------------------------


def active_version(orchestration: Mapping[str, Any]) -> str:
    """The version new instances of one NAME start on under its policy."""
    if orchestration.get("policy", "latest") == "exact":
        return str(orchestration["version"])
    versions = [semver.Version.parse(v) for v in orchestration["versions"]]
    return str(max(versions))


def active_versions(spec: Mapping[str, Any]) -> str:
    """`NAME@VERSION` pairs, sorted, for the printer column; `-` for an empty registry."""
    pairs = sorted(f"{o['name']}@{active_version(o)}" for o in spec.get("orchestrations", []))
    return ",".join(pairs) if pairs else "-"


def worker_config(registry: Obj) -> WorkerConfig:
    """The worker configuration file's content; raises InvalidSpec when it cannot exist."""
    spec = registry["spec"]
    replay = spec.get("replay", {}).get("supportedVersions")
    worker = spec.get("worker", {})
    settings: dict[str, Any] = {}
    if "orchestrationConcurrency" in worker:
        settings["orchestration_concurrency"] = worker["orchestrationConcurrency"]
    if "activityConcurrency" in worker:
        settings["activity_concurrency"] = worker["activityConcurrency"]
    try:
        unrevised = WorkerConfig(
            pool=spec.get("pool") or child_name(registry),
            orchestrations=[
                OrchestrationPolicy(
                    name=o["name"],
                    policy=o.get("policy", "latest"),
                    version=o.get("version"),
                )
                for o in spec.get("orchestrations", [])
            ],
            supported_replay_versions=(
                None
                if replay is None
                else ReplayVersions(min=replay.get("min", "0.0.0"), max=replay["max"])
            ),
            http_port=worker.get("httpPort", DEFAULT_HTTP_PORT),
            **settings,
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidSpec(str(exc)) from exc
    revision = content_hash(unrevised.model_dump(mode="json"))
    return unrevised.model_copy(update={"revision": revision})


def render_worker_config(config: WorkerConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=True)


# -- children ----------------------------------------------------------------------------------


def _with_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """Stamp an object with the digest of its own planned content."""
    obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = content_hash(obj)
    return obj


def plan_configmap(registry: Obj, config: WorkerConfig) -> dict[str, Any]:
    return _with_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": child_name(registry),
                "namespace": registry["metadata"]["namespace"],
                "labels": labels(registry),
                "ownerReferences": [owner_reference(registry)],
            },
            "data": {CONFIG_FILE: render_worker_config(config)},
        }
    )


def _container(registry: Obj, config: WorkerConfig) -> dict[str, Any]:
    spec = registry["spec"]
    pod = spec.get("pod", {})
    secret = spec["store"]["secretRef"]
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
                    "secretKeyRef": {"name": secret["name"], "key": secret.get("key", "url")}
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


def startup_digest(config: WorkerConfig) -> str:
    """Digest of the settings a worker reads only at start-up (its `RESTART_FIELDS`).

    Stamped on the pod template, so changing one of them rolls the pods, while policies and
    replay ranges, which the worker applies live, leave the template untouched."""
    return content_hash({field: getattr(config, field) for field in RESTART_FIELDS})


def plan_deployment(registry: Obj, config: WorkerConfig) -> dict[str, Any]:
    """The worker Deployment. The config revision is deliberately absent from the pod template:
    the ConfigMap is mounted as a folder (never subPath), so the kubelet swaps the file in place
    and the worker reloads it without a restart."""
    spec = registry["spec"]
    pod = spec.get("pod", {})
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
            {"name": "config", "configMap": {"name": child_name(registry)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    for key in ("nodeSelector", "tolerations", "serviceAccountName"):
        if key in pod:
            pod_spec[key] = pod[key]
    template_meta: dict[str, Any] = {
        "labels": labels(registry),
        "annotations": {
            **pod.get("annotations", {}),
            STARTUP_ANNOTATION: startup_digest(config),
        },
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(registry)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "revisionHistoryLimit": 5,
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if "replicas" in spec:  # unset: an autoscaler owns the count, so we must not write it
        deployment_spec["replicas"] = spec["replicas"]
    return _with_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": child_name(registry),
                "namespace": registry["metadata"]["namespace"],
                "labels": labels(registry),
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
    """Whether the observed child differs from the plan.

    Judged by the planned-content hash, which the apiserver's defaulting cannot disturb, plus
    the ConfigMap's data, which nobody else defaults: a hand edit of the worker file is drift
    the next pass undoes even if the editor left the annotation alone."""
    if observed is None:
        return True
    have = observed.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    if have != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return True
    return bool(desired["kind"] == "ConfigMap" and observed.get("data") != desired["data"])


# -- status ------------------------------------------------------------------------------------


def _deployment_condition(deployment: Obj, kind: str) -> Obj | None:
    for c in deployment.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return None


def observe_conditions(
    registry: Obj,
    deployment: Obj | None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
) -> list[Condition]:
    """Available, Progressing and Degraded, from the Deployment and what went wrong, if any."""
    spec = registry["spec"]
    desired = int(spec.get("replicas", 1) if deployment is None else _desired(deployment, spec))
    if error is not None:
        return [
            Condition("Available", "False", "InvalidSpec", "the spec cannot be rendered"),
            Condition("Progressing", "False", "InvalidSpec", "waiting for a valid spec"),
            Condition("Degraded", "True", "InvalidSpec", str(error)),
        ]
    if deployment is None:
        degraded = (
            Condition("Degraded", "True", "ApplyFailed", apply_error)
            if apply_error
            else Condition("Degraded", "False", "AsExpected", "no problems seen")
        )
        return [
            Condition("Available", "False", "Creating", "the worker Deployment does not exist yet"),
            Condition("Progressing", "True", "Creating", "creating the worker Deployment"),
            degraded,
        ]

    status = deployment.get("status", {})
    generation = deployment["metadata"].get("generation", 0)
    seen = status.get("observedGeneration", 0) >= generation
    total = int(status.get("replicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    rolled_out = seen and updated >= desired and total <= updated and available >= desired

    if available >= desired:
        avail = Condition(
            "Available", "True", "WorkersAvailable", f"{available} of {desired} workers available"
        )
    else:
        avail = Condition(
            "Available",
            "False",
            "WorkersUnavailable",
            f"{available} of {desired} workers available",
        )
    if rolled_out:
        prog = Condition(
            "Progressing", "False", "RolloutComplete", f"all {desired} workers run the current spec"
        )
    else:
        prog = Condition(
            "Progressing",
            "True",
            "RollingOut",
            f"{updated} of {desired} workers updated, {total} running",
        )

    stalled = _deployment_condition(deployment, "Progressing")
    if apply_error:
        degraded = Condition("Degraded", "True", "ApplyFailed", apply_error)
    elif stalled is not None and stalled.get("reason") == "ProgressDeadlineExceeded":
        degraded = Condition(
            "Degraded", "True", "RolloutStalled", str(stalled.get("message", "rollout stalled"))
        )
    else:
        degraded = Condition("Degraded", "False", "AsExpected", "no problems seen")
    return [avail, prog, degraded]


def _desired(deployment: Obj, spec: Mapping[str, Any]) -> int:
    if "replicas" in spec:
        return int(spec["replicas"])
    return int(deployment.get("spec", {}).get("replicas", 1))


def plan_status(
    registry: Obj,
    deployment: Obj | None,
    now: str,
    config: WorkerConfig | None = None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
) -> dict[str, Any]:
    """The registry's whole status. `now` (RFC 3339) stamps only conditions whose status flips:
    an unchanged situation plans an unchanged status, so the reconciler writes nothing."""
    spec = registry["spec"]
    generation = registry["metadata"].get("generation", 0)
    previous = {c["type"]: c for c in registry.get("status", {}).get("conditions", [])}
    conditions = []
    for cond in observe_conditions(registry, deployment, error, apply_error):
        before = previous.get(cond.type)
        since = (
            before["lastTransitionTime"]
            if before is not None and before.get("status") == cond.status
            else now
        )
        conditions.append(cond.to_dict(generation, since))

    dstatus = (deployment or {}).get("status", {})
    desired = int(spec.get("replicas", 1) if deployment is None else _desired(deployment, spec))
    ready = int(dstatus.get("readyReplicas", 0))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": desired,
        "updatedReplicas": int(dstatus.get("updatedReplicas", 0)),
        "readyReplicas": ready,
        "availableReplicas": int(dstatus.get("availableReplicas", 0)),
        "workers": f"{ready}/{desired}",
        "activeVersions": active_versions(spec) if error is None else "-",
        "conditions": conditions,
    }
    if config is not None:
        status["configRevision"] = config.revision
    elif "configRevision" in registry.get("status", {}):
        status["configRevision"] = registry["status"]["configRevision"]
    return status


def status_changed(registry: Obj, planned: Mapping[str, Any]) -> bool:
    current = registry.get("status", {})
    return any(current.get(key) != value for key, value in planned.items())


def condition_events(before: Obj, after: Mapping[str, Any]) -> Sequence[Condition]:
    """Conditions worth an Event: each one whose status flipped, and a blocking one (Degraded)
    seen for the first time. A registry's very first status is not news on its own."""
    old = {c["type"]: c.get("status") for c in before.get("status", {}).get("conditions", [])}
    return [
        Condition(c["type"], c["status"], c["reason"], c["message"])
        for c in after.get("conditions", [])
        if (c["type"] in old and old[c["type"]] != c["status"])
        or (c["type"] not in old and c["type"] == "Degraded" and c["status"] == "True")
    ]
