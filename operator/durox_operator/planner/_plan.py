"""One pass decided whole: the registry and its observed children in, a frozen Plan out.

The reconciler reads, calls `plan`, then walks `Plan.steps` in order, stopping at the first
failed call, and reports `Plan.report(...)`. Every choice (which children to write or delete,
which versions to hold, which Events to post, what the status says) is made here, so it is
tested without a cluster.

The status is the one part a plan cannot fix in advance: it reads the Deployments as the
apiserver returns them after the writes (a Deployment just applied has a generation its
controller has not observed yet, so it reports "rolling out"), and it depends on how far the
walk got. `Plan.report` is therefore a pure function of those facts, called at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from durox.worker_config import WorkerConfig
from durox_operator.model import NORMALLY_TRUE, TEMPLATE_ANNOTATION, WARNINGS, Condition, Obj
from durox_operator.planner._children import (
    controlled_by,
    plan_configmap,
    plan_deployment,
    planned_anew,
)
from durox_operator.planner._config import worker_config
from durox_operator.planner._drain import AutoDrain, auto_drain, pinned_outside, with_drain
from durox_operator.planner._drift import drift
from durox_operator.planner._names import InvalidSpec, child_name
from durox_operator.planner._ramp import SafeSeen, StartGate, plan_safe
from durox_operator.planner._replaycheck import DeleteJob, Gate, RunJob, with_replay_check
from durox_operator.planner._replaycheck import Event as CheckEvent
from durox_operator.planner._replaycheck import gate as replay_gate
from durox_operator.planner._rollout import rollout_pending
from durox_operator.planner._spec import allow_version_removal, drain_enabled, spec_of
from durox_operator.planner._status import (
    activation_event,
    condition_events,
    plan_status,
    status_changed,
)
from durox_operator.planner._store import (
    StoreView,
    guard_candidates,
    in_use_lacking,
    registered_versions,
    serving,
    template_pods,
    workers_lack,
)
from durox_operator.planner._versions import (
    Versions,
    desired_versions,
    plan_versions,
    published_versions,
)

Slot = Literal["configmap", "deployment", "drain_configmap", "drain_deployment"]
"""Which of a registry's (at most) four children an observation or a step is about."""

SLOTS: tuple[tuple[Slot, str, bool], ...] = (
    ("configmap", "ConfigMap", False),
    ("deployment", "Deployment", False),
    ("drain_configmap", "ConfigMap", True),
    ("drain_deployment", "Deployment", True),
)
"""(slot, kind, drain pool?) in the order a pass reads them."""


@dataclass(frozen=True)
class Observed:
    """A registry's children as read from the cluster; None where absent.

    `unreadable` is the first read that failed (the children after it were not read): a pass
    that cannot see its children writes nothing."""

    configmap: Obj | None = None
    deployment: Obj | None = None
    drain_configmap: Obj | None = None
    drain_deployment: Obj | None = None
    unreadable: str | None = None
    pods: tuple[Obj, ...] = ()
    """The main pool's pods (its Deployment's selector), for failures the Deployment hides."""
    drain_pods: tuple[Obj, ...] = ()
    store: StoreView | None = None
    """What the store held at the start of the pass (`durox.providers.StoreObservation`);
    None when it was not read (see `store_error`) or not asked for (no store step)."""
    store_error: tuple[str, str] | None = None
    """(StoreObserved reason, message) when the store could not be observed: the pass goes
    on deciding from Kubernetes alone."""
    replay_job: Obj | None = None
    """The replay check's Job under way (`status.replayCheck.job`), if any, and its pods."""
    replay_pods: tuple[Obj, ...] = ()
    now: str = ""
    """The pass's time (RFC 3339), for the replay check's retries; empty: none is due."""
    safe: SafeSeen | None = None
    """The gate instance and the ramp windows read for `planner.reads(registry)`."""

    def with_child(self, slot: Slot, obj: Obj | None) -> Observed:
        change: dict[str, Any] = {slot: obj}
        return dataclasses.replace(self, **change)

    def with_unreadable(self, error: str) -> Observed:
        return dataclasses.replace(self, unreadable=error)

    def with_store(self, store: StoreView | None, error: tuple[str, str] | None = None) -> Observed:
        return dataclasses.replace(self, store=store, store_error=error)

    def with_replay_job(self, job: Obj | None, pods: Sequence[Obj], now: str) -> Observed:
        return dataclasses.replace(self, replay_job=job, replay_pods=tuple(pods), now=now)

    def with_safe(self, seen: SafeSeen | None) -> Observed:
        return dataclasses.replace(self, safe=seen)

    def with_pods(self, pods: Sequence[Obj], drain: bool = False) -> Observed:
        if drain:
            return dataclasses.replace(self, drain_pods=tuple(pods))
        return dataclasses.replace(self, pods=tuple(pods))


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the registry."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Apply:
    """Server-side apply `obj`; post `event` once it is written."""

    slot: Slot
    obj: Mapping[str, Any]
    event: Event


@dataclass(frozen=True)
class HandOver:
    """Server-side apply `obj` under a field manager of its own (`REPLICAS_MANAGER`), without
    force: it holds only fields the operator is about to stop applying, at their current
    values. Server-side apply removes a field when its only manager stops applying it (a
    Deployment's `replicas` would fall back to 1); a second owner keeps the value in place
    for whoever takes the field over next (an HPA's write moves it to the HPA). A conflict
    means another manager owns the field already: then there is nothing to hand over."""

    slot: Slot
    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """Delete a child this registry controls, if it is still the object seen (`uid`); post
    `event` only when the call removed it."""

    slot: Slot
    kind: str
    namespace: str
    name: str
    uid: str
    event: Event


Step = Apply | HandOver | Delete | Event | StartGate | RunJob | DeleteJob


@dataclass(frozen=True)
class Report:
    """What a pass writes at its end: the status (None when unchanged) and the Events that
    its condition changes deserve."""

    status: Mapping[str, Any] | None
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Plan:
    """Everything one pass will do for `registry`, decided before the first write."""

    registry: Obj
    steps: tuple[Step, ...] = ()
    """Writes and Events, in order: the worker file before the Deployment that mounts it."""
    refused: str | None = None
    """Why nothing is written (a child's name is taken by someone else's object, or a child
    could not be read); reported as ApplyFailed."""
    invalid: InvalidSpec | None = None
    """The spec cannot be rendered: nothing is written, the status says InvalidSpec."""
    config: WorkerConfig | None = None
    """The main pool's worker file this pass publishes."""
    versions: Versions | None = None
    """What that file activates and holds."""
    drain: bool = False
    """Whether a drain pool is wanted."""
    published_after: int = 0
    """How many steps must succeed before the worker file counts as published."""
    store: StoreView | None = None
    """The store observation the pass decided from (None: decided from Kubernetes alone)."""
    store_error: tuple[str, str] | None = None
    drain_state: Mapping[str, Any] | None = None
    """What the store says of the drain: `{pinned, emptySince}` for `status.drain`."""
    rolling: bool = False
    """Workers of another pod template may still serve (their records differ from the spec's)."""
    guard: Mapping[str, int] | None = None
    """NAME@version -> instances not ended, for versions in use that a worker of the new pod
    template lacks: the rollout is paused (the removal guard). None when it does not hold."""
    replay: Gate | None = None
    """The replay check of a new image (`_replaycheck`); None when the pass did not get that
    far (the status then keeps the previous record)."""
    rollout: Mapping[str, Any] | None = None
    """`status.rollout`: the gate, the ramps, the versions they replaced (planner/_ramp.py)."""
    held_back: tuple[str, str] | None = None
    """(Degraded reason, message) when a gate failed or a ramp was rolled back."""

    @property
    def applies(self) -> tuple[Apply, ...]:
        return tuple(s for s in self.steps if isinstance(s, Apply))

    @property
    def deletes(self) -> tuple[Delete, ...]:
        return tuple(s for s in self.steps if isinstance(s, Delete))

    @property
    def events(self) -> tuple[Event, ...]:
        """Events posted whatever the outcome of a write (each write carries its own)."""
        return tuple(s for s in self.steps if isinstance(s, Event))

    def report(
        self, after: Observed, now: str, completed: int | None = None, failure: str | None = None
    ) -> Report:
        """The status and condition Events once the steps have run.

        `after` holds the children as the cluster returned them (apply results, or a fresh
        read after a failure); `completed` is how many steps succeeded before `failure` (all
        of them when there is no failure). After a failure the worker file may still be the
        old one, so the status keeps reporting what the previous pass published."""
        if self.invalid is not None:
            status = plan_status(self.registry, None, now, error=self.invalid)
        else:
            failure = failure or self.refused
            done = len(self.steps) if completed is None else completed
            published = self.refused is None and done >= self.published_after
            status = plan_status(
                self.registry,
                after.deployment,
                now,
                config=self.config if published else None,
                apply_error=failure,
                versions=self.versions if published else None,
                drain=after.drain_deployment if self.drain else None,
                pods=after.pods,
                drain_pods=after.drain_pods if self.drain else (),
                store=self.store,
                store_error=self.store_error,
                guard=self.guard,
                rolling=self.rolling,
                drain_state=self.drain_state,
                rollout=self.rollout,
                held_back=self.held_back,
            )
        status = with_replay_check(self.registry, status, self.replay, now)
        if not status_changed(self.registry, status):
            return Report(None, ())
        return Report(status, _condition_events(condition_events(self.registry, status)))


def _condition_events(changed: Sequence[Condition]) -> tuple[Event, ...]:
    """One Event per reason. Several conditions often flip for one cause (a failed replay check
    sets Degraded=True and Progressing=False, both for ReplayCheckFailed); a reader of
    `kubectl get events` should see that cause once, as a Warning if any of its flips is bad
    news, with the message of the flip that is, and every flip named in front of it (that one
    first)."""
    by_reason: dict[str, list[tuple[bool, Condition]]] = {}
    for cond in changed:
        bad = cond.reason in WARNINGS and (cond.status == "True") != (cond.type in NORMALLY_TRUE)
        by_reason.setdefault(cond.reason, []).append((bad, cond))
    events = []
    for reason, flips in by_reason.items():
        bad = any(b for b, _ in flips)
        lead = next(c for b, c in flips if b == bad)
        names = ", ".join(
            f"{c.type}={c.status}" for c in (lead, *(c for _, c in flips if c is not lead))
        )
        events.append(Event("Warning" if bad else "Normal", reason, f"{names}: {lead.message}"))
    return tuple(events)


def plan(registry: Obj, observed: Observed) -> Plan:
    """Decide one pass for `registry`, whose children the cluster holds as `observed`."""
    auto = auto_drain(registry, observed.store, observed.drain_deployment is not None)
    if auto is not None:  # Auto mode decides `enabled` for this pass from the store
        registry = with_drain(registry, auto.wanted)
    spec = spec_of(registry)
    drain = drain_enabled(spec)
    try:
        # The pod template reads only start-up settings, which neither held versions nor the
        # drain pool's replay range change, so the main file plans both pools' Deployments.
        # The drain file is built up front so that an unusable drain range refuses the pass.
        base = worker_config(registry)
        drain_base = worker_config(registry, drain=True) if drain else None
    except InvalidSpec as exc:
        return Plan(registry, invalid=exc, store=observed.store, store_error=observed.store_error)
    refused = observed.unreadable or _foreign(registry, observed, drain)
    if refused is not None:
        return Plan(
            registry,
            refused=refused,
            drain=drain,
            store=observed.store,
            store_error=observed.store_error,
        )

    desired_dep = plan_deployment(registry, base)
    desired_drain = plan_deployment(registry, base, drain=True) if drain else None
    # A new image or app replays the store's histories in a Job before any worker runs it.
    check = replay_gate(
        registry,
        desired_dep,
        observed.deployment,
        observed.replay_job,
        observed.replay_pods,
        observed.now,
    )
    # Old workers may lack a new version's handlers: while any may still serve (in either
    # pool), the file keeps the versions the ConfigMap activates now.
    pending = rollout_pending(spec, desired_dep, observed.deployment)
    if desired_drain is not None:
        pending = pending or rollout_pending(
            spec, desired_drain, observed.drain_deployment, drain=True
        )
    previous = published_versions(observed.configmap)
    store = observed.store
    pods = observed.pods + (observed.drain_pods if drain else ())
    # The new template's pods, by the digest each pod carries; a record is matched to its pod
    # by node id (the pod's name), so "the new template's workers" are known, not guessed.
    template = template_pods(observed.pods, _template_hash(desired_dep))
    if desired_drain is not None:
        template |= template_pods(observed.drain_pods, _template_hash(desired_drain))
    guard = None
    if store is not None and pending is not None and not allow_version_removal(spec):
        # The removal guard: a worker of the new template lacks a version instances still
        # need; stop the rollout. A record no listed pod claims is judged as new (the old
        # workers served every instance, so whoever lacks one is new).
        guard = in_use_lacking(store, guard_candidates(store, pods, template)) or None
    if guard is not None:
        desired_dep = plan_deployment(registry, base, pause=True)
    learned = None if store is None else registered_versions(serving(store, pods))
    workers_say = None
    if pending is None and store is not None and previous is not None:
        # Kubernetes says every worker runs the new template; activation waits for the
        # workers' own word (their capability records) on each version that changes.
        wanted = desired_versions(spec, learned)
        changing = {n: v for n, v in wanted.items() if previous.get(n) != v}
        workers_say = workers_lack(store, changing, pods, template)
    versions = plan_versions(spec, previous, pending or workers_say, learned)
    if workers_say is not None and versions.held:
        versions = dataclasses.replace(versions, workers_say=workers_say)
    digest = str(desired_dep["metadata"]["annotations"][TEMPLATE_ANNOTATION])
    safe = plan_safe(registry, previous, versions, store, observed.safe, digest, learned)
    versions = safe.versions
    config = worker_config(registry, versions) if versions.held else base

    # The file first: new pods must start with the held versions, never the new ones.
    steps: list[Step] = [Event("Normal", r, m) for r, m in (auto.events if auto else ())]
    steps += _ensure("configmap", plan_configmap(registry, config, versions), observed)
    published_after = len(steps)
    steps += safe.starts
    steps += [Event("Warning" if t == "Warning" else "Normal", r, m) for t, r, m in safe.events]
    drain_state = _drain_state(registry, auto, store)
    activated = activation_event(previous, versions)
    if activated is not None:
        severity, message = activated
        steps.append(
            Event("Warning" if severity == "Warning" else "Normal", "ActivatedVersions", message)
        )
    waiting = _waiting_event(registry, versions)
    if waiting is not None:
        steps.append(waiting)
    steps += _ensure("deployment", desired_dep, observed)
    if drain_base is not None and desired_drain is not None:
        if versions.held:
            drain_base = worker_config(registry, versions, drain=True)
        drain_cm = plan_configmap(registry, drain_base, versions, drain=True)
        steps += _ensure("drain_configmap", drain_cm, observed)
        steps += _ensure("drain_deployment", desired_drain, observed)
    else:
        steps += _remove(registry, "drain_deployment", observed)
        steps += _remove(registry, "drain_configmap", observed)
    steps = _with_check(steps, check)
    return Plan(
        registry,
        steps=tuple(steps),
        config=config,
        versions=versions,
        drain=drain,
        published_after=published_after,
        store=store,
        store_error=observed.store_error,
        guard=guard,
        rollout=safe.status,
        held_back=safe.degraded,
        # The workers' sets differ on purpose while a rollout runs or a version is held.
        # (A NAME held by a gate, a ramp or a rollback is not: every worker runs one template.)
        rolling=pending is not None or any(n not in versions.reasons for n in versions.held),
        drain_state=drain_state,
        replay=check,
    )


def _with_check(steps: list[Step], check: Gate) -> list[Step]:
    """The check's own steps last (so `published_after` still counts the same steps); while it
    holds, no write to either worker Deployment (the old workers keep serving as they are)."""
    held: tuple[Slot, ...] = ("deployment", "drain_deployment") if check.hold else ()
    own: list[Step] = [
        Event(s.type, s.reason, s.message) if isinstance(s, CheckEvent) else s for s in check.steps
    ]
    return [s for s in steps if not (isinstance(s, Apply) and s.slot in held)] + own


def _template_hash(deployment: Obj) -> str:
    return str(deployment["metadata"]["annotations"][TEMPLATE_ANNOTATION])


def _waiting_event(registry: Obj, versions: Versions) -> Event | None:
    """`WaitingForWorkers` when a version waits for the workers' word with a reason the
    status does not say yet (the rollout is done; `describe` shows why it still waits)."""
    if versions.workers_say is None:
        return None
    conditions = registry.get("status", {}).get("conditions", [])
    said = next((c.get("message", "") for c in conditions if c.get("type") == "Progressing"), "")
    if versions.workers_say in str(said):
        return None
    return Event("Normal", "WaitingForWorkers", str(versions.holding_message()))


def _drain_state(
    registry: Obj, auto: AutoDrain | None, store: StoreView | None
) -> dict[str, Any] | None:
    if auto is not None:
        state: dict[str, Any] = {"mode": "Auto", "pinned": dict(auto.pinned)}
        if auto.empty_since is not None:
            state["emptySince"] = auto.empty_since
        return state
    if store is not None:
        return {"mode": "Manual", "pinned": pinned_outside(registry, store)}
    return None


def _foreign(registry: Obj, observed: Observed, drain: bool) -> str | None:
    """The first child this pass would write whose name is taken by an object this registry
    does not control: we never take over someone else's ConfigMap or Deployment."""
    for slot, kind, of_drain in SLOTS:
        found: Obj | None = getattr(observed, slot)
        if (drain or not of_drain) and found is not None and not controlled_by(found, registry):
            return (
                f"{kind} {child_name(registry, of_drain)} already exists and is not controlled "
                "by this registry; delete it or rename the registry"
            )
    return None


def replicas_released(desired: Obj, observed: Obj) -> dict[str, Any] | None:
    """The hand-over apply for a Deployment whose plan no longer sets `replicas` while the
    cluster's copy has a count (the user unset `spec.replicas` for an autoscaler): the
    count as it is, and nothing else. None when there is nothing to hand over."""
    if desired["kind"] != "Deployment" or "replicas" in desired["spec"]:
        return None
    count = observed.get("spec", {}).get("replicas")
    if count is None:
        return None
    meta = desired["metadata"]
    return {
        "apiVersion": desired["apiVersion"],
        "kind": desired["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": count},
    }


def _ensure(slot: Slot, desired: dict[str, Any], observed: Observed) -> list[Step]:
    """Apply `desired` when the cluster's copy differs from it: absent (Created), planned
    differently (Updated), or edited by someone else since (Restored, naming each field put
    back and what it held)."""
    have: Obj | None = getattr(observed, slot)
    kind, name = desired["kind"], desired["metadata"]["name"]
    if have is None:
        event = Event("Normal", f"Created{kind}", f"created {kind} {name}")
    elif planned_anew(desired, have):
        event = Event("Normal", f"Updated{kind}", f"updated {kind} {name}")
        released = replicas_released(desired, have)
        if released is not None:
            return [HandOver(slot, released), Apply(slot, desired, event)]
    else:
        drifted = drift(desired, have)
        if not drifted:
            return []
        restored = ", ".join(drifted)
        event = Event("Normal", f"Restored{kind}", f"restored {kind} {name}: {restored}"[:1000])
    return [Apply(slot, desired, event)]


def _remove(registry: Obj, slot: Slot, observed: Observed) -> list[Step]:
    """Delete a child that is no longer wanted, if it exists and this registry controls it."""
    have: Obj | None = getattr(observed, slot)
    if have is None or not controlled_by(have, registry):
        return []
    if have["metadata"].get("deletionTimestamp"):
        return []  # already going
    kind, drain = next((k, d) for s, k, d in SLOTS if s == slot)
    name = child_name(registry, drain)
    event = Event("Normal", f"Deleted{kind}", f"deleted {kind} {name}")
    namespace = registry["metadata"]["namespace"]
    return [Delete(slot, kind, namespace, name, have["metadata"]["uid"], event)]
