"""Reading a worker Deployment's rollout: done, under way, or stalled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durox_operator.model import TEMPLATE_ANNOTATION, Obj
from durox_operator.planner._names import drain_enabled, drain_replicas


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
    if not rolled_out(observed, pool_spec(spec, drain)):
        return f"{pool}rollout under way: {rollout_counts(observed, pool_spec(spec, drain))}"
    return None


def pool_spec(spec: Mapping[str, Any], drain: bool) -> Mapping[str, Any]:
    """What the replica arithmetic reads for one pool: the drain pool's count is its own."""
    return {"replicas": drain_replicas(spec)} if drain else spec


def deployment_condition(deployment: Obj, kind: str) -> Obj | None:
    for c in deployment.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return None


def desired_replicas(deployment: Obj, spec: Mapping[str, Any]) -> int:
    if "replicas" in spec:
        return int(spec["replicas"])
    return int(deployment.get("spec", {}).get("replicas", 1))


def rolled_out(deployment: Obj, spec: Mapping[str, Any]) -> bool:
    """Every desired worker runs the Deployment's current template and is available, and no
    worker of an older template is left."""
    status = deployment.get("status", {})
    desired = desired_replicas(deployment, spec)
    seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    total = int(status.get("replicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    return seen and updated >= desired and total <= updated and available >= desired


def rollout_counts(deployment: Obj, spec: Mapping[str, Any]) -> str:
    status = deployment.get("status", {})
    return (
        f"{int(status.get('updatedReplicas', 0))} of {desired_replicas(deployment, spec)} workers "
        f"updated, {int(status.get('replicas', 0))} running"
    )


def stall_message(deployment: Obj) -> str | None:
    """The Deployment controller's message when it gave up progressing, else None."""
    cond = deployment_condition(deployment, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return str(cond.get("message", "rollout stalled"))
    return None


def drain_progress(spec: Mapping[str, Any], drain: Obj | None) -> str | None:
    """What the drain pool still waits for; None when it is disabled or rolled out."""
    if not drain_enabled(spec):
        return None
    if drain is None:
        return "drain pool: the drain Deployment does not exist yet"
    pool = pool_spec(spec, True)
    if rolled_out(drain, pool):
        return None
    return f"drain pool: {rollout_counts(drain, pool)}"
