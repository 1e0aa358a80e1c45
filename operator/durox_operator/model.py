"""Names shared by the planner, the reconciler and the handlers, and the status vocabulary.

Kept apart from the planner so that the few strings the cluster sees (group, field manager,
annotation keys, condition reasons) are defined once and can be read in one screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

GROUP: Final = "durox.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "OrchestrationRegistry"
PLURAL: Final = "orchestrationregistries"

FIELD_MANAGER: Final = "durox-operator"
REPLICAS_MANAGER: Final = "durox-operator-handover"
"""The field manager that keeps a Deployment's `replicas` in place when the operator stops
applying it (`spec.replicas` unset), until an autoscaler's write takes the field over."""
REGISTRY_LABEL: Final = "durox.dev/registry"
HASH_ANNOTATION: Final = "durox.dev/planned-hash"
STARTUP_ANNOTATION: Final = "durox.dev/startup-config"
TEMPLATE_ANNOTATION: Final = "durox.dev/template-hash"
"""On a worker Deployment and on its pod template: the digest of the pod template the operator
planned (computed without this annotation). Comparing the Deployment's with the plan tells "a
new template is about to roll" without diffing apiserver defaults; a pod's tells which
template it runs, and so (by the pod name in `node_id`) which template a worker's record is of."""
ACTIVE_ANNOTATION: Final = "durox.dev/active-versions"
"""On the worker ConfigMap: `NAME@VERSION,...`, what the file it carries activates. Read back
on every pass, so what is "currently active" comes from the cluster, not from memory."""

CONFIG_DIR: Final = "/etc/durox"
CONFIG_FILE: Final = "worker.yaml"

Obj = Mapping[str, Any]
"""A raw Kubernetes object as decoded JSON; the planner only reads these."""

ConditionType = Literal[
    "Ready",
    "Reconciling",
    "Stalled",
    "Available",
    "Progressing",
    "Degraded",
    "StoreObserved",
    "Stranded",
    "VersionsMatch",
]
ConditionStatus = Literal["True", "False", "Unknown"]

STALL_REASONS: Final = frozenset(
    {
        "InvalidSpec",
        "ApplyFailed",
        "RolloutStalled",
        "ReplicaFailure",
        "PodsFailing",
        "VersionInUse",
        "ReplayCheckFailed",
        "ReplayCheckError",
        "GateFailed",
        "RolledBack",
    }
)
"""Why a registry cannot move on without someone's help (Degraded and Stalled are True)."""

PROGRESS_REASONS: Final = frozenset(
    {"Creating", "RollingOut", "RolloutPaused", "HoldingVersions", "ReplayChecking"}
)

REASONS: Final[Mapping[str, frozenset[str]]] = {
    "Available": frozenset({"WorkersAvailable", "WorkersUnavailable", "Creating", "InvalidSpec"}),
    # A replay check that holds a rollout says so in Progressing too (False: nothing rolls).
    "Progressing": frozenset(
        {"RolloutComplete", "InvalidSpec", "ReplayCheckFailed", "ReplayCheckError"}
        | PROGRESS_REASONS
    ),
    "Degraded": frozenset({"AsExpected"} | STALL_REASONS),
    # kstatus' three (sigs.k8s.io/cli-utils/pkg/kstatus), derived from the three above: Ready
    # is True only when nothing is left to do; Reconciling while the workers move towards the
    # spec; Stalled when they cannot get there without help (Reconciling is then False).
    "Ready": frozenset(
        {"WorkersAvailable", "WorkersUnavailable"} | PROGRESS_REASONS | STALL_REASONS
    ),
    "Reconciling": frozenset(
        {"WorkersUnavailable", "RolloutComplete", "Stalled"} | PROGRESS_REASONS
    ),
    "Stalled": frozenset({"AsExpected"} | STALL_REASONS),
    # What the store says (issue 12): whether the operator could read it this pass, and
    # whether instances wait that no live worker can run. Neither stops a rollout by itself.
    "StoreObserved": frozenset(
        {
            "Observed",
            "SecretUnreadable",
            "StoreUnreachable",
            "StoreNotObservable",
            "SchemaMissing",
        }
    ),
    "Stranded": frozenset({"NoneStranded", "InstancesStranded", "StoreNotObserved"}),
    # Whether the spec's `versions` lists agree with what the live workers register.
    "VersionsMatch": frozenset(
        {
            "AsListed",
            "Learned",
            "VersionsMismatch",
            "RollingOut",
            "NoLiveWorkers",
            "StoreNotObserved",
        }
    ),
}
"""The fixed vocabulary of condition reasons, by condition type."""

DERIVED: Final = frozenset({"Ready", "Reconciling", "Stalled"})
"""Condition types computed from the other three; their flips post no Events of their own."""

BLOCKING: Final = STALL_REASONS
"""Reasons that stop progress; each is also reported as a Warning Event."""

WARNINGS: Final = BLOCKING | frozenset(
    {
        "InstancesStranded",
        "SecretUnreadable",
        "StoreUnreachable",
        "StoreNotObservable",
        "VersionsMismatch",
    }
)
"""Reasons posted as Warning Events when their condition turns True (or, for the
NORMALLY_TRUE ones, False): the blocking ones, and those a person must look at though
nothing is blocked."""

NORMALLY_TRUE: Final = frozenset({"StoreObserved", "VersionsMatch"})
"""Condition types whose bad news is False (the others' is True)."""


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str

    def __post_init__(self) -> None:
        if self.reason not in REASONS[self.type]:
            raise ValueError(f"reason {self.reason!r} is not in the {self.type} vocabulary")

    def to_dict(self, observed_generation: int, last_transition_time: str) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "observedGeneration": observed_generation,
            "lastTransitionTime": last_transition_time,
        }
