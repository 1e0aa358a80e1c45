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

The two meet in an upgrade: a version change that arrives with a new template is held back
(`plan_versions`) until every worker runs that template, because older workers lack the new
version's handlers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import semver
import yaml

from durox.worker import RESTART_FIELDS
from durox.worker_config import OrchestrationPolicy, ReplayVersions, WorkerConfig
from durox_operator.model import (
    ACTIVE_ANNOTATION,
    API_VERSION,
    CONFIG_DIR,
    CONFIG_FILE,
    FIELD_MANAGER,
    HASH_ANNOTATION,
    KIND,
    REGISTRY_LABEL,
    STARTUP_ANNOTATION,
    TEMPLATE_ANNOTATION,
    Condition,
    Obj,
)

CONTAINER: Final = "worker"
RUN_AS_USER: Final = 65532
DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_DRAIN_REPLICAS: Final = 1
DRAIN_SUFFIX: Final = "-drain"


class InvalidSpec(ValueError):
    """The registry passed the apiserver's schema but cannot be turned into a worker config.

    Permanent: retrying without a spec change gives the same answer.
    """


# -- names and labels --------------------------------------------------------------------------


def child_name(registry: Obj, drain: bool = False) -> str:
    """The ConfigMap and the Deployment share the registry's name; the kinds keep them apart.

    The drain pool's pair is `<name>-drain`: with the registry's name capped at 52 characters
    that is at most 58, inside the 63 a label value (`app.kubernetes.io/instance`) allows."""
    name = str(registry["metadata"]["name"])
    return f"{name}{DRAIN_SUFFIX}" if drain else name


def selector_labels(registry: Obj, drain: bool = False) -> dict[str, str]:
    """Labels that select the pool's pods; immutable in a Deployment, so kept minimal. The
    instance differs between the main and the drain pool, so their selectors never overlap."""
    return {
        "app.kubernetes.io/name": "durox-worker",
        "app.kubernetes.io/instance": child_name(registry, drain),
    }


def labels(registry: Obj, drain: bool = False) -> dict[str, str]:
    return {
        **selector_labels(registry, drain),
        "app.kubernetes.io/component": "drain-worker" if drain else "worker",
        "app.kubernetes.io/part-of": "durox",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        REGISTRY_LABEL: child_name(registry),
    }


def drain_enabled(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("drain", {}).get("enabled", False))


def drain_replicas(spec: Mapping[str, Any]) -> int:
    return int(spec.get("drain", {}).get("replicas", DEFAULT_DRAIN_REPLICAS))


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


def desired_versions(spec: Mapping[str, Any]) -> dict[str, str]:
    """The version each NAME should start new instances on, by the spec's policies alone."""
    return {o["name"]: active_version(o) for o in spec.get("orchestrations", [])}


def format_versions(versions: Mapping[str, str]) -> str:
    """`NAME@VERSION` pairs, sorted, comma-separated; `-` when there are none."""
    pairs = sorted(f"{name}@{version}" for name, version in versions.items())
    return ",".join(pairs) if pairs else "-"


def parse_versions(text: str) -> dict[str, str]:
    """The inverse of `format_versions`; malformed pairs are skipped."""
    found: dict[str, str] = {}
    for pair in text.split(","):
        name, sep, version = pair.strip().rpartition("@")
        if sep and name and version:
            found[name] = version
    return found


def active_versions(spec: Mapping[str, Any]) -> str:
    """The printer column for a spec taken at its word (no version held back)."""
    return format_versions(desired_versions(spec))


def published_versions(configmap: Obj | None) -> dict[str, str] | None:
    """What an observed worker ConfigMap activates, from its annotation; None when unknown
    (no ConfigMap yet, or one written before the operator recorded it)."""
    if configmap is None:
        return None
    text = configmap.get("metadata", {}).get("annotations", {}).get(ACTIVE_ANNOTATION)
    return None if text is None else parse_versions(str(text))


@dataclass(frozen=True)
class Versions:
    """Which version each NAME's new instances start on, and which wait for a rollout.

    A NAME is *held* when its desired version differs from the one the ConfigMap activates
    while workers of an older pod template may still be serving: those workers may lack the
    new version's handlers, so the file pins the old version (`exact`) until every worker runs
    the new template. Workers apply policies live, so holding never touches the pod template.
    """

    desired: Mapping[str, str]
    """NAME -> the version the spec asks for."""
    active: Mapping[str, str]
    """NAME -> the version the published file activates (held NAMEs keep their old one)."""
    held: tuple[str, ...] = ()
    """NAMEs pinned at their previously active version, waiting for the rollout."""
    unheld: Mapping[str, str] = field(default_factory=dict)
    """NAME -> previously active version the new spec no longer registers, so the NAME could
    not be held and moved at once."""
    waiting_for: str | None = None
    """Why versions wait (the rollout still under way), when any changed during one."""

    def listing(self) -> list[dict[str, str]]:
        """`status.versions`: one entry per NAME, sorted."""
        return [
            {"name": name, "active": self.active[name], "desired": self.desired[name]}
            for name in sorted(self.desired)
        ]

    def holding_message(self) -> str | None:
        """What waits and why; None when nothing does."""
        parts = []
        if self.held:
            waits = ", ".join(f"{n}@{self.active[n]} (wants {self.desired[n]})" for n in self.held)
            parts.append(f"holding {waits} until every worker runs the new pod template")
        if self.unheld:
            moved = ", ".join(
                f"{n}@{self.desired[n]} (the spec no longer registers {old})"
                for n, old in sorted(self.unheld.items())
            )
            parts.append(f"cannot hold {moved}: activated during the rollout")
        return "; ".join(parts) if parts else None


def plan_versions(
    spec: Mapping[str, Any], previous: Mapping[str, str] | None, rolling: str | None
) -> Versions:
    """Decide what the ConfigMap activates.

    `previous` is what the observed ConfigMap activates (None on a first creation or when
    unknown); `rolling` says why workers of an older pod template may still serve (None when
    every worker runs the planned template). Outside a rollout the spec takes effect at once.
    """
    desired = desired_versions(spec)
    if rolling is None or previous is None:
        return Versions(desired=desired, active=dict(desired))
    registered = {o["name"]: set(o["versions"]) for o in spec.get("orchestrations", [])}
    active: dict[str, str] = {}
    held: list[str] = []
    unheld: dict[str, str] = {}
    for name, want in desired.items():
        old = previous.get(name)
        if old is None or old == want:
            active[name] = want  # a new NAME, or one that does not change
        elif old in registered[name]:
            active[name] = old
            held.append(name)
        else:
            active[name] = want
            unheld[name] = old
    return Versions(
        desired=desired,
        active=active,
        held=tuple(sorted(held)),
        unheld=unheld,
        waiting_for=rolling if held or unheld else None,
    )


def rollout_pending(
    spec: Mapping[str, Any], desired: Obj, observed: Obj | None, drain: bool = False
) -> str | None:
    """Why workers of another pod template may still be serving, or None when none can be.

    `desired` is the planned Deployment (of the drain pool when `drain`), `observed` the
    cluster's copy (None: not created yet, so no worker of that pool serves at all)."""
    if observed is None:
        return None
    pool = "drain pool: " if drain else ""
    want = desired["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    have = observed.get("metadata", {}).get("annotations", {}).get(TEMPLATE_ANNOTATION)
    if have != want:
        return f"{pool}the pod template is changing"
    if not _rolled_out(observed, _pool_spec(spec, drain)):
        return f"{pool}rollout under way: {_rollout_counts(observed, _pool_spec(spec, drain))}"
    return None


def _pool_spec(spec: Mapping[str, Any], drain: bool) -> Mapping[str, Any]:
    """What the replica arithmetic reads for one pool: the drain pool's count is its own."""
    return {"replicas": drain_replicas(spec)} if drain else spec


def _policy(orchestration: Mapping[str, Any], versions: Versions | None) -> OrchestrationPolicy:
    name = orchestration["name"]
    if versions is not None and name in versions.held:
        return OrchestrationPolicy(name=name, policy="exact", version=versions.active[name])
    return OrchestrationPolicy(
        name=name,
        policy=orchestration.get("policy", "latest"),
        version=orchestration.get("version"),
    )


def worker_config(
    registry: Obj, versions: Versions | None = None, drain: bool = False
) -> WorkerConfig:
    """The worker configuration file's content; raises InvalidSpec when it cannot exist.

    NAMEs `versions` holds are pinned (`exact`) at their previously active version. The drain
    pool's file (`drain=True`) is the same but for the replay range: `spec.drain`'s range when
    given, else drain mode (`drain: true`: every pinned version is fetched)."""
    spec = registry["spec"]
    replay = spec.get("replay", {}).get("supportedVersions")
    drain_mode = False
    if drain:
        replay = spec.get("drain", {}).get("supportedVersions")
        drain_mode = replay is None
    worker = spec.get("worker", {})
    settings: dict[str, Any] = {}
    if "orchestrationConcurrency" in worker:
        settings["orchestration_concurrency"] = worker["orchestrationConcurrency"]
    if "activityConcurrency" in worker:
        settings["activity_concurrency"] = worker["activityConcurrency"]
    try:
        unrevised = WorkerConfig(
            pool=spec.get("pool") or child_name(registry),
            orchestrations=[_policy(o, versions) for o in spec.get("orchestrations", [])],
            supported_replay_versions=(
                None
                if replay is None
                else ReplayVersions(min=replay.get("min", "0.0.0"), max=replay["max"])
            ),
            drain=drain_mode,
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


def plan_configmap(
    registry: Obj, config: WorkerConfig, versions: Versions | None = None, drain: bool = False
) -> dict[str, Any]:
    """The worker file, annotated with what it activates (the spec's versions unless held)."""
    active = desired_versions(registry["spec"]) if versions is None else versions.active
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


def plan_deployment(registry: Obj, config: WorkerConfig, drain: bool = False) -> dict[str, Any]:
    """The worker Deployment (the drain pool's when `drain`). The config revision is
    deliberately absent from the pod template: the ConfigMap is mounted as a folder (never
    subPath), so the kubelet swaps the file in place and the worker reloads it without a
    restart. The metadata carries the template's digest, so a pass can tell that a new
    template is about to roll (see `rollout_pending`)."""
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
            {"name": "config", "configMap": {"name": child_name(registry, drain)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    for key in ("nodeSelector", "tolerations", "serviceAccountName"):
        if key in pod:
            pod_spec[key] = pod[key]
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
    if drain:
        deployment_spec["replicas"] = drain_replicas(spec)
    elif "replicas" in spec:  # unset: an autoscaler owns the count, so we must not write it
        deployment_spec["replicas"] = spec["replicas"]
    return _with_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": child_name(registry, drain),
                "namespace": registry["metadata"]["namespace"],
                "labels": labels(registry, drain),
                "annotations": {TEMPLATE_ANNOTATION: content_hash(deployment_spec["template"])},
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


def _desired(deployment: Obj, spec: Mapping[str, Any]) -> int:
    if "replicas" in spec:
        return int(spec["replicas"])
    return int(deployment.get("spec", {}).get("replicas", 1))


def _rolled_out(deployment: Obj, spec: Mapping[str, Any]) -> bool:
    """Every desired worker runs the Deployment's current template and is available, and no
    worker of an older template is left: `replicas` does not count terminating pods, but
    their workers still run (until SIGTERM arrives, then through their grace period, with
    their sessions), so `terminatingReplicas` must be 0 too."""
    status = deployment.get("status", {})
    desired = _desired(deployment, spec)
    seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    total = int(status.get("replicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    terminating = int(status.get("terminatingReplicas", 0))
    return (
        seen and updated >= desired and total <= updated and available >= desired
        and terminating == 0
    )  # fmt: skip


def _rollout_counts(deployment: Obj, spec: Mapping[str, Any]) -> str:
    status = deployment.get("status", {})
    terminating = int(status.get("terminatingReplicas", 0))
    return (
        f"{int(status.get('updatedReplicas', 0))} of {_desired(deployment, spec)} workers "
        f"updated, {int(status.get('replicas', 0))} running"
        + (f", {terminating} terminating" if terminating else "")
    )


def observe_conditions(
    registry: Obj,
    deployment: Obj | None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
    versions: Versions | None = None,
    drain: Obj | None = None,
) -> list[Condition]:
    """Available, Progressing and Degraded, from the Deployments and what went wrong, if any.

    Available speaks for the main pool only; the drain pool (`drain`, its observed Deployment
    when enabled) adds to Progressing while it rolls and to Degraded when its rollout stalls."""
    spec = registry["spec"]
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

    desired = _desired(deployment, spec)
    available = int(deployment.get("status", {}).get("availableReplicas", 0))
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
    holding = None if versions is None else versions.holding_message()
    draining = _drain_progress(spec, drain)
    counts = _rollout_counts(deployment, spec)
    drain_note = f"; {draining}" if draining else ""
    if versions is not None and versions.held:
        prog = Condition(
            "Progressing", "True", "HoldingVersions", f"{holding}; {counts}{drain_note}"
        )
    elif not _rolled_out(deployment, spec):
        held_note = f"; {holding}" if holding else ""
        prog = Condition("Progressing", "True", "RollingOut", f"{counts}{held_note}{drain_note}")
    elif draining:
        prog = Condition("Progressing", "True", "RollingOut", draining)
    else:
        extra = f" and {drain_replicas(spec)} drain workers" if drain_enabled(spec) else ""
        prog = Condition(
            "Progressing",
            "False",
            "RolloutComplete",
            f"all {desired} workers{extra} run the current spec",
        )

    stalled = _stalled(deployment)
    drain_stalled = None if drain is None or not drain_enabled(spec) else _stalled(drain)
    if apply_error:
        degraded = Condition("Degraded", "True", "ApplyFailed", apply_error)
    elif stalled is not None:
        degraded = Condition("Degraded", "True", "RolloutStalled", stalled)
    elif drain_stalled is not None:
        degraded = Condition("Degraded", "True", "RolloutStalled", f"drain pool: {drain_stalled}")
    else:
        degraded = Condition("Degraded", "False", "AsExpected", "no problems seen")
    return [avail, prog, degraded]


def _stalled(deployment: Obj) -> str | None:
    """The Deployment controller's message when it gave up progressing, else None."""
    cond = _deployment_condition(deployment, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return str(cond.get("message", "rollout stalled"))
    return None


def _drain_progress(spec: Mapping[str, Any], drain: Obj | None) -> str | None:
    """What the drain pool still waits for; None when it is disabled or rolled out."""
    if not drain_enabled(spec):
        return None
    if drain is None:
        return "drain pool: the drain Deployment does not exist yet"
    pool = _pool_spec(spec, True)
    if _rolled_out(drain, pool):
        return None
    return f"drain pool: {_rollout_counts(drain, pool)}"


def plan_status(
    registry: Obj,
    deployment: Obj | None,
    now: str,
    config: WorkerConfig | None = None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
    versions: Versions | None = None,
    drain: Obj | None = None,
) -> dict[str, Any]:
    """The registry's whole status. `now` (RFC 3339) stamps only conditions whose status flips:
    an unchanged situation plans an unchanged status, so the reconciler writes nothing.

    `config` and `versions` are what was just published; None when publishing failed, and the
    status then keeps reporting what the previous pass published."""
    spec = registry["spec"]
    generation = registry["metadata"].get("generation", 0)
    before = registry.get("status", {})
    previous = {c["type"]: c for c in before.get("conditions", [])}
    conditions = []
    for cond in observe_conditions(registry, deployment, error, apply_error, versions, drain):
        was = previous.get(cond.type)
        since = (
            was["lastTransitionTime"] if was is not None and was.get("status") == cond.status
            else now
        )  # fmt: skip
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
        "drain": _drain_status(spec, drain),
        "conditions": conditions,
    }
    if error is not None:
        status["activeVersions"] = "-"
        status["versions"] = []
    elif versions is not None:
        status["activeVersions"] = format_versions(versions.active)
        status["versions"] = versions.listing()
    elif "activeVersions" in before:
        status["activeVersions"] = before["activeVersions"]
        status["versions"] = before.get("versions", [])
    else:  # nothing published yet: report the spec's own versions
        taken = plan_versions(spec, None, None)
        status["activeVersions"] = format_versions(taken.active)
        status["versions"] = taken.listing()
    if config is not None:
        status["configRevision"] = config.revision
    elif "configRevision" in before:
        status["configRevision"] = before["configRevision"]
    return status


def _drain_status(spec: Mapping[str, Any], drain: Obj | None) -> dict[str, Any]:
    if not drain_enabled(spec):
        return {"enabled": False, "workers": "0/0"}
    ready = int((drain or {}).get("status", {}).get("readyReplicas", 0))
    return {"enabled": True, "workers": f"{ready}/{drain_replicas(spec)}"}


def activation_event(
    before: Mapping[str, str] | None, versions: Versions
) -> tuple[str, str] | None:
    """The Event (type, message) when the published active versions change; None when they do
    not, or on a first publication (the CreatedConfigMap Event covers that). A Warning when a
    version had to move during a rollout because the new spec dropped the old one."""
    after = versions.active
    if before is None:
        return None
    changed = sorted(n for n, v in after.items() if before.get(n) != v)
    if not changed:
        return None
    moves = ", ".join(
        f"{n}@{after[n]}" + (f" (was {before[n]})" if n in before else " (new)") for n in changed
    )
    message = f"new instances now start on {moves}"
    if versions.unheld:
        held = ", ".join(f"{n}@{v}" for n, v in sorted(versions.unheld.items()))
        return "Warning", (
            f"{message}; workers of the old pod template may still serve: the spec no longer "
            f"registers {held}, so it could not be held"
        )
    return "Normal", message


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
