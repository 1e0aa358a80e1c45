"""The worker's configuration file, as one pydantic model.

One model serves two writers and one reader: an operator renders it into a ConfigMap, a person
may write it by hand, and `durox worker --config PATH` reads it (and re-reads it when the mounted
file is swapped). Keeping it in the runtime package lets the operator import the very model the
worker validates with, so the two can never drift apart.
"""

from __future__ import annotations

from typing import Final, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from durox.core.codec import DEFAULT_MAX_PAYLOAD_BYTES


def _check_semver(value: str) -> str:
    try:
        semver.Version.parse(value)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a semantic version (expected MAJOR.MINOR.PATCH)"
        ) from exc
    return value


RESTART_FIELDS: Final = (
    "pool",
    "orchestration_concurrency",
    "activity_concurrency",
    "max_attempts",
    "lock_timeout_seconds",
    "http_port",
    "max_payload_bytes",
)
"""WorkerConfig fields a worker reads once at start-up; everything else applies live. Kept
beside the model so that an operator can tell which changes roll its pods without importing
the worker process (and with it the runtime, the stores and the HTTP server)."""


class Ramp(BaseModel):
    """A new version's share of one NAME's new starts and `continue_as_new`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(description="The version that gets the share; must be registered.")
    percent: float = Field(
        ge=0,
        le=100,
        description="Share of the starts the policy decides, 0 to 100; the instances are "
        "chosen by a stable hash of their id, so each keeps its side while the share stays and "
        "only moves to the new version as it grows.",
    )

    @field_validator("version")
    @classmethod
    def _version_is_semver(cls, v: str) -> str:
        return _check_semver(v)


class OrchestrationPolicy(BaseModel):
    """The version policy for new starts and `continue_as_new` of one orchestration NAME."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The stable orchestration NAME.")
    policy: Literal["latest", "exact"] = Field(
        default="latest", description="`latest` picks the highest registered version."
    )
    version: str | None = Field(
        default=None, description="The pinned version; required when policy is `exact`."
    )
    ramp: Ramp | None = Field(
        default=None,
        description="A new version's share of the starts; the rest go where the policy says "
        "among the other versions.",
    )

    @field_validator("version")
    @classmethod
    def _version_is_semver(cls, v: str | None) -> str | None:
        return None if v is None else _check_semver(v)

    @model_validator(mode="after")
    def _exact_needs_version(self) -> OrchestrationPolicy:
        if self.policy == "exact" and self.version is None:
            raise ValueError(f"orchestration {self.name!r}: policy 'exact' needs a version")
        if self.policy == "latest" and self.version is not None:
            raise ValueError(f"orchestration {self.name!r}: policy 'latest' takes no version")
        if self.ramp is not None and self.ramp.version == self.version:
            raise ValueError(
                f"orchestration {self.name!r}: the ramp's version {self.version} is the pinned one"
            )
        return self


class ReplayVersions(BaseModel):
    """An inclusive range of pinned engine versions this worker will fetch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: str = Field(default="0.0.0", description="Lowest pinned engine version fetched.")
    max: str = Field(description="Highest pinned engine version fetched.")

    @field_validator("min", "max")
    @classmethod
    def _is_semver(cls, v: str) -> str:
        return _check_semver(v)

    @model_validator(mode="after")
    def _ordered(self) -> ReplayVersions:
        if semver.Version.parse(self.min) > semver.Version.parse(self.max):
            raise ValueError(f"replay range min {self.min} is above max {self.max}")
        return self


class WorkerConfig(BaseModel):
    """Everything a running worker may change without a restart, plus its pool identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    revision: str = Field(
        default="0", description="Opaque revision; workers report the one they have applied."
    )
    pool: str = Field(default="default", min_length=1, description="Worker pool name.")
    orchestrations: list[OrchestrationPolicy] = Field(
        default_factory=list, description="Version policies by orchestration NAME."
    )
    supported_replay_versions: ReplayVersions | None = Field(
        default=None,
        description="Pinned engine versions this worker fetches; unset means 0.0.0 up to its own.",
    )
    drain: bool = Field(default=False, description="Drain mode: fetch every pinned version.")
    orchestration_concurrency: int = Field(
        default=16, ge=1, le=1024, description="Orchestration dispatchers (restart to change)."
    )
    activity_concurrency: int = Field(
        default=32, ge=1, le=4096, description="Activity dispatchers (restart to change)."
    )
    max_attempts: int = Field(
        default=10, ge=1, description="Fetches before a message is poisoned (restart to change)."
    )
    lock_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Orchestration and activity lease (restart to change)."
    )
    instance_cache_size: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="Running instances kept in memory between turns (0: none); applies live.",
    )
    instance_cache_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        le=1024**4,
        description="Budget for the kept instances' estimated memory (a fixed overhead plus "
        "each one's encoded history, docs/instance-cache.md), least recently used evicted past "
        "it; an instance larger than the whole budget is not kept (0: none kept); applies live.",
    )
    sticky_window_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long another worker leaves a turn to the worker that keeps the "
        "instance; applies live.",
    )
    max_payload_bytes: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest payload (UTF-8 JSON bytes) an orchestration or activity may hand "
        "over: inputs, results, outputs, custom status (docs/payloads.md; restart to change).",
    )
    http_port: int = Field(default=8080, ge=0, le=65535, description="Health and metrics port.")
    shutdown_grace_seconds: float = Field(
        default=25.0,
        ge=0,
        description="On SIGTERM, how long in-flight work may run before it is released to other "
        "workers; keep it below the pod's terminationGracePeriodSeconds.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> WorkerConfig:
        seen: set[str] = set()
        for p in self.orchestrations:
            if p.name in seen:
                raise ValueError(f"orchestration {p.name!r} is listed twice")
            seen.add(p.name)
        return self
