"""Semantic versions, inclusive ranges and the policy that picks a version for a new execution.

A version is chosen exactly when an execution starts (a client start, a sub-orchestration, a
`continue_as_new`) and never while it runs; this module holds that rule as pure functions so it
can be tested exhaustively.

A policy may carry a ramp: a new version gets a share of the starts the policy decides, the
instances chosen by a stable hash of their id (`ramp_bucket`), so an instance keeps its side
from one execution to the next and, as the share grows, only ever moves to the new version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import semver

from durox.errors import ConfigurationError


def parse_version(value: str | semver.Version) -> semver.Version:
    if isinstance(value, semver.Version):
        return value
    try:
        return semver.Version.parse(value)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"{value!r} is not a semantic version (expected MAJOR.MINOR.PATCH)"
        ) from exc


@dataclass(frozen=True, slots=True, init=False)
class SemverRange:
    """An inclusive range of versions, `SemverRange("0.0.0", "99.0.0")`."""

    min: semver.Version
    max: semver.Version

    def __init__(self, min: str | semver.Version, max: str | semver.Version) -> None:
        lo, hi = parse_version(min), parse_version(max)
        if lo > hi:
            raise ConfigurationError(f"version range min {lo} is above max {hi}")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    def contains(self, version: str | semver.Version) -> bool:
        v = parse_version(version)
        return self.min <= v <= self.max

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, str | semver.Version):
            return False
        return self.contains(version)

    def bounds(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """The range as (major, minor, patch) tuples, the form stores filter on."""
        return (
            (self.min.major, self.min.minor, self.min.patch),
            (self.max.major, self.max.minor, self.max.patch),
        )

    def __str__(self) -> str:
        return f"[{self.min}, {self.max}]"


BUCKETS = 10_000
"""Ramp shares are counted in hundredths of a percent."""


def ramp_bucket(instance_id: str) -> int:
    """The instance's place in `range(BUCKETS)`: a stable hash of its id (the same in every
    process and release), so a ramp's choice for it never changes while the share stays."""
    digest = hashlib.sha256(instance_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True, init=False)
class Ramp:
    """`version` gets `percent` of the starts a policy decides (0 to 100, two decimals)."""

    version: semver.Version
    percent: float

    def __init__(self, version: str | semver.Version, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ConfigurationError(f"a ramp's percent must be within 0 and 100, not {percent}")
        object.__setattr__(self, "version", parse_version(version))
        object.__setattr__(self, "percent", float(percent))

    def takes(self, instance_id: str) -> bool:
        """Whether this instance's starts go to the ramped version."""
        return ramp_bucket(instance_id) < round(self.percent * BUCKETS / 100)

    def __str__(self) -> str:
        return f"ramp {self.version} at {self.percent:g}%"


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """Which registered version new executions get: the latest, or one exact version; with a
    `ramp`, a new version gets a share of them (see `choose_version`)."""

    exact_version: semver.Version | None = None
    ramp: Ramp | None = None

    @staticmethod
    def latest() -> VersionPolicy:
        return VersionPolicy(None)

    @staticmethod
    def exact(version: str | semver.Version) -> VersionPolicy:
        return VersionPolicy(parse_version(version))

    def with_ramp(self, version: str | semver.Version, percent: float) -> VersionPolicy:
        """This policy with `version` ramped to `percent` of its starts."""
        ramp = Ramp(version, percent)
        if ramp.version == self.exact_version:
            raise ConfigurationError(f"a ramp to {ramp.version} beside a pin to the same version")
        return VersionPolicy(self.exact_version, ramp)

    @property
    def is_latest(self) -> bool:
        return self.exact_version is None

    def __str__(self) -> str:
        base = "latest" if self.exact_version is None else f"exact {self.exact_version}"
        return base if self.ramp is None else f"{base}, {self.ramp}"


def choose_version(
    registered: Iterable[semver.Version],
    policy: VersionPolicy,
    requested: str | semver.Version | None,
    instance_id: str = "",
) -> semver.Version | None:
    """The version a new execution of `instance_id` runs, or None when this worker cannot run
    what is asked.

    An explicit request wins over the policy; the policy `latest` takes the highest registered
    version, `exact` takes its version only if it is registered here. A ramp (if its version is
    registered here) takes the instances its share picks (`Ramp.takes`); the others get what
    the policy picks among the other versions, and the ramped version only if there is none.
    """
    versions = set(registered)
    if requested is not None:
        want = parse_version(requested)
        return want if want in versions else None
    ramp = policy.ramp
    if ramp is not None and ramp.version in versions:
        if ramp.takes(instance_id):
            return ramp.version
        others = versions - {ramp.version}
        rest = _by_policy(others, policy)
        if rest is not None or policy.exact_version is not None:
            return rest
        return ramp.version
    return _by_policy(versions, policy)


def _by_policy(versions: set[semver.Version], policy: VersionPolicy) -> semver.Version | None:
    if policy.exact_version is not None:
        return policy.exact_version if policy.exact_version in versions else None
    return max(versions) if versions else None
