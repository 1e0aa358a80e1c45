"""Typed views of an OrchestrationRegistry's spec, shaped as the CRD schema admits it.

The apiserver has already validated the spec against the CRD (crds/), so these are views,
not parsers: `spec_of` only tells the type checker what the dict holds. Keys the schema
requires are plain; optional ones are `NotRequired`, and their defaults live in the small
accessors below, so no caller spells a `.get(...).get(...)` chain or repeats a default.
"""

# No `from __future__ import annotations` here: TypedDict resolves NotRequired only from real
# annotations, and the CRD test reads `__required_keys__` to hold these views to the schema.
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

from durox_operator.model import Obj

DEFAULT_DRAIN_REPLICAS: Final = 1
DEFAULT_SECRET_KEY: Final = "url"


class SecretRef(TypedDict):
    name: str
    key: NotRequired[str]


class StoreSpec(TypedDict):
    secretRef: SecretRef
    operatorSecretRef: NotRequired[SecretRef]


class ReplayCheckSpec(TypedDict, total=False):
    mode: Literal["Enabled", "Skip"]
    deadlineSeconds: int
    maxHistories: int


class GateSpec(TypedDict):
    orchestration: str
    input: NotRequired[Any]
    timeoutSeconds: NotRequired[int]
    everyStep: NotRequired[bool]


class RampStepSpec(TypedDict):
    percent: float
    pauseSeconds: NotRequired[int]


class AnalysisSpec(TypedDict, total=False):
    thresholdPercent: float
    minSamples: int


class RolloutSpec(TypedDict, total=False):
    allowVersionRemoval: bool
    replayCheck: ReplayCheckSpec
    gate: GateSpec
    steps: list[RampStepSpec]
    analysis: AnalysisSpec
    rollback: bool


class OrchestrationSpec(TypedDict):
    name: str
    versions: NotRequired[list[str]]
    policy: NotRequired[Literal["latest", "exact"]]
    version: NotRequired[str]


class VersionRange(TypedDict):
    min: NotRequired[str]
    max: str


class ReplaySpec(TypedDict, total=False):
    supportedVersions: VersionRange


class DrainSpec(TypedDict, total=False):
    enabled: bool
    mode: Literal["Manual", "Auto"]
    removeAfterSeconds: int
    replicas: int
    supportedVersions: VersionRange


class WorkerSpec(TypedDict, total=False):
    orchestrationConcurrency: int
    activityConcurrency: int
    httpPort: int


class PodSpec(TypedDict, total=False):
    annotations: dict[str, str]
    env: list[dict[str, Any]]
    resources: dict[str, Any]
    nodeSelector: dict[str, str]
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any]
    serviceAccountName: str


class RegistrySpec(TypedDict):
    image: str
    app: str
    store: StoreSpec
    orchestrations: list[OrchestrationSpec]
    imagePullPolicy: NotRequired[str]
    paused: NotRequired[bool]
    replicas: NotRequired[int]
    pool: NotRequired[str]
    replay: NotRequired[ReplaySpec]
    drain: NotRequired[DrainSpec]
    worker: NotRequired[WorkerSpec]
    pod: NotRequired[PodSpec]
    rollout: NotRequired[RolloutSpec]


def spec_of(registry: Obj) -> RegistrySpec:
    """The registry's spec, typed."""
    return cast(RegistrySpec, registry["spec"])


def drain_of(spec: RegistrySpec) -> DrainSpec:
    return spec.get("drain", {})


def pod_of(spec: RegistrySpec) -> PodSpec:
    return spec.get("pod", {})


def worker_of(spec: RegistrySpec) -> WorkerSpec:
    return spec.get("worker", {})


def paused(spec: RegistrySpec) -> bool:
    """Whether rollouts are paused (the Deployments' own `paused`)."""
    return bool(spec.get("paused", False))


def drain_enabled(spec: RegistrySpec) -> bool:
    return bool(drain_of(spec).get("enabled", False))


def drain_auto(spec: RegistrySpec) -> bool:
    return drain_of(spec).get("mode", "Manual") == "Auto"


DEFAULT_DRAIN_REMOVE_AFTER: Final = 300


def drain_remove_after(spec: RegistrySpec) -> int:
    return int(drain_of(spec).get("removeAfterSeconds", DEFAULT_DRAIN_REMOVE_AFTER))


def drain_replicas(spec: RegistrySpec) -> int:
    return int(drain_of(spec).get("replicas", DEFAULT_DRAIN_REPLICAS))


def pool_replicas(spec: RegistrySpec, drain: bool = False) -> int | None:
    """The worker count the spec asks of one pool; None when unset (an autoscaler owns it)."""
    return drain_replicas(spec) if drain else spec.get("replicas")


def replay_range(spec: RegistrySpec, drain: bool = False) -> VersionRange | None:
    """The replay range of the main pool, or of the drain pool when `drain`; None when unset."""
    if drain:
        return drain_of(spec).get("supportedVersions")
    replay: ReplaySpec = spec.get("replay", {})
    return replay.get("supportedVersions")


def policy_of(orchestration: OrchestrationSpec) -> Literal["latest", "exact"]:
    return orchestration.get("policy", "latest")


def secret_key(spec: RegistrySpec) -> str:
    return spec["store"]["secretRef"].get("key", DEFAULT_SECRET_KEY)


def operator_secret(spec: RegistrySpec) -> tuple[str, str]:
    """(Secret name, key) the operator reads the store URL from: `store.operatorSecretRef`
    when given (a read-only role, so worker credentials need not be shared), else the
    workers' own `store.secretRef`."""
    ref = spec["store"].get("operatorSecretRef") or spec["store"]["secretRef"]
    return ref["name"], ref.get("key", DEFAULT_SECRET_KEY)


def allow_version_removal(spec: RegistrySpec) -> bool:
    """Whether a new image may drop a version instances still run on (the removal guard off)."""
    rollout: RolloutSpec = spec.get("rollout", {})
    return bool(rollout.get("allowVersionRemoval", False))
