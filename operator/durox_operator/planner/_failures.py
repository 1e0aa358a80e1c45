"""What keeps a pool's pods from running, as the Deployment and its pods tell it.

The Deployment controller's `Progressing` condition gives up only after the progress deadline
(600 s by default) and then says "ReplicaSet ... has timed out progressing", hiding the cause.
The cause is visible much earlier: the ReplicaSet cannot create pods (a missing ServiceAccount,
an exhausted quota: the Deployment's `ReplicaFailure` condition), or the pods exist but their
containers cannot start (an image that cannot be pulled, a worker that crashes at start-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from durox_operator.model import Obj

FAILING_WAITING: Final = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Reasons a kubelet gives for a container that waits and will not start by itself."""


def replica_failure(deployment: Obj | None) -> str | None:
    """The Deployment's `ReplicaFailure` message (pods cannot be created), else None."""
    for cond in (deployment or {}).get("status", {}).get("conditions", []):
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            reason = cond.get("reason", "FailedCreate")
            return f"{reason}: {cond.get('message', 'pods cannot be created')}"
    return None


def pod_failure(pod: Obj) -> str | None:
    """Why one pod's workers cannot run, or None when nothing says they cannot."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    name = meta.get("name", "?")
    if status.get("phase") == "Failed":
        why = status.get("reason") or "Failed"
        return f"pod {name} failed: {why}: {status.get('message', '')}".rstrip(": ")
    statuses = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    for container in statuses:
        waiting = container.get("state", {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILING_WAITING:
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            return f"pod {name}: container {container.get('name', '?')}: {reason}{detail}"
    return None


def pod_failures(pods: Sequence[Obj]) -> str | None:
    """How many of the pool's pods cannot run and why the first (by name) cannot; None when
    none is failing. Pods on their way out are not counted."""
    alive = sorted(
        (p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")),
        key=lambda p: str(p.get("metadata", {}).get("name", "")),
    )
    failing = [f for f in (pod_failure(p) for p in alive) if f is not None]
    if not failing:
        return None
    return f"{len(failing)} of {len(alive)} pods failing; {failing[0]}"[:1000]
