"""One reconcile pass: plan, apply what differs, report. The only place that sequences I/O.

Level-triggered: it is run for every event of a registry or of a Deployment it owns, and
each run recomputes everything from the current objects. Running it twice in a row writes
nothing the second time: children carry the hash of their planned content, and status is
patched only when the planned status differs from the stored one.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from durox_operator import planner
from durox_operator.kube import Kube, KubeError, NotOwned
from durox_operator.model import BLOCKING, Obj

logger = logging.getLogger(__name__)


class Recorder(Protocol):
    """Posts a Kubernetes Event about the registry (`Kube.post_event` in production)."""

    def __call__(self, registry: Obj, type: str, reason: str, message: str) -> None: ...


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    def __init__(self, kube: Kube, record: Recorder) -> None:
        self._kube = kube
        self._record = record
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

    def reconcile_by_name(self, namespace: str, name: str) -> None:
        self.reconcile({"metadata": {"namespace": namespace, "name": name}})

    def reconcile(self, registry: Obj) -> None:
        meta = registry["metadata"]
        with self._locks[(meta["namespace"], meta["name"])]:
            # An event's body may predate the status the previous pass wrote; planning from it
            # would write that status again and repeat its Events. Read the registry afresh.
            fresh = self._kube.get("OrchestrationRegistry", meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return  # owner references let the garbage collector remove the children
            self._reconcile_locked(fresh)

    def _reconcile_locked(self, registry: Obj) -> None:
        try:
            config = planner.worker_config(registry)
        except planner.InvalidSpec as exc:
            self._report(registry, planner.plan_status(registry, None, utc_now(), error=exc))
            return

        spec = registry["spec"]
        namespace, name = registry["metadata"]["namespace"], planner.child_name(registry)
        drain_name = planner.child_name(registry, drain=True)
        drain_on = planner.drain_enabled(spec)
        apply_error: str | None = None
        deployment: dict[str, Any] | None = None
        drain: dict[str, Any] | None = None
        versions: planner.Versions | None = None
        published = False
        observed_drain_cm: dict[str, Any] | None = None
        observed_drain: dict[str, Any] | None = None
        desired_drain: dict[str, Any] = {}
        try:
            observed_cm = self._observe(registry, "ConfigMap", namespace, name)
            observed_dep = self._observe(registry, "Deployment", namespace, name)
            desired_dep = planner.plan_deployment(registry, config)
            # Old workers may lack a new version's handlers: while any may still serve (in
            # either pool), the file keeps the versions the ConfigMap activates now.
            pending = planner.rollout_pending(spec, desired_dep, observed_dep)
            if drain_on:
                drain_config = planner.worker_config(registry, drain=True)
                observed_drain_cm = self._observe(registry, "ConfigMap", namespace, drain_name)
                observed_drain = self._observe(registry, "Deployment", namespace, drain_name)
                desired_drain = planner.plan_deployment(registry, drain_config, drain=True)
                pending = pending or planner.rollout_pending(
                    spec, desired_drain, observed_drain, drain=True
                )
            previous = planner.published_versions(observed_cm)
            versions = planner.plan_versions(spec, previous, pending)
            config = planner.worker_config(registry, versions)
            # The file first: new pods must start with the held versions, never the new ones.
            self._ensure(registry, planner.plan_configmap(registry, config, versions), observed_cm)
            published = True
            activated = planner.activation_event(previous, versions)
            if activated is not None:
                self._record(registry, activated[0], "ActivatedVersions", activated[1])
            deployment = self._ensure(registry, desired_dep, observed_dep)
            if drain_on:
                drain_config = planner.worker_config(registry, versions, drain=True)
                drain_cm = planner.plan_configmap(registry, drain_config, versions, drain=True)
                self._ensure(registry, drain_cm, observed_drain_cm)
                drain = self._ensure(registry, desired_drain, observed_drain)
            else:
                self._remove(registry, "Deployment", namespace, drain_name)
                self._remove(registry, "ConfigMap", namespace, drain_name)
        except KubeError as exc:
            logger.warning("applying children of %s failed: %s", name, exc)
            apply_error = str(exc)[:1000]
            deployment = self._kube.get("Deployment", namespace, name)
            if drain_on:
                drain = self._kube.get("Deployment", namespace, drain_name)
        # After a failed apply the ConfigMap may still hold the old file: keep the old revision.
        status = planner.plan_status(
            registry,
            deployment,
            utc_now(),
            config=config if published else None,
            apply_error=apply_error,
            versions=versions if published else None,
            drain=drain,
        )
        self._report(registry, status)

    def _remove(self, registry: Obj, kind: str, namespace: str, name: str) -> None:
        """Delete a child that is no longer wanted, if it exists and this registry controls it."""
        observed = self._kube.get(kind, namespace, name)
        if observed is None or not planner.controlled_by(observed, registry):
            return
        if observed["metadata"].get("deletionTimestamp"):
            return  # already going
        if self._kube.delete(kind, namespace, name, observed["metadata"]["uid"]):
            self._record(registry, "Normal", f"Deleted{kind}", f"deleted {kind} {name}")

    def _observe(
        self, registry: Obj, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The cluster's copy of a child; NotOwned if the name is taken by someone else's."""
        observed = self._kube.get(kind, namespace, name)
        if observed is not None and not planner.controlled_by(observed, registry):
            raise NotOwned(
                f"{kind} {name} already exists and is not controlled by this registry; delete "
                "it or rename the registry"
            )
        return observed

    def _ensure(
        self, registry: Obj, desired: dict[str, Any], observed: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Apply `desired` if `observed` (the cluster's copy) differs; return the cluster's copy."""
        meta = desired["metadata"]
        if not planner.needs_apply(desired, observed):
            assert observed is not None
            return observed
        result = self._kube.apply(desired)
        verb = "Created" if observed is None else "Updated"
        self._record(
            registry,
            "Normal",
            f"{verb}{desired['kind']}",
            f"{verb.lower()} {desired['kind']} {meta['name']}",
        )
        return result

    def _report(self, registry: Obj, status: dict[str, Any]) -> None:
        if not planner.status_changed(registry, status):
            return
        meta = registry["metadata"]
        self._kube.patch_registry_status(meta["namespace"], meta["name"], status)
        for cond in planner.condition_events(registry, status):
            blocking = cond.reason in BLOCKING and cond.status == "True"
            self._record(
                registry,
                "Warning" if blocking else "Normal",
                cond.reason,
                f"{cond.type}={cond.status}: {cond.message}",
            )
