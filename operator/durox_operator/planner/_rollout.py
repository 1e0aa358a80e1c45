"""Reading a worker Deployment's rollout: done, under way, or stalled."""

from __future__ import annotations

from durox_operator.model import TEMPLATE_ANNOTATION, Obj
from durox_operator.planner._spec import RegistrySpec, drain_enabled, pool_replicas


def rollout_pending(
    spec: RegistrySpec, desired: Obj, observed: Obj | None, drain: bool = False
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
    wanted = pool_replicas(spec, drain)
    if not rolled_out(observed, wanted):
        return f"{pool}rollout under way: {rollout_counts(observed, wanted)}"
    return None


def deployment_condition(deployment: Obj, kind: str) -> Obj | None:
    for c in deployment.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return None


def desired_replicas(deployment: Obj, wanted: int | None) -> int:
    """The pool's worker count: the spec's (`wanted`), else the Deployment's own (an
    autoscaler's)."""
    if wanted is not None:
        return int(wanted)
    return int(deployment.get("spec", {}).get("replicas", 1))


def rolled_out(deployment: Obj, wanted: int | None) -> bool:
    """Every desired worker runs the Deployment's current template and is available, and no
    worker of an older template is left: `replicas` does not count terminating pods, but their
    workers still run (until SIGTERM arrives, then through their grace period, with their
    sessions), so `terminatingReplicas` must be 0 too."""
    status = deployment.get("status", {})
    desired = desired_replicas(deployment, wanted)
    seen = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    total = int(status.get("replicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    terminating = int(status.get("terminatingReplicas", 0))
    return (
        seen
        and updated >= desired
        and total <= updated
        and available >= desired
        and terminating == 0
    )


def rollout_counts(deployment: Obj, wanted: int | None) -> str:
    """Updated workers out of desired, and how many workers (of any template) are Ready: a
    created pod is not a worker until its readiness probe passes."""
    status = deployment.get("status", {})
    updated, ready = int(status.get("updatedReplicas", 0)), int(status.get("readyReplicas", 0))
    desired = desired_replicas(deployment, wanted)
    terminating = int(status.get("terminatingReplicas", 0))
    return f"{updated} of {desired} workers updated, {ready} ready" + (
        f", {terminating} terminating" if terminating else ""
    )


def stall_message(deployment: Obj) -> str | None:
    """The Deployment controller's message when it gave up progressing, else None."""
    cond = deployment_condition(deployment, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return str(cond.get("message", "rollout stalled"))
    return None


def drain_progress(spec: RegistrySpec, drain: Obj | None) -> str | None:
    """What the drain pool still waits for; None when it is disabled or rolled out."""
    if not drain_enabled(spec):
        return None
    if drain is None:
        return "drain pool: the drain Deployment does not exist yet"
    wanted = pool_replicas(spec, drain=True)
    if rolled_out(drain, wanted):
        return None
    return f"drain pool: {rollout_counts(drain, wanted)}"
