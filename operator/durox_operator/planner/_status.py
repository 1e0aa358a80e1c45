"""The registry's status: conditions from the observed Deployments, versions, Events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import semver

from durox.worker_config import WorkerConfig
from durox_operator.model import DERIVED, NORMALLY_TRUE, Condition, Obj
from durox_operator.planner._failures import pod_failures, replica_failure
from durox_operator.planner._names import InvalidSpec, selector_labels
from durox_operator.planner._rollout import (
    desired_replicas,
    drain_progress,
    rolled_out,
    rollout_counts,
    stall_message,
)
from durox_operator.planner._spec import (
    RegistrySpec,
    drain_enabled,
    drain_replicas,
    paused,
    spec_of,
)
from durox_operator.planner._store import (
    StoreView,
    registered_versions,
    rfc3339,
    serving,
    stranded,
)
from durox_operator.planner._versions import Versions, format_versions, plan_versions


def observe_conditions(
    registry: Obj,
    deployment: Obj | None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
    versions: Versions | None = None,
    drain: Obj | None = None,
    pods: Sequence[Obj] = (),
    drain_pods: Sequence[Obj] = (),
    guard: Mapping[str, int] | None = None,
    held_back: tuple[str, str] | None = None,
) -> list[Condition]:
    """Available, Progressing and Degraded, from the Deployments, their pods and what went
    wrong, if any; then kstatus' Ready, Reconciling and Stalled, derived from those three.

    Available speaks for the main pool only; the drain pool (`drain`, its observed Deployment
    when enabled, and `drain_pods`) adds to Progressing while it rolls and to Degraded when it
    fails. Degraded names the cause before the symptom: pods that cannot be created
    (the Deployment's ReplicaFailure) or cannot run (image pulls, crash loops) come before a
    rollout past its progress deadline, whose own message hides why."""
    return with_kstatus(
        _observe(
            registry,
            deployment,
            error,
            apply_error,
            versions,
            drain,
            pods,
            drain_pods,
            guard,
            held_back,
        )
    )


def with_kstatus(conditions: list[Condition]) -> list[Condition]:
    """`conditions` (Available, Progressing, Degraded) followed by kstatus' three.

    kstatus (what Flux, kpt and cli-utils' waiters read) takes Reconciling=True as "in
    progress" and Stalled=True as "failed", Reconciling first; so a stalled registry must not
    be Reconciling. Ready is the one normal-true condition: True only when the workers are
    available, the rollout is complete and nothing is wrong."""
    by_type = {c.type: c for c in conditions}
    avail, prog, degraded = by_type["Available"], by_type["Progressing"], by_type["Degraded"]
    if degraded.status == "True":
        ready = Condition("Ready", "False", degraded.reason, degraded.message)
        # Not "cannot reach the spec": a rollback or a failed check holds on purpose.
        reconciling = Condition(
            "Reconciling",
            "False",
            "Stalled",
            f"on hold until someone acts on {degraded.reason} (see Degraded)",
        )
        stalled = Condition("Stalled", "True", degraded.reason, degraded.message)
    elif prog.status == "True":
        ready = Condition("Ready", "False", prog.reason, prog.message)
        reconciling = Condition("Reconciling", "True", prog.reason, prog.message)
        stalled = Condition("Stalled", "False", "AsExpected", "no problems seen")
    elif avail.status != "True":
        ready = Condition("Ready", "False", "WorkersUnavailable", avail.message)
        reconciling = Condition("Reconciling", "True", "WorkersUnavailable", avail.message)
        stalled = Condition("Stalled", "False", "AsExpected", "no problems seen")
    else:
        ready = Condition("Ready", "True", "WorkersAvailable", f"{avail.message}; {prog.message}")
        reconciling = Condition("Reconciling", "False", "RolloutComplete", prog.message)
        stalled = Condition("Stalled", "False", "AsExpected", "no problems seen")
    return [ready, reconciling, stalled, avail, prog, degraded]


def _observe(
    registry: Obj,
    deployment: Obj | None,
    error: InvalidSpec | None,
    apply_error: str | None,
    versions: Versions | None,
    drain: Obj | None,
    pods: Sequence[Obj],
    drain_pods: Sequence[Obj],
    guard: Mapping[str, int] | None = None,
    held_back: tuple[str, str] | None = None,
) -> list[Condition]:
    spec = spec_of(registry)
    wanted = spec.get("replicas")
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

    desired = desired_replicas(deployment, wanted)
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
    draining = drain_progress(spec, drain)
    counts = rollout_counts(deployment, wanted)
    drain_note = f"; {draining}" if draining else ""
    pending = (versions is not None and bool(versions.held)) or not rolled_out(deployment, wanted)
    if paused(spec) and (pending or draining):
        held_note = f"{holding}; " if holding else ""
        message = f"rollout paused (spec.paused): {held_note}{counts}{drain_note}"
        prog = Condition("Progressing", "True", "RolloutPaused", message)
    elif versions is not None and versions.held:
        prog = Condition(
            "Progressing", "True", "HoldingVersions", f"{holding}; {counts}{drain_note}"
        )
    elif not rolled_out(deployment, wanted):
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

    degraded = _degraded(spec, deployment, apply_error, drain, pods, drain_pods)
    if guard and degraded.reason in ("AsExpected", "RolloutStalled"):
        in_use = ", ".join(f"{k} ({n} not ended)" for k, n in sorted(guard.items()))
        degraded = Condition(
            "Degraded",
            "True",
            "VersionInUse",
            f"rollout paused: workers of the new pod template lack {in_use}; the old workers "
            "keep serving them (set spec.rollout.allowVersionRemoval to roll anyway)",
        )
    if held_back is not None and degraded.reason == "AsExpected":
        degraded = Condition("Degraded", "True", *held_back)  # GateFailed, RolledBack
    return [avail, prog, degraded]


def _degraded(
    spec: RegistrySpec,
    deployment: Obj,
    apply_error: str | None,
    drain: Obj | None,
    pods: Sequence[Obj],
    drain_pods: Sequence[Obj],
) -> Condition:
    """The first problem found, the main pool before the drain pool, causes before symptoms."""
    if apply_error:
        return Condition("Degraded", "True", "ApplyFailed", apply_error)
    pools: list[tuple[str, Obj, Sequence[Obj]]] = [("", deployment, pods)]
    if drain is not None and drain_enabled(spec):
        pools.append(("drain pool: ", drain, drain_pods))
    for prefix, dep, its_pods in pools:
        failed = replica_failure(dep)
        if failed is not None:
            return Condition("Degraded", "True", "ReplicaFailure", f"{prefix}{failed}")
        failing = pod_failures(its_pods)
        if failing is not None:
            return Condition("Degraded", "True", "PodsFailing", f"{prefix}{failing}")
    for prefix, dep, _ in pools:
        stalled = stall_message(dep)
        if stalled is not None:
            return Condition("Degraded", "True", "RolloutStalled", f"{prefix}{stalled}")
    return Condition("Degraded", "False", "AsExpected", "no problems seen")


def plan_status(
    registry: Obj,
    deployment: Obj | None,
    now: str,
    config: WorkerConfig | None = None,
    error: InvalidSpec | None = None,
    apply_error: str | None = None,
    versions: Versions | None = None,
    drain: Obj | None = None,
    pods: Sequence[Obj] = (),
    drain_pods: Sequence[Obj] = (),
    store: StoreView | None = None,
    store_error: tuple[str, str] | None = None,
    guard: Mapping[str, int] | None = None,
    rolling: bool = False,
    drain_state: Mapping[str, Any] | None = None,
    rollout: Mapping[str, Any] | None = None,
    held_back: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The registry's whole status. `now` (RFC 3339) stamps only conditions whose status flips:
    an unchanged situation plans an unchanged status, so the reconciler writes nothing.

    `config` and `versions` are what was just published; None when publishing failed, and the
    status then keeps reporting what the previous pass published."""
    spec = spec_of(registry)
    generation = registry["metadata"].get("generation", 0)
    before = registry.get("status", {})
    previous = {c["type"]: c for c in before.get("conditions", [])}
    conditions = []
    observed = observe_conditions(
        registry,
        deployment,
        error,
        apply_error,
        versions,
        drain,
        pods,
        drain_pods,
        guard,
        held_back,
    )
    observed += store_conditions(store, store_error, (*pods, *drain_pods))
    if store is not None or store_error is not None:
        observed.append(versions_match(spec, store, (*pods, *drain_pods), rolling))
    for cond in observed:
        was = previous.get(cond.type)
        since = (
            was["lastTransitionTime"] if was is not None and was.get("status") == cond.status
            else now
        )  # fmt: skip
        conditions.append(cond.to_dict(generation, since))

    dstatus = (deployment or {}).get("status", {})
    desired = int(
        spec.get("replicas", 1)
        if deployment is None
        else desired_replicas(deployment, spec.get("replicas"))
    )
    ready = int(dstatus.get("readyReplicas", 0))
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": desired,
        "updatedReplicas": int(dstatus.get("updatedReplicas", 0)),
        "readyReplicas": ready,
        "availableReplicas": int(dstatus.get("availableReplicas", 0)),
        "workers": f"{ready}/{desired}",
        # for the /scale subresource: an autoscaler finds the workers' pods with it
        "selector": ",".join(f"{k}={v}" for k, v in sorted(selector_labels(registry).items())),
        "drain": {**_drain_status(spec, drain), **(drain_state or {})},
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
    if store is not None:
        status.update(store_status(store, status["versions"], (*pods, *drain_pods)))
    else:  # not read this pass: keep what the last read said rather than flap
        for k in ("instances", "oldestVersions", "workerRecords"):
            if k in before:
                status[k] = before[k]
    if rollout is not None:
        status["rollout"] = dict(rollout)
    if config is not None:
        status["configRevision"] = config.revision
    elif "configRevision" in before:
        status["configRevision"] = before["configRevision"]
    return status


def store_conditions(
    store: StoreView | None, error: tuple[str, str] | None, pods: Sequence[Obj]
) -> list[Condition]:
    """StoreObserved, and Stranded: instances not ended that no serving worker can run (their
    NAME@version unregistered, or their engine pin outside every such worker's replay range).
    Nothing when the pass did not try to read the store."""
    if store is None and error is None:
        return []
    if store is None:
        reason, message = error or ("StoreUnreachable", "")
        return [
            Condition("StoreObserved", "False", reason, message),
            Condition(
                "Stranded",
                "Unknown",
                "StoreNotObserved",
                "the store could not be read; deciding from Kubernetes alone",
            ),
        ]
    live = sum(1 for w in store.workers if w.live)
    seen = Condition(
        "StoreObserved",
        "True",
        "Observed",
        f"{sum(v.instances for v in store.versions)} instances not ended, {live} live workers",
    )
    left = stranded(store, pods)
    if left.total:
        return [seen, Condition("Stranded", "True", "InstancesStranded", left.message())]
    return [seen, Condition("Stranded", "False", "NoneStranded", "every instance has a worker")]


def versions_match(
    spec: RegistrySpec, store: StoreView | None, pods: Sequence[Obj], rolling: bool
) -> Condition:
    """Whether each `versions` list the spec gives is what the live workers register; a NAME
    without a list is learned from them. Judged only when no rollout is under way (workers of
    two templates register two sets on purpose)."""
    if store is None:
        return Condition("VersionsMatch", "Unknown", "StoreNotObserved", "the store was not read")
    if rolling:
        return Condition(
            "VersionsMatch", "Unknown", "RollingOut", "workers of two pod templates may serve"
        )
    workers = serving(store, pods)
    if not workers:
        return Condition("VersionsMatch", "Unknown", "NoLiveWorkers", "no live worker reports")
    seen = registered_versions(workers)
    problems, learned = [], []
    for o in spec.get("orchestrations", []):
        name, have = o["name"], seen.get(o["name"], set())
        if "versions" not in o:
            learned.append(f"{name}@{','.join(sorted(have, key=_semver_key)) or '-'}")
            continue
        listed = set(o["versions"])
        missing, extra = listed - have, have - listed
        if missing:
            problems.append(
                f"{name}: the spec lists {', '.join(sorted(missing, key=_semver_key))} that no "
                "live worker registers"
            )
        if extra:
            problems.append(
                f"{name}: live workers register {', '.join(sorted(extra, key=_semver_key))} "
                "that the spec does not list"
            )
    if problems:
        return Condition("VersionsMatch", "False", "VersionsMismatch", "; ".join(problems))
    if learned:
        message = "versions learned from the workers: " + "; ".join(learned)
        return Condition("VersionsMatch", "True", "Learned", message)
    return Condition(
        "VersionsMatch", "True", "AsListed", "the live workers register the versions listed"
    )


def store_status(
    store: StoreView, listing: Sequence[Mapping[str, Any]], pods: Sequence[Obj]
) -> dict[str, Any]:
    """What the store adds to the status: per NAME its versions in use (running count, oldest
    running, registered by a live worker), all instances not ended, the oldest version in use
    per NAME (printer columns), and the workers' records (live, ready, stale)."""
    workers = serving(store, pods)
    registered = registered_versions([w.record for w in store.workers if w.live])
    usage: dict[str, list[dict[str, Any]]] = {}
    for v in store.versions:
        usage.setdefault(v.orchestration_name, []).append(
            {
                "version": v.orchestration_version,
                "running": v.instances,
                "oldestRunning": rfc3339(v.oldest_created_at),
                "oldestInstance": v.oldest_instance_id,
                "registered": v.orchestration_version
                in registered.get(v.orchestration_name, set()),
            }
        )
    versions = []
    for entry in listing:
        name = entry["name"]
        in_use = sorted(usage.get(name, []), key=lambda u: _semver_key(u["version"]))
        versions.append(
            {
                **{k: entry[k] for k in ("name", "active", "desired")},
                "running": sum(u["running"] for u in in_use),
                "registered": entry["active"] in registered.get(name, set()),
                "inUse": in_use,
            }
        )
    oldest = {
        name: min((u["version"] for u in in_use), key=_semver_key)
        for name, in_use in usage.items()
        if in_use
    }
    active = {e["name"]: e["active"] for e in listing}
    ready = sum(1 for w in workers if all(w.has_version(n, v) for n, v in active.items()))
    return {
        "versions": versions,
        "instances": sum(v.instances for v in store.versions),
        "oldestVersions": format_versions(oldest),
        "workerRecords": {
            "live": sum(1 for w in store.workers if w.live),
            "ready": ready,
            "stale": sum(1 for w in store.workers if not w.live),
        },
    }


def _semver_key(version: str) -> tuple[int, ...]:
    try:
        v = semver.Version.parse(version)
    except ValueError:
        return (1 << 30,)
    return (v.major, v.minor, v.patch)


def _drain_status(spec: RegistrySpec, drain: Obj | None) -> dict[str, Any]:
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


def status_patch(
    before: Mapping[str, Any], after: Mapping[str, Any], top: bool = True
) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns each field of status `before` that `after`
    names into `after`'s.

    The status is written with a merge patch, and a merge patch keeps every key of an object
    it does not name: a pin gone from `drain.pinned`, or `drain.emptySince` cleared because
    work returned, would stay in the cluster (and the drain's clock with it) unless the patch
    names them with null. Top-level fields `after` does not name are left alone: they may be
    someone else's (kopf keeps its own under `status.kopf`), and the plan carries every one
    of its own. Lists are replaced whole, so they need nothing of this."""
    patch: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = status_patch(old, value, top=False)
        else:
            patch[key] = value
    if not top:
        for key in before:
            if key not in after:
                patch[key] = None
    return patch


STORE_TYPES = frozenset({"StoreObserved", "Stranded", "VersionsMatch"})


def condition_events(before: Obj, after: Mapping[str, Any]) -> Sequence[Condition]:
    """Conditions worth an Event: each one whose status flipped, and a blocking one (Degraded)
    seen for the first time. A registry's very first status is not news on its own, and
    kstatus' conditions repeat the others' news, so they post none of their own."""
    old = {c["type"]: c.get("status") for c in before.get("status", {}).get("conditions", [])}
    return [
        Condition(c["type"], c["status"], c["reason"], c["message"])
        for c in after.get("conditions", [])
        if c["type"] not in DERIVED
        and not (c["type"] in STORE_TYPES and c["status"] == "Unknown")  # no news: cannot tell
        and (
            (c["type"] in old and old[c["type"]] != c["status"])
            or (
                c["type"] not in old
                and c["type"] in ("Degraded", "Stranded")
                and c["status"] == "True"
            )
            or (c["type"] not in old and c["type"] in NORMALLY_TRUE and c["status"] == "False")
        )
    ]
