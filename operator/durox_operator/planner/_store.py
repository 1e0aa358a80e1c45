"""What the store says, as the planner reads it: the workers' own word and the instances left.

The reconciler hands the planner a `durox.providers.StoreObservation` (one read per pass). The
planner does not import it: loading `durox.providers` loads the stores' drivers, and the planner
stays importable without them. It reads the observation through the structural types below,
which the runtime's frozen records satisfy as they are (mypy checks that where the reconciler
passes one in).

Every function here is a pure function of the observation, the pods Kubernetes listed and the
versions wanted; none reads a clock (ages are the store's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import semver

from durox_operator.model import TEMPLATE_ANNOTATION, Obj


class WorkerView(Protocol):
    """A capability record (`durox.providers.WorkerRecord`)."""

    @property
    def worker_id(self) -> str: ...
    @property
    def node_id(self) -> str | None: ...
    @property
    def pool(self) -> str: ...
    @property
    def replay_min(self) -> str: ...
    @property
    def replay_max(self) -> str: ...
    @property
    def activities(self) -> Sequence[str]: ...
    @property
    def session_activities(self) -> Sequence[str]: ...
    @property
    def orchestrations(self) -> Mapping[str, Mapping[str, object]]: ...

    def has_version(self, name: str, version: str) -> bool: ...


class ObservedWorkerView(Protocol):
    """`durox.providers.ObservedWorker`: a record, its age by the store's clock, live or not."""

    @property
    def record(self) -> WorkerView: ...
    @property
    def heartbeat_age(self) -> timedelta: ...
    @property
    def live(self) -> bool: ...


class UsageView(Protocol):
    """`durox.providers.VersionUsage`: the instances of one NAME@version not ended."""

    @property
    def orchestration_name(self) -> str: ...
    @property
    def orchestration_version(self) -> str: ...
    @property
    def instances(self) -> int: ...
    @property
    def by_pin(self) -> Mapping[str | None, int]: ...
    @property
    def oldest_instance_id(self) -> str: ...
    @property
    def oldest_created_at(self) -> datetime: ...


class StoreView(Protocol):
    """`durox.providers.StoreObservation`."""

    @property
    def observed_at(self) -> datetime: ...
    @property
    def versions(self) -> Sequence[UsageView]: ...
    @property
    def workers(self) -> Sequence[ObservedWorkerView]: ...


def key(name: str, version: str) -> str:
    return f"{name}@{version}"


def pod_names(pods: Sequence[Obj]) -> frozenset[str]:
    return frozenset(str(p.get("metadata", {}).get("name", "")) for p in pods)


def serving(store: StoreView, pods: Sequence[Obj] = ()) -> list[WorkerView]:
    """The workers that may take work now: every live record, and a stale one whose pod
    Kubernetes still lists (a pod that is terminating counts until its record goes)."""
    present = pod_names(pods)
    return [
        w.record
        for w in store.workers
        if w.live or (w.record.node_id is not None and w.record.node_id in present)
    ]


def template_pods(pods: Sequence[Obj], template_hash: str) -> frozenset[str]:
    """The names of the pods (not terminating) that run the pod template `template_hash`
    (the `durox.dev/template-hash` annotation the operator puts on each template)."""
    return frozenset(
        str(p["metadata"].get("name", ""))
        for p in pods
        if "metadata" in p
        and not p["metadata"].get("deletionTimestamp")
        and p["metadata"].get("annotations", {}).get(TEMPLATE_ANNOTATION) == template_hash
    )


def matched(workers: Sequence[WorkerView], pods: Sequence[Obj]) -> bool:
    """Whether the records can be matched to pods: some record's node id names a pod of the
    registry (its workers publish their pod's name, as the operator's pod spec has them do).
    Workers run outside Kubernetes, or named otherwise, leave the planner to infer."""
    listed = pod_names(pods)
    return any(w.node_id is not None and w.node_id in listed for w in workers)


def of_template(workers: Sequence[WorkerView], template: frozenset[str]) -> list[WorkerView]:
    """The records of the pods in `template`."""
    return [w for w in workers if w.node_id is not None and w.node_id in template]


def guard_candidates(
    store: StoreView, pods: Sequence[Obj], template: frozenset[str] | None
) -> list[WorkerView]:
    """The records the removal guard judges: those of the new template's pods, and those no
    listed pod claims (inferred: the old workers served every instance, so whoever lacks a
    version in use is new). A record of a pod of another (older) template is never one: an
    old worker that lacks a version in use is a stranded-instance problem, not a reason to
    stop the rollout that may bring the code back."""
    workers = serving(store, pods)
    if template is None:
        return workers
    listed = pod_names(pods)
    return [w for w in workers if w.node_id not in listed or w.node_id in template]


def handler_set(worker: WorkerView) -> tuple[frozenset[str], frozenset[str]]:
    """(activities, session activities) a worker registers."""
    return frozenset(worker.activities), frozenset(worker.session_activities)


def workers_lack(
    store: StoreView,
    wanted: Mapping[str, str],
    pods: Sequence[Obj] = (),
    template: frozenset[str] | None = None,
) -> str | None:
    """Why the workers do not all say they can run `wanted` (NAME -> version), or None.

    Every worker that may take work must register each NAME@version wanted, and all of them
    the same activity and session handlers: the new versions' code may call a handler the
    workers that registered the version before the new image (or a worker built apart) lack.
    No serving worker at all is no word either.

    `template` names the pods of the new template (both pools'). When the records can be
    matched to pods (`matched`), every one of those pods must have a record of its own, and
    the handlers every worker must register are the ones the new template's workers do."""
    workers = serving(store, pods)
    if not wanted:
        return None
    if not workers:
        return "no live worker has reported to the store yet"
    exact = template is not None and matched(workers, pods)
    reference: tuple[frozenset[str], frozenset[str]] | None = None
    if exact and template is not None:
        reporting = frozenset(w.node_id for w in of_template(workers, template))
        silent = sorted(template - reporting)
        if silent:
            return (
                f"{len(silent)} of {len(template)} pods of the new template have no live "
                f"worker record yet ({', '.join(silent[:3])})"
            )
        sets = {handler_set(w) for w in of_template(workers, template)}
        if len(sets) == 1:
            (reference,) = sets
    for name, version in sorted(wanted.items()):
        lacking = sorted(w.worker_id for w in workers if not w.has_version(name, version))
        if lacking:
            return (
                f"{len(lacking)} of {len(workers)} live workers do not register "
                f"{key(name, version)} ({', '.join(lacking[:3])})"
            )
    sets = {handler_set(w) for w in workers}
    if reference is not None and sets != {reference}:
        others = [w for w in workers if handler_set(w) != reference]
        acts = frozenset.union(*(handler_set(w)[0] ^ reference[0] for w in others))
        sess = frozenset.union(*(handler_set(w)[1] ^ reference[1] for w in others))
        differ = ", ".join(sorted(acts | {f"session:{s}" for s in sess}))
        ids = ", ".join(sorted(w.worker_id for w in others)[:3])
        return (
            f"live workers register different activity or session handlers ({differ}) than "
            f"the new template's: {ids}"
        )
    if len(sets) > 1:
        all_acts = [a for a, _ in sets]
        all_sess = [x for _, x in sets]
        acts = frozenset.union(*all_acts) - frozenset.intersection(*all_acts)
        sess = frozenset.union(*all_sess) - frozenset.intersection(*all_sess)
        differ = ", ".join(sorted(acts | {f"session:{s}" for s in sess}))
        return f"live workers register different activity or session handlers ({differ})"
    return None


def _in_range(pin: str | None, worker: WorkerView) -> bool:
    if pin is None:
        return True  # written before pinning: every worker fetches it
    try:
        v = semver.Version.parse(pin)
        return bool(
            semver.Version.parse(worker.replay_min) <= v <= semver.Version.parse(worker.replay_max)
        )
    except ValueError:
        return False


@dataclass(frozen=True)
class Stranded:
    """Instances not ended that no serving worker can run: per NAME@version and engine pin."""

    counts: Mapping[tuple[str, str | None], int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def message(self) -> str:
        parts = [
            f"{n} of {k} pinned to engine {pin or 'none'}"
            for (k, pin), n in sorted(
                self.counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
            )
        ]
        return f"{self.total} instances no live worker can run: " + "; ".join(parts)


def stranded(store: StoreView, pods: Sequence[Obj] = ()) -> Stranded:
    """Instances whose NAME@version no serving worker registers, or whose engine pin lies
    outside the replay range of every worker that registers it."""
    workers = serving(store, pods)
    counts: dict[tuple[str, str | None], int] = {}
    for usage in store.versions:
        name, version = usage.orchestration_name, usage.orchestration_version
        able = [w for w in workers if w.has_version(name, version)]
        for pin, n in usage.by_pin.items():
            if n > 0 and not any(_in_range(pin, w) for w in able):
                counts[(key(name, version), pin)] = n
    return Stranded(counts)


def in_use_lacking(store: StoreView, candidates: Sequence[WorkerView]) -> dict[str, int]:
    """NAME@version -> instances not ended, for each version in use some of `candidates` lack."""
    out: dict[str, int] = {}
    for usage in store.versions:
        name, version = usage.orchestration_name, usage.orchestration_version
        if usage.instances > 0 and any(not w.has_version(name, version) for w in candidates):
            out[key(name, version)] = usage.instances
    return out


def registered_versions(workers: Sequence[WorkerView]) -> dict[str, set[str]]:
    """NAME -> versions any of `workers` registers."""
    out: dict[str, set[str]] = {}
    for w in workers:
        for name, entry in w.orchestrations.items():
            versions = entry.get("versions", [])
            if isinstance(versions, list):
                out.setdefault(name, set()).update(str(v) for v in versions)
    return out


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
