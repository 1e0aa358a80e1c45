"""Semantic versions, inclusive ranges and the policy that picks a version for a new execution.

A version is chosen exactly when an execution starts (a client start, a sub-orchestration, a
`continue_as_new`) and never while it runs; this module holds that rule as pure functions so it
can be tested exhaustively.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """Which registered version new executions get: the latest, or one exact version."""

    exact_version: semver.Version | None = None

    @staticmethod
    def latest() -> VersionPolicy:
        return VersionPolicy(None)

    @staticmethod
    def exact(version: str | semver.Version) -> VersionPolicy:
        return VersionPolicy(parse_version(version))

    @property
    def is_latest(self) -> bool:
        return self.exact_version is None

    def __str__(self) -> str:
        return "latest" if self.exact_version is None else f"exact {self.exact_version}"


def choose_version(
    registered: Iterable[semver.Version],
    policy: VersionPolicy,
    requested: str | semver.Version | None,
) -> semver.Version | None:
    """The version a new execution runs, or None when this worker cannot run what is asked.

    An explicit request wins over the policy; the policy `latest` takes the highest registered
    version, `exact` takes its version only if it is registered here.
    """
    versions = set(registered)
    if requested is not None:
        want = parse_version(requested)
        return want if want in versions else None
    if policy.exact_version is not None:
        return policy.exact_version if policy.exact_version in versions else None
    return max(versions) if versions else None
