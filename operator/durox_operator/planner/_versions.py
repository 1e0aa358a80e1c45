"""Which version each NAME's new instances start on, and when a new one must wait."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import semver

from durox_operator.model import ACTIVE_ANNOTATION, Obj
from durox_operator.planner._spec import OrchestrationSpec, RegistrySpec, policy_of

Learned = Mapping[str, set[str]]
"""NAME -> the versions live workers register (their capability records), when the store was
read: what stands in for a `versions` list the spec leaves out."""


def registered(orchestration: OrchestrationSpec, learned: Learned | None = None) -> set[str]:
    """The versions of one NAME the image registers: the spec's list, else the workers' word."""
    if "versions" in orchestration:
        return set(orchestration["versions"])
    return set((learned or {}).get(orchestration["name"], set()))


def active_version(orchestration: OrchestrationSpec, learned: Learned | None = None) -> str | None:
    """The version new instances of one NAME start on under its policy; None when it cannot
    be known (`latest` with no `versions` list and no worker's word yet)."""
    if policy_of(orchestration) == "exact":
        return str(orchestration["version"])
    versions = [semver.Version.parse(v) for v in registered(orchestration, learned)]
    return str(max(versions)) if versions else None


def desired_versions(spec: RegistrySpec, learned: Learned | None = None) -> dict[str, str]:
    """The version each NAME should start new instances on, by the spec's policies (and, for
    a NAME without a `versions` list, what the workers register)."""
    out: dict[str, str] = {}
    for o in spec.get("orchestrations", []):
        version = active_version(o, learned)
        if version is not None:
            out[o["name"]] = version
    return out


def format_versions(versions: Mapping[str, str]) -> str:
    """`NAME@VERSION` pairs, sorted, comma-separated; `-` when there are none."""
    pairs = sorted(f"{name}@{version}" for name, version in versions.items())
    return ",".join(pairs) if pairs else "-"


def parse_versions(text: str) -> dict[str, str]:
    """The inverse of `format_versions`; malformed pairs are skipped."""
    found: dict[str, str] = {}
    for pair in text.split(","):
        name, sep, version = pair.strip().rpartition("@")
        if sep and name and version:
            found[name] = version
    return found


def active_versions(spec: RegistrySpec) -> str:
    """The printer column for a spec taken at its word (no version held back)."""
    return format_versions(desired_versions(spec))


def published_versions(configmap: Obj | None) -> dict[str, str] | None:
    """What an observed worker ConfigMap activates, from its annotation; None when unknown
    (no ConfigMap yet, or one written before the operator recorded it)."""
    if configmap is None:
        return None
    text = configmap.get("metadata", {}).get("annotations", {}).get(ACTIVE_ANNOTATION)
    return None if text is None else parse_versions(str(text))


@dataclass(frozen=True)
class Versions:
    """Which version each NAME's new instances start on, and which wait for a rollout.

    A NAME is *held* when its desired version differs from the one the ConfigMap activates
    while workers of an older pod template may still be serving: those workers may lack the
    new version's handlers, so the file pins the old version (`exact`) until every worker runs
    the new template. Workers apply policies live, so holding never touches the pod template.
    """

    desired: Mapping[str, str]
    """NAME -> the version the spec asks for."""
    active: Mapping[str, str]
    """NAME -> the version the published file activates (held NAMEs keep their old one)."""
    held: tuple[str, ...] = ()
    """NAMEs pinned at their previously active version, waiting for the rollout."""
    unheld: Mapping[str, str] = field(default_factory=dict)
    """NAME -> previously active version the new spec no longer registers, so the NAME could
    not be held and moved at once."""
    waiting_for: str | None = None
    """Why versions wait (the rollout still under way), when any changed during one."""
    workers_say: str | None = None
    """Why versions wait once the rollout is done: what the workers' capability records
    lack (a version, or the same handlers on every worker)."""
    reasons: Mapping[str, str] = field(default_factory=dict)
    """NAME -> why it is held though every worker can run its new version: a gate that has
    not passed, a ramp under way or rolled back, a rollback by hand (planner/_ramp.py)."""
    ramps: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """NAME -> (new version, percent): a held NAME whose new version takes that share of new
    starts (the worker file's `ramp`)."""

    def listing(self) -> list[dict[str, str]]:
        """`status.versions`: one entry per NAME, sorted."""
        return [
            {"name": name, "active": self.active[name], "desired": self.desired[name]}
            for name in sorted(self.desired)
        ]

    def holding_message(self) -> str | None:
        """What waits and why; None when nothing does."""
        parts = [
            f"holding {n}@{self.active[n]} (wants {self.desired[n]}): {why}"
            for n, why in sorted(self.reasons.items())
        ]
        rolling = [n for n in self.held if n not in self.reasons]
        if rolling:
            waits = ", ".join(f"{n}@{self.active[n]} (wants {self.desired[n]})" for n in rolling)
            if self.workers_say is not None:
                parts.append(
                    f"holding {waits} until every live worker registers it with the same "
                    f"handlers: {self.workers_say}"
                )
            else:
                parts.append(f"holding {waits} until every worker runs the new pod template")
        if self.unheld:
            moved = ", ".join(
                f"{n}@{self.desired[n]} (the spec no longer registers {old})"
                for n, old in sorted(self.unheld.items())
            )
            parts.append(f"cannot hold {moved}: activated during the rollout")
        return "; ".join(parts) if parts else None


def plan_versions(
    spec: RegistrySpec,
    previous: Mapping[str, str] | None,
    rolling: str | None,
    learned: Learned | None = None,
) -> Versions:
    """Decide what the ConfigMap activates.

    `previous` is what the observed ConfigMap activates (None on a first creation or when
    unknown); `rolling` says why workers of an older pod template may still serve (None when
    every worker runs the planned template). Outside a rollout the spec takes effect at once.
    """
    desired = desired_versions(spec, learned)
    if rolling is None or previous is None:
        return Versions(desired=desired, active=dict(desired))
    known = {o["name"]: registered(o, learned) for o in spec.get("orchestrations", [])}
    active: dict[str, str] = {}
    held: list[str] = []
    unheld: dict[str, str] = {}
    for name, want in desired.items():
        old = previous.get(name)
        if old is None or old == want:
            active[name] = want  # a new NAME, or one that does not change
        elif old in known[name]:
            active[name] = old
            held.append(name)
        else:
            active[name] = want
            unheld[name] = old
    return Versions(
        desired=desired,
        active=active,
        held=tuple(sorted(held)),
        unheld=unheld,
        waiting_for=rolling if held or unheld else None,
    )
