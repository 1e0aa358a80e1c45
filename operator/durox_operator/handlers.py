"""kopf handlers: translate an event into one reconcile call, nothing more.

Only event handlers are registered, on purpose. kopf's change handlers would keep their
progress and last-handled state on the object and want finalizers; our reconcile is
level-triggered and idempotent, owner references clean up the children, so none of that is
needed. Status is written by the reconciler under `status`, never into annotations. Events
alone never retry, so a periodic resync task (started with the operator, stopped with it)
reruns the pass over every registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

import kopf

from durox_operator.kube import Kube, load_config
from durox_operator.metrics import OperatorMetrics
from durox_operator.model import FIELD_MANAGER, GROUP, PLURAL, REGISTRY_LABEL, VERSION
from durox_operator.reconciler import Reconciler
from durox_operator.store import StoreObserver

logger = logging.getLogger(__name__)

DEFAULT_RESYNC_SECONDS = 300.0

_state: dict[str, Reconciler] = {}


def _reconciler() -> Reconciler:
    return _state["reconciler"]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    load_config()
    kube = Kube()
    stores = StoreObserver()
    memo["stores"] = stores
    metrics = OperatorMetrics()
    port = int(memo.get("metrics_port", 0))
    if port:
        metrics.serve(port)
    reconciler = Reconciler(kube, kube.post_event, stores, metrics)
    _state["reconciler"] = reconciler
    period = float(memo.get("resync_seconds", DEFAULT_RESYNC_SECONDS))
    namespaces = list(memo.get("namespaces", []))
    memo["resync_task"] = asyncio.create_task(_resync_forever(reconciler, namespaces, period))


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("resync_task")
    if isinstance(task, asyncio.Task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    stores = memo.get("stores")
    if isinstance(stores, StoreObserver):
        await asyncio.to_thread(stores.close)


async def _resync_forever(reconciler: Reconciler, namespaces: list[str], period: float) -> None:
    """Periodic level-triggered pass over every registry (kopf's watch does not re-list)."""
    while True:
        await asyncio.sleep(period)
        try:
            failed = await asyncio.to_thread(reconciler.resync, namespaces)
        except Exception:  # keep resyncing: one bad pass must not end the loop
            logger.exception("resync pass failed")
            continue
        if failed:
            logger.warning("resync: %d registries failed; retrying in %.0fs", failed, period)


@kopf.on.event(GROUP, VERSION, PLURAL)
def registry_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        meta = body.get("metadata", {})
        _reconciler().forget(str(meta.get("namespace")), str(meta.get("name")))
        return
    _reconciler().reconcile(copy.deepcopy(dict(body)))


_MANAGED: dict[str, Any] = {
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
    REGISTRY_LABEL: kopf.PRESENT,
}


# The children and the pods are watched so that what happens to them is seen within seconds:
# a hand edit of a Deployment or ConfigMap is drift the next pass undoes, a Deployment's
# progress moves the conditions, and a pod that cannot pull its image or keeps crashing is
# reported as Degraded long before the rollout's progress deadline.
@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
def deployment_event(body: kopf.Body, **_: Any) -> None:
    _owner_changed(body)


@kopf.on.event("", "v1", "configmaps", labels=_MANAGED)
def configmap_event(body: kopf.Body, **_: Any) -> None:
    _owner_changed(body)


@kopf.on.event("", "v1", "pods", labels=_MANAGED)
def pod_event(body: kopf.Body, **_: Any) -> None:
    _owner_changed(body)


def _owner_changed(body: kopf.Body) -> None:
    """Reconcile the registry a child or a pod belongs to (its `durox.dev/registry` label)."""
    name = body.metadata.labels.get(REGISTRY_LABEL)
    namespace = body.metadata.namespace
    if name and namespace:
        _reconciler().reconcile_by_name(namespace, name)
