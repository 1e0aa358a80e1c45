"""Reads from the watches: a warm cache spares the API, a cold one never hides a child, and what
the operator wrote itself is not written twice while the watch lags."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

from durox_operator.cache import ChildCache, slim
from durox_operator.coalesce import Coalescer
from durox_operator.model import FIELD_MANAGER, Obj
from durox_operator.reconciler import Reconciler
from tests.unit.operator.support import registry
from tests.unit.operator.test_operator_reconciler import Events, FakeKube


class CountingKube(FakeKube):
    """FakeKube that counts reads and stamps writes with increasing resourceVersions."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []
        self.version = 0

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((kind, name))
        return super().get(kind, namespace, name)

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        self.reads.append(("Pod", "list"))
        return super().list_pods(namespace, selector)

    def apply(self, obj: Obj, manager: str = FIELD_MANAGER, force: bool = True) -> dict[str, Any]:
        self.version += 1
        applied = super().apply(obj, manager, force)
        applied["metadata"]["resourceVersion"] = str(self.version)
        self.put(copy.deepcopy(applied))
        return applied


class Watch:
    """kopf's indexes as the watches would fill them from CountingKube's objects."""

    def __init__(self, kube: CountingKube) -> None:
        self.kube = kube
        self.configmaps: dict[Any, list[Obj]] = {}
        self.deployments: dict[Any, list[Obj]] = {}
        self.pods: dict[Any, list[Obj]] = {}

    def catch_up(self, cache: ChildCache) -> None:
        for index in (self.configmaps, self.deployments, self.pods):
            index.clear()
        for (kind, ns, name), obj in self.kube.objects.items():
            if kind == "ConfigMap":
                self.configmaps[(ns, name)] = [slim(obj)]
            elif kind == "Deployment":
                self.deployments[(ns, name)] = [slim(obj)]
            elif kind == "Pod":
                key = (ns, obj["metadata"]["labels"]["durox.dev/registry"])
                self.pods.setdefault(key, []).append(slim(obj, pod=True))
            if kind in ("ConfigMap", "Deployment"):
                cache.seen(kind, obj, deleted=False)


def _setup() -> tuple[CountingKube, ChildCache, Watch, Reconciler, Events]:
    kube = CountingKube()
    kube.put(registry())
    cache = ChildCache()
    watch = Watch(kube)
    events = Events()
    return kube, cache, watch, Reconciler(kube, events, cache=cache), events


def test_a_cold_cache_reads_every_child_from_the_api() -> None:
    kube, cache, _, reconciler, _ = _setup()
    reconciler.reconcile_by_name("shop", "orders")
    assert not cache.warm
    children = [r for r in kube.reads if r[0] in ("ConfigMap", "Deployment")]
    assert len(children) == 4  # both pools' ConfigMap and Deployment


def test_a_cold_cache_never_recreates_children_that_exist() -> None:
    kube, _, _, reconciler, events = _setup()
    reconciler.reconcile_by_name("shop", "orders")
    kube.writes.clear()
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")  # still cold: asks, sees them, writes nothing
    assert kube.writes == [] and events.posted == []


def test_a_warm_settled_pass_costs_only_the_registrys_read() -> None:
    kube, cache, watch, reconciler, _ = _setup()
    reconciler.reconcile_by_name("shop", "orders")
    cache.attach(watch.configmaps, watch.deployments, watch.pods)
    watch.catch_up(cache)
    kube.reads.clear()
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.reads == [("OrchestrationRegistry", "orders")]
    assert kube.writes == []
    assert cache.pending() == 0


def test_a_lagging_watch_does_not_cause_a_second_write_or_event() -> None:
    kube, cache, watch, reconciler, events = _setup()
    cache.attach(watch.configmaps, watch.deployments, watch.pods)  # warm and empty
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes.count(("apply", "ConfigMap")) == 1
    created = list(events.posted)
    # the watch has not reported the new children yet: the next pass reads what was written
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes.count(("apply", "ConfigMap")) == 1
    assert kube.writes.count(("apply", "Deployment")) == 1
    assert events.posted == created
    assert cache.pending() == 2
    watch.catch_up(cache)
    assert cache.pending() == 0


def test_the_watch_wins_once_it_is_newer_than_the_write() -> None:
    kube, cache, watch, reconciler, _ = _setup()
    cache.attach(watch.configmaps, watch.deployments, watch.pods)
    reconciler.reconcile_by_name("shop", "orders")
    newer = copy.deepcopy(kube.objects[("ConfigMap", "shop", "orders")])
    newer["metadata"]["resourceVersion"] = "99"
    newer["data"] = {"worker.yaml": "hand edit"}
    watch.configmaps[("shop", "orders")] = [newer]
    assert cache.child("ConfigMap", "shop", "orders") == newer
    older = {**newer, "metadata": {**newer["metadata"], "resourceVersion": "0"}}
    watch.configmaps[("shop", "orders")] = [older]
    assert cache.child("ConfigMap", "shop", "orders") != older  # the write is newer


def test_a_deleted_child_reads_as_absent_until_the_watch_drops_it() -> None:
    cache = ChildCache()
    meta = {"namespace": "shop", "name": "orders-drain", "uid": "u1", "resourceVersion": "5"}
    old: dict[str, Any] = {"kind": "ConfigMap", "metadata": meta}
    index: dict[Any, list[Obj]] = {("shop", "orders-drain"): [old]}
    cache.attach(index, {}, {})
    cache.deleted("ConfigMap", "shop", "orders-drain", "u1")
    assert cache.child("ConfigMap", "shop", "orders-drain") is None
    # a new object under that name (another uid) is seen as it is
    new = {**old, "metadata": {**meta, "uid": "u2"}}
    index[("shop", "orders-drain")] = [new]
    assert cache.child("ConfigMap", "shop", "orders-drain") == new
    cache.seen("ConfigMap", old, deleted=True)
    assert cache.pending() == 0


def test_slim_keeps_what_the_planner_reads() -> None:
    body = {
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "managedFields": [{"big": 1}]},
        "spec": {"containers": []},
        "status": {"phase": "Running"},
    }
    assert slim(body, pod=True) == {"metadata": {"name": "p", "labels": {"a": "b"}},
                                    "status": {"phase": "Running"}}  # fmt: skip
    assert "managedFields" not in slim(body)["metadata"] and slim(body)["spec"] == body["spec"]


def test_warm_pods_are_filtered_by_the_pools_selector() -> None:
    cache = ChildCache()
    pod = {"metadata": {"name": "w", "labels": {"app.kubernetes.io/instance": "orders-drain"}}}
    cache.attach({}, {}, {("shop", "orders"): [pod]})
    assert cache.pods("shop", "orders", {"app.kubernetes.io/instance": "orders"}) == []
    assert cache.pods("shop", "orders", {"app.kubernetes.io/instance": "orders-drain"}) == [pod]
    assert cache.pods("shop", "payments", {}) == []


def test_a_burst_of_events_costs_one_pass_and_a_later_event_another() -> None:
    async def scenario() -> list[str]:
        runs: list[str] = []

        async def run(key: str) -> None:
            runs.append(key)

        passes: Coalescer[str] = Coalescer(run)
        for _ in range(50):
            passes.trigger("orders", 0.01)
        passes.trigger("payments", 0.01)
        assert passes.waiting() == 2
        await asyncio.sleep(0.05)
        passes.trigger("orders", 0.0)
        await asyncio.sleep(0.01)
        await passes.close()
        return runs

    assert sorted(asyncio.run(scenario())) == ["orders", "orders", "payments"]


def test_a_sooner_pass_replaces_a_later_one_and_a_later_one_waits_for_it() -> None:
    """A store's retry pass waits 30 s; a hand edit meanwhile must be repaired in seconds."""

    async def scenario() -> list[tuple[str, float]]:
        runs: list[tuple[str, float]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def run(key: str) -> None:
            runs.append((key, loop.time() - start))

        passes: Coalescer[str] = Coalescer(run)
        passes.trigger("orders", 30.0)  # the store's retry
        passes.trigger("orders", 0.01)  # a child's event
        passes.trigger("orders", 20.0)  # joins the one due sooner
        assert passes.waiting() == 1
        await asyncio.sleep(0.1)
        await passes.close()
        return runs

    runs = asyncio.run(scenario())
    assert [key for key, _ in runs] == ["orders"] and runs[0][1] < 1.0


def test_a_failing_pass_is_logged_and_the_next_event_runs_again() -> None:
    async def scenario() -> int:
        calls = 0

        async def run(key: str) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("boom")

        passes: Coalescer[str] = Coalescer(run)
        passes.trigger("orders", 0)
        await asyncio.sleep(0.01)
        passes.trigger("orders", 0)
        await asyncio.sleep(0.01)
        await passes.close()
        return calls

    assert asyncio.run(scenario()) == 2


def test_closing_cancels_waiting_passes() -> None:
    async def scenario() -> list[str]:
        runs: list[str] = []

        async def run(key: str) -> None:
            runs.append(key)

        passes: Coalescer[str] = Coalescer(run)
        passes.trigger("orders", 10)
        await passes.close()
        return runs

    assert asyncio.run(scenario()) == []
