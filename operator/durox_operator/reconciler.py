"""One reconcile pass: read, plan, walk the plan, report. The only place that sequences I/O.

Level-triggered: it is run for every event of a registry or of a Deployment it owns, and
each run recomputes everything from the current objects. Running it twice in a row writes
nothing the second time: children carry the hash of their planned content, and status is
patched only when the planned status differs from the stored one.

With a `ChildCache` the children and pods are read from the operator's own watches, once the
cache is warm: a pass that finds nothing to do costs one request (the registry's GET).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from durox_operator import planner, rollout_io
from durox_operator.cache import ChildCache
from durox_operator.kube import Kube, KubeError
from durox_operator.metrics import OperatorMetrics, Snapshot
from durox_operator.model import REPLICAS_MANAGER, Obj
from durox_operator.store import StoreObserver, StoreUnobservable

logger = logging.getLogger(__name__)


class Recorder(Protocol):
    """Posts a Kubernetes Event about the registry (`Kube.post_event` in production)."""

    def __call__(self, registry: Obj, type: str, reason: str, message: str) -> None: ...


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        record: Recorder,
        stores: StoreObserver | None = None,
        metrics: OperatorMetrics | None = None,
        *,
        cache: ChildCache | None = None,
    ) -> None:
        self._kube = kube
        self._record = record
        self._stores = stores
        self._metrics = metrics
        self._cache = cache
        # A registry event and an event of its Deployment may arrive together on two threads.
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)

    def resync(self, namespaces: Sequence[str]) -> int:
        """Reconcile every registry in `namespaces` (all when empty); return how many failed.

        Events alone do not retry: a pass that failed (the API was down, a webhook refused)
        or drift nobody watches (a hand-edited ConfigMap) waits for the next resync."""
        failed = 0
        scopes: list[str | None] = list(namespaces) if namespaces else [None]
        for namespace in scopes:
            try:
                registries = self._kube.list_registries(namespace)
            except KubeError as exc:
                logger.warning("resync: listing registries failed: %s", exc)
                failed += 1
                continue
            for registry in registries:
                try:
                    self.reconcile(registry)
                except KubeError as exc:
                    logger.warning(
                        "resync of %s/%s failed: %s",
                        registry["metadata"].get("namespace"),
                        registry["metadata"].get("name"),
                        exc,
                    )
                    failed += 1
        return failed

    def close_stores(self) -> None:
        """Close every store connection (the operator is stopping)."""
        if self._stores is not None:
            self._stores.close()

    def forget(self, namespace: str, name: str) -> None:
        """The registry is gone: close its store connection."""
        if self._stores is not None:
            self._stores.forget((namespace, name))
        if self._metrics is not None:
            self._metrics.forget((namespace, name))

    def reconcile_by_name(self, namespace: str, name: str) -> None:
        self.reconcile({"metadata": {"namespace": namespace, "name": name}})

    def reconcile(self, registry: Obj) -> None:
        meta = registry["metadata"]
        with self._locks[(meta["namespace"], meta["name"])]:
            # An event's body may predate the status the previous pass wrote; planning from it
            # would write that status again and repeat its Events. Read the registry afresh.
            fresh = self._kube.get("OrchestrationRegistry", meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                self.forget(meta["namespace"], meta["name"])  # its store connection too
                return  # owner references let the garbage collector remove the children
            began = time.monotonic()
            try:
                failed = self._reconcile_locked(fresh)
            except KubeError:
                failed = True
                raise
            finally:
                if self._metrics is not None:
                    self._metrics.reconcile_seconds.observe(time.monotonic() - began)
                    if failed:
                        self._metrics.reconcile_errors.labels(meta["namespace"], meta["name"]).inc()

    def _reconcile_locked(self, registry: Obj) -> bool:
        """Read, plan, walk the plan's steps in order (stopping at the first failed call),
        report; True when a write failed. Every decision is the plan's; this only sequences
        the calls."""
        observed = self._read_pods(registry, self._read(registry, planner.SLOTS))
        observed = self._observe_store(registry, observed)
        observed = self._read_replay_check(registry, observed)
        if self._stores is not None:  # a gate's instance, a ramp step's outcomes
            observed = rollout_io.read(self._stores, _key(registry), registry, observed)
        plan = planner.plan(registry, observed)
        self._record_metrics(registry, plan, observed)
        if plan.refused is not None:
            logger.warning("not writing the children of %s: %s", _name(registry), plan.refused)
        after, completed, failure = observed, 0, None
        try:
            for step in plan.steps:
                after = self._take(registry, step, after)
                completed += 1
        except KubeError as exc:
            logger.warning("applying children of %s failed: %s", _name(registry), exc)
            failure = str(exc)[:1000]
        if failure is not None or plan.refused is not None:
            # The Deployments may be anywhere between old and new: the status reads them afresh.
            deployments = [s for s in planner.SLOTS if s[1] == "Deployment"]
            fresh = self._read(registry, deployments, tolerant=False, ask=True)
            after = fresh.with_pods(observed.pods).with_pods(observed.drain_pods, drain=True)
        report = plan.report(after, utc_now(), completed, failure)
        if report.status is not None:
            meta = registry["metadata"]
            patch = planner.status_patch(registry.get("status", {}), report.status)
            self._kube.patch_registry_status(meta["namespace"], meta["name"], patch)
        for event in report.events:
            self._post(registry, event)
        return failure is not None

    def _record_metrics(
        self, registry: Obj, plan: planner.Plan, observed: planner.Observed
    ) -> None:
        if self._metrics is None or (plan.store is None and plan.store_error is None):
            return
        meta = registry["metadata"]
        key = (meta["namespace"], meta["name"])
        store = plan.store
        if store is None:
            self._metrics.record(key, Snapshot(observed=False))
            return
        pods = (*observed.pods, *observed.drain_pods)
        left = planner.stranded(store, pods)
        pinned = (plan.drain_state or {}).get("pinned", {})
        self._metrics.record(
            key,
            Snapshot(
                observed=True,
                instances={
                    (v.orchestration_name, v.orchestration_version): v.instances
                    for v in store.versions
                },
                stranded={(k, pin or "none"): n for (k, pin), n in left.counts.items()},
                live_workers=sum(1 for w in store.workers if w.live),
                stale_workers=sum(1 for w in store.workers if not w.live),
                drain_pinned=dict(pinned),
            ),
        )

    def _read(
        self,
        registry: Obj,
        slots: Sequence[tuple[planner.Slot, str, bool]],
        tolerant: bool = True,
        ask: bool = False,
    ) -> planner.Observed:
        """The registry's children in `slots`, as the cluster holds them: from the warm cache,
        else (or when `ask`) one GET each. The first failed read ends the reading and is
        recorded (`unreadable`), or raised when not `tolerant`."""
        meta = registry["metadata"]
        observed = planner.Observed()
        cache = self._cache if self._cache is not None and self._cache.warm and not ask else None
        for slot, kind, drain in slots:
            name = planner.child_name(registry, drain)
            if cache is not None:
                observed = observed.with_child(slot, cache.child(kind, meta["namespace"], name))
                continue
            try:
                found = self._kube.get(kind, meta["namespace"], name)
            except KubeError as exc:
                if not tolerant:
                    raise
                return observed.with_unreadable(str(exc)[:1000])
            observed = observed.with_child(slot, found)
        return observed

    def _read_pods(self, registry: Obj, observed: planner.Observed) -> planner.Observed:
        """The pods of each pool whose Deployment exists (what they say is only reported, so
        a failed read is logged and the pass goes on without them)."""
        meta = registry["metadata"]
        for drain, deployment in ((False, observed.deployment), (True, observed.drain_deployment)):
            if deployment is None:
                continue
            selector = planner.selector_labels(registry, drain)
            if self._cache is not None and self._cache.warm:
                cached = self._cache.pods(meta["namespace"], meta["name"], selector)
                observed = observed.with_pods(cached, drain=drain)
                continue
            try:
                pods = self._kube.list_pods(meta["namespace"], selector)
            except KubeError as exc:
                logger.warning("listing the pods of %s failed: %s", _name(registry), exc)
                continue
            observed = observed.with_pods(pods, drain=drain)
        return observed

    def _observe_store(self, registry: Obj, observed: planner.Observed) -> planner.Observed:
        """What the registry's store holds, read with the Secret the registry names for the
        operator (else the workers'). A failure is a StoreObserved reason, never an error:
        the plan then decides from Kubernetes alone."""
        if self._stores is None:
            return observed
        meta = registry["metadata"]
        spec = planner.spec_of(registry)
        secret_name, key = planner.operator_secret(spec)
        try:
            secret = self._kube.get("Secret", meta["namespace"], secret_name)
        except KubeError as exc:
            return observed.with_store(None, ("SecretUnreadable", f"Secret {secret_name}: {exc}"))
        raw = (secret or {}).get("data", {}).get(key)
        if raw is None:
            what = "does not exist" if secret is None else f"has no key {key!r}"
            return observed.with_store(None, ("SecretUnreadable", f"Secret {secret_name} {what}"))
        try:
            url = base64.b64decode(raw).decode()
        except (binascii.Error, UnicodeDecodeError):
            return observed.with_store(
                None, ("SecretUnreadable", f"Secret {secret_name} key {key!r} is not a URL")
            )
        pool = spec.get("pool") or planner.child_name(registry)
        try:
            seen = self._stores.observe((meta["namespace"], meta["name"]), url, pool)
        except StoreUnobservable as exc:
            logger.info("not observing the store of %s: %s", _name(registry), exc)
            return observed.with_store(None, (exc.reason, str(exc)))
        return observed.with_store(seen)

    def _read_replay_check(self, registry: Obj, observed: planner.Observed) -> planner.Observed:
        """The replay check's Job and its pods, only while one is under way (the status names
        it); a pass with no check under way asks nothing more. A failed read is logged: the
        plan then applies the Job again, which changes nothing if it exists."""
        now = utc_now()
        name = planner.job_to_read(registry)
        if name is None:
            return observed.with_replay_job(None, (), now)
        namespace = registry["metadata"]["namespace"]
        try:
            job = self._kube.get("Job", namespace, name)
            pods = self._kube.list_pods(namespace, {planner.REPLAY_JOB_LABEL: name})
        except KubeError as exc:
            logger.warning("reading the replay check Job %s failed: %s", name, exc)
            return observed.with_replay_job(None, (), now)
        return observed.with_replay_job(job, pods, now)

    def _take(self, registry: Obj, step: planner.Step, after: planner.Observed) -> planner.Observed:
        """Carry out one step; `after` with the child as the write returned it."""
        match step:
            case planner.Apply():
                applied = self._kube.apply(step.obj)
                if self._cache is not None:
                    self._cache.wrote(applied)
                after = after.with_child(step.slot, applied)
                self._post(registry, step.event)
            case planner.HandOver():
                try:
                    kept = self._kube.apply(step.obj, manager=REPLICAS_MANAGER, force=False)
                except KubeError as exc:
                    if exc.status != 409:
                        raise
                    logger.info("%s: nothing to hand over (%s)", _name(registry), exc)
                else:
                    if self._cache is not None:
                        self._cache.wrote(kept)
                    after = after.with_child(step.slot, kept)
            case planner.Delete():
                gone = self._kube.delete(step.kind, step.namespace, step.name, step.uid)
                if self._cache is not None:
                    self._cache.deleted(step.kind, step.namespace, step.name, step.uid)
                if gone:
                    self._post(registry, step.event)
                after = after.with_child(step.slot, None)
            case planner.Event():
                self._post(registry, step)
            case planner.RunJob():
                self._kube.apply(step.obj)
                self._record(registry, step.event.type, step.event.reason, step.event.message)
            case planner.DeleteJob():
                self._kube.delete("Job", step.namespace, step.name, step.uid)
            case planner.StartGate():
                if self._stores is not None:
                    refused = rollout_io.start_gate(self._stores, _key(registry), step)
                    if refused is not None:
                        self._post(registry, refused)
        return after

    def _post(self, registry: Obj, event: planner.Event) -> None:
        self._record(registry, event.type, event.reason, event.message)


def _key(registry: Obj) -> tuple[str, str]:
    return registry["metadata"]["namespace"], registry["metadata"]["name"]


def _name(registry: Obj) -> str:
    meta = registry["metadata"]
    return f"{meta['namespace']}/{meta['name']}"
