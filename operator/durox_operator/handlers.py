"""kopf handlers: translate an event into one reconcile call, nothing more.

Only event and index handlers are registered, on purpose. kopf's change handlers would keep
their progress and last-handled state on the object and want finalizers; our reconcile is
level-triggered and idempotent, owner references clean up the children, so none of that is
needed. Status is written by the reconciler under `status`, never into annotations. Events
alone never retry, so a periodic resync task (started with the operator, stopped with it)
reruns the pass over every registry.

Events do not run a pass themselves: they ask the `Coalescer` for one, so a burst of them
costs one pass. The index handlers keep the children the watches report in kopf's indexes,
which the reconciler reads instead of asking the API (`ChildCache`). With `--lease` only the
replica holding the Lease runs passes; the others keep their indexes warm and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from durox_operator.cache import ChildCache, slim
from durox_operator.coalesce import Coalescer
from durox_operator.election import LeaseElector, Timing
from durox_operator.kube import Kube, load_config
from durox_operator.metrics import OperatorMetrics
from durox_operator.model import FIELD_MANAGER, GROUP, PLURAL, REGISTRY_LABEL, VERSION
from durox_operator.reconciler import Reconciler
from durox_operator.store import StoreObserver

logger = logging.getLogger(__name__)

DEFAULT_RESYNC_SECONDS = 300.0
# A registry's own change is planned at once; a child's or a pod's waits this long for the
# rest of its burst (a rollout's status updates, a hand edit's follow-ups).
REGISTRY_DELAY = 0.0
CHILD_DELAY = 0.5

Key = tuple[str, str]


@dataclass
class _Operator:
    reconciler: Reconciler
    cache: ChildCache
    passes: Coalescer[Key]
    elector: LeaseElector | None
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading


_state: dict[str, _Operator] = {}


def _operator() -> _Operator:
    return _state["operator"]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    load_config()
    kube = Kube()
    stores = StoreObserver()
    metrics = OperatorMetrics()
    port = int(memo.get("metrics_port", 0))
    if port:
        metrics.serve(port)
    cache = ChildCache()
    reconciler = Reconciler(kube, kube.post_event, stores, metrics, cache=cache)

    async def run_pass(key: Key) -> None:
        if _operator().leading:
            await asyncio.to_thread(reconciler.reconcile_by_name, *key)
            retry = stores.retry_in(key)
            if retry is not None:  # the store failed: look again when it may be dialled
                _operator().passes.trigger(key, retry + 0.1)

    elector = None
    lease = memo.get("lease")
    if lease:
        elector = LeaseElector(
            kube,
            str(memo["lease_namespace"]),
            str(lease),
            str(memo["identity"]),
            Timing(float(memo.get("lease_seconds", 15.0))),
        )
    op = _Operator(reconciler, cache, Coalescer(run_pass), elector)
    _state["operator"] = op
    period = float(memo.get("resync_seconds", DEFAULT_RESYNC_SECONDS))
    namespaces = list(memo.get("namespaces", []))
    op.tasks.append(asyncio.create_task(_resync_forever(op, namespaces, period)))
    if elector is not None:
        op.tasks.append(asyncio.create_task(elector.run(_leadership_changed)))


def _leadership_changed(leading: bool) -> None:
    if leading:  # pick up whatever the previous leader left undone: a full pass now
        _operator().kick.set()


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    op = _state.pop("operator", None)
    if op is None:
        return
    for task in op.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await op.passes.close()
    if op.elector is not None:
        await asyncio.to_thread(op.elector.release)
    await asyncio.to_thread(op.reconciler.close_stores)


async def _resync_forever(op: _Operator, namespaces: list[str], period: float) -> None:
    """Periodic level-triggered pass over every registry (kopf's watch does not re-list), and
    one at once when this replica becomes the leader."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.kick.wait(), period)
        op.kick.clear()
        if not op.leading:
            continue
        try:
            failed = await asyncio.to_thread(op.reconciler.resync, namespaces)
        except Exception:  # keep resyncing: one bad pass must not end the loop
            logger.exception("resync pass failed")
            continue
        if failed:
            logger.warning("resync: %d registries failed; retrying in %.0fs", failed, period)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def registry_event(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
    _warm(kwargs)
    name, namespace = body.metadata.name, body.metadata.namespace
    if type == "DELETED":
        if name and namespace:
            await asyncio.to_thread(_operator().reconciler.forget, namespace, name)
        return
    if name and namespace:
        _operator().passes.trigger((namespace, name), REGISTRY_DELAY)


_MANAGED: dict[str, Any] = {
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
    REGISTRY_LABEL: kopf.PRESENT,
}


# The children and the pods are watched so that what happens to them is seen within seconds:
# a hand edit of a Deployment or ConfigMap is drift the next pass undoes, a Deployment's
# progress moves the conditions, and a pod that cannot pull its image or keeps crashing is
# reported as Degraded long before the rollout's progress deadline.
@kopf.index("apps", "v1", "deployments", labels=_MANAGED)
def durox_deployments(body: kopf.Body, **_: Any) -> Any:
    return {(body.metadata.namespace, body.metadata.name): slim(body)}


@kopf.index("", "v1", "configmaps", labels=_MANAGED)
def durox_configmaps(body: kopf.Body, **_: Any) -> Any:
    return {(body.metadata.namespace, body.metadata.name): slim(body)}


@kopf.index("", "v1", "pods", labels=_MANAGED)
def durox_pods(body: kopf.Body, **_: Any) -> Any:
    key = (body.metadata.namespace, body.metadata.labels.get(REGISTRY_LABEL))
    return {key: slim(body, pod=True)}


@kopf.on.event("apps", "v1", "deployments", labels=_MANAGED)
async def deployment_event(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
    _warm(kwargs)
    _operator().cache.seen("Deployment", body, deleted=type == "DELETED")
    _owner_changed(body)


@kopf.on.event("", "v1", "configmaps", labels=_MANAGED)
async def configmap_event(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
    _warm(kwargs)
    _operator().cache.seen("ConfigMap", body, deleted=type == "DELETED")
    _owner_changed(body)


@kopf.on.event("", "v1", "pods", labels=_MANAGED)
async def pod_event(body: kopf.Body, **kwargs: Any) -> None:
    _warm(kwargs)
    _owner_changed(body)


def _warm(kwargs: dict[str, Any]) -> None:
    """kopf calls a handler only once every index holds its initial listing: from the first
    handler on, the cache may answer for the API."""
    cache = _operator().cache
    if not cache.warm:
        cache.attach(kwargs["durox_configmaps"], kwargs["durox_deployments"], kwargs["durox_pods"])


def _owner_changed(body: kopf.Body) -> None:
    """A pass, soon, for the registry a child or a pod belongs to (its `durox.dev/registry`
    label)."""
    name = body.metadata.labels.get(REGISTRY_LABEL)
    namespace = body.metadata.namespace
    if name and namespace:
        _operator().passes.trigger((namespace, name), CHILD_DELAY)
