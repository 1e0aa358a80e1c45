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
REGISTRY_LABEL: Final = "durox.dev/registry"
HASH_ANNOTATION: Final = "durox.dev/planned-hash"
STARTUP_ANNOTATION: Final = "durox.dev/startup-config"
TEMPLATE_ANNOTATION: Final = "durox.dev/template-hash"
"""On a worker Deployment: the digest of the pod template the operator planned. Comparing it
with the plan tells "a new template is about to roll" without diffing apiserver defaults."""
ACTIVE_ANNOTATION: Final = "durox.dev/active-versions"
"""On the worker ConfigMap: `NAME@VERSION,...`, what the file it carries activates. Read back
on every pass, so what is "currently active" comes from the cluster, not from memory."""

CONFIG_DIR: Final = "/etc/durox"
CONFIG_FILE: Final = "worker.yaml"

Obj = Mapping[str, Any]
"""A raw Kubernetes object as decoded JSON; the planner only reads these."""

ConditionType = Literal["Available", "Progressing", "Degraded"]
ConditionStatus = Literal["True", "False", "Unknown"]

REASONS: Final[Mapping[str, frozenset[str]]] = {
    "Available": frozenset({"WorkersAvailable", "WorkersUnavailable", "Creating", "InvalidSpec"}),
    "Progressing": frozenset(
        {"RolloutComplete", "RollingOut", "HoldingVersions", "Creating", "InvalidSpec"}
    ),
    "Degraded": frozenset({"AsExpected", "InvalidSpec", "ApplyFailed", "RolloutStalled"}),
}
"""The fixed vocabulary of condition reasons, by condition type."""

BLOCKING: Final = frozenset({"InvalidSpec", "ApplyFailed", "RolloutStalled"})
"""Reasons that stop progress; each is also reported as a Warning Event."""


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
