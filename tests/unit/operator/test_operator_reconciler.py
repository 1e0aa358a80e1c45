"""The reconcile pass against an in-memory API: what it writes, and that a rerun writes nothing."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from durox.providers import StoreObservation
from durox_operator.kube import Kube, KubeError
from durox_operator.metrics import OperatorMetrics
from durox_operator.model import Obj
from durox_operator.reconciler import Reconciler
from durox_operator.store import StoreObserver, StoreUnobservable, redacted
from tests.unit.operator.support import registry, store, usage, worker


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: an object merges key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class FakeKube(Kube):
    """Stores objects by (kind, namespace, name); records every write."""

    def __init__(self, fail_apply: KubeError | None = None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.fail_apply = fail_apply

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list_registries(self, namespace: str | None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (kind, ns, _), o in sorted(self.objects.items())
            if kind == "OrchestrationRegistry" and namespace in (None, ns)
        ]

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (kind, ns, _), o in sorted(self.objects.items())
            if kind == "Pod"
            and ns == namespace
            and selector.items() <= o["metadata"].get("labels", {}).items()
        ]

    def apply(self, obj: Obj) -> dict[str, Any]:
        if self.fail_apply is not None:
            raise self.fail_apply
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["generation"] = 1
        stored["metadata"]["uid"] = f"uid-{obj['kind']}-{obj['metadata']['name']}"
        self.put(stored)
        self.writes.append(("apply", obj["kind"]))
        return copy.deepcopy(stored)

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        found = self.objects.get((kind, namespace, name))
        if found is None:
            return False
        if found["metadata"].get("uid", uid) != uid:
            raise KubeError("HTTP 409: precondition failed: uid", 409)
        del self.objects[(kind, namespace, name)]
        self.writes.append(("delete", kind))
        return True

    def patch_registry_status(self, namespace: str, name: str, status: Obj) -> None:
        """As the apiserver does: `status` is a JSON merge patch (RFC 7386)."""
        registry = self.objects[("OrchestrationRegistry", namespace, name)]
        registry["status"] = _merge(registry.get("status", {}), status)
        self.writes.append(("status", name))


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str]] = []

    def __call__(self, registry: Obj, type: str, reason: str, message: str) -> None:
        self.posted.append((type, reason))


def _setup(kube: FakeKube) -> tuple[Reconciler, Events]:
    body = registry()
    body["kind"] = "OrchestrationRegistry"
    kube.put(body)
    events = Events()
    return Reconciler(kube, events), events


def test_first_pass_creates_children_and_status_then_a_rerun_writes_nothing() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("apply", "Deployment"), ("status", "orders")]
    assert ("Normal", "CreatedConfigMap") in events.posted
    assert ("Normal", "CreatedDeployment") in events.posted

    kube.writes.clear()
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []
    assert events.posted == []


def test_policy_change_reapplies_only_the_configmap() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    kube.writes.clear()
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    stored["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.0.0"}
    stored["metadata"]["generation"] += 1
    reconciler.reconcile_by_name("shop", "orders")
    assert ("apply", "ConfigMap") in kube.writes
    assert ("apply", "Deployment") not in kube.writes


def test_apply_failure_is_reported_as_degraded_with_a_warning() -> None:
    kube = FakeKube(fail_apply=KubeError("HTTP 403: forbidden", 403))
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ApplyFailed")
    assert "forbidden" in degraded["message"]
    assert ("Warning", "ApplyFailed") in events.posted


def test_invalid_spec_writes_no_children() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    kube.objects[("OrchestrationRegistry", "shop", "orders")]["spec"]["orchestrations"][0][
        "policy"
    ] = "exact"
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("status", "orders")]
    assert ("Warning", "InvalidSpec") in events.posted


def test_deleted_or_missing_registries_are_left_alone() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    reconciler.reconcile_by_name("shop", "missing")
    kube.objects[("OrchestrationRegistry", "shop", "orders")]["metadata"]["deletionTimestamp"] = (
        "2026-01-01T00:00:00Z"
    )
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []


def test_resync_repairs_drift_that_no_event_reports() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    assert reconciler.resync([]) == 0
    kube.objects[("ConfigMap", "shop", "orders")]["data"]["worker.yaml"] = "tampered"
    kube.writes.clear()
    assert reconciler.resync(["shop"]) == 0
    assert kube.writes == [("apply", "ConfigMap")]
    assert "tampered" not in kube.objects[("ConfigMap", "shop", "orders")]["data"]["worker.yaml"]
    kube.writes.clear()
    assert reconciler.resync(["elsewhere"]) == 0
    assert kube.writes == []


def test_resync_counts_failures_and_carries_on() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    second = registry()
    second["kind"] = "OrchestrationRegistry"
    second["metadata"] |= {"name": "payments", "uid": "3333"}
    kube.put(second)

    def refuse_status(namespace: str, name: str, status: Obj) -> None:
        raise KubeError("HTTP 500", 500)

    kube.patch_registry_status = refuse_status  # type: ignore[method-assign]
    assert reconciler.resync([]) == 2


def test_a_stale_event_body_causes_no_second_write() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    stale = kube.get("OrchestrationRegistry", "shop", "orders")  # before any status
    assert stale is not None
    reconciler.reconcile(stale)
    kube.writes.clear()
    events.posted.clear()
    reconciler.reconcile(stale)  # a queued event carrying the pre-status body
    assert kube.writes == []
    assert events.posted == []


def test_a_first_healthy_status_posts_no_condition_events() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    assert {reason for _, reason in events.posted} == {"CreatedConfigMap", "CreatedDeployment"}


def test_a_foreign_object_with_the_childs_name_is_never_taken_over() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "orders", "namespace": "shop"},
        "data": {"theirs": "yes"},
    }
    kube.put(copy.deepcopy(foreign))
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.objects[("ConfigMap", "shop", "orders")] == foreign
    assert ("apply", "ConfigMap") not in kube.writes
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "not controlled by this registry" in degraded["message"]
    assert ("Warning", "ApplyFailed") in events.posted


def _roll_out(kube: FakeKube) -> None:
    """Play the Deployment controller: every worker runs the current template."""
    dep = kube.objects[("Deployment", "shop", "orders")]
    n = dep["spec"]["replicas"]
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
    }


def _rolled_out_registry(kube: FakeKube) -> tuple[Reconciler, Events]:
    """A registry created, its Deployment rolled out, and the pass that observed it."""
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    _roll_out(kube)
    reconciler.reconcile_by_name("shop", "orders")
    return reconciler, events


def _checkout_policy(kube: FakeKube) -> dict[str, Any]:
    text = kube.objects[("ConfigMap", "shop", "orders")]["data"]["worker.yaml"]
    policies = yaml.safe_load(text)["orchestrations"]
    return next(p for p in policies if p["name"] == "checkout")


def test_new_versions_wait_for_the_rollout_that_brings_their_handlers() -> None:
    kube = FakeKube()
    reconciler, events = _rolled_out_registry(kube)

    # one edit: a new image and, with it, a new highest version of checkout
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    stored["spec"]["image"] = "example.invalid/orders:1.1.0"
    stored["spec"]["orchestrations"][0]["versions"].append("1.11.0")
    stored["metadata"]["generation"] += 1
    kube.writes.clear()
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("apply", "Deployment"), ("status", "orders")]
    assert _checkout_policy(kube) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["activeVersions"] == "checkout@1.10.0,refund@2.0.0"
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "HoldingVersions"
    assert ("Normal", "HoldingVersions") in events.posted
    assert ("Normal", "ActivatedVersions") not in events.posted

    # still rolling: nothing to write
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []

    # rolled out: the next pass (a Deployment event) publishes the new version
    _roll_out(kube)
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("status", "orders")]
    assert _checkout_policy(kube) == {"name": "checkout", "policy": "latest"}
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["activeVersions"] == "checkout@1.11.0,refund@2.0.0"
    assert ("Normal", "ActivatedVersions") in events.posted
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []


def test_a_failed_apply_keeps_reporting_what_was_published() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    before = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]["activeVersions"]
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    stored["spec"]["orchestrations"][0] |= {"policy": "exact", "version": "1.0.0"}
    kube.fail_apply = KubeError("HTTP 500", 500)
    reconciler.reconcile_by_name("shop", "orders")
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["activeVersions"] == before == "checkout@1.10.0,refund@2.0.0"


def _set_drain(kube: FakeKube, drain: dict[str, Any] | None) -> None:
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    if drain is None:
        stored["spec"].pop("drain", None)
    else:
        stored["spec"]["drain"] = drain
    stored["metadata"]["generation"] += 1


def test_drain_pool_is_created_then_deleted_and_the_main_pool_is_untouched() -> None:
    kube = FakeKube()
    reconciler, events = _rolled_out_registry(kube)
    main = {
        k: copy.deepcopy(kube.objects[(k, "shop", "orders")]) for k in ("ConfigMap", "Deployment")
    }

    _set_drain(kube, {"enabled": True, "supportedVersions": {"max": "0.9.0"}})
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("apply", "Deployment"), ("status", "orders")]
    drain_cm = kube.objects[("ConfigMap", "shop", "orders-drain")]
    assert yaml.safe_load(drain_cm["data"]["worker.yaml"])["supported_replay_versions"] == {
        "min": "0.0.0",
        "max": "0.9.0",
    }
    assert kube.objects[("Deployment", "shop", "orders-drain")]["spec"]["replicas"] == 1
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["drain"] == {"enabled": True, "workers": "0/1"}
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []

    _set_drain(kube, {"enabled": False})
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("delete", "Deployment"), ("delete", "ConfigMap"), ("status", "orders")]
    assert ("Normal", "DeletedDeployment") in events.posted
    assert ("Normal", "DeletedConfigMap") in events.posted
    assert ("ConfigMap", "shop", "orders-drain") not in kube.objects
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["drain"] == {"enabled": False, "workers": "0/0"}
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []
    for kind, before in main.items():
        assert kube.objects[(kind, "shop", "orders")] == before


def test_a_foreign_object_with_the_drain_name_is_never_deleted() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-drain", "namespace": "shop", "uid": "theirs"},
    }
    kube.put(copy.deepcopy(foreign))
    reconciler.reconcile_by_name("shop", "orders")  # drain disabled: not ours to delete
    assert kube.objects[("Deployment", "shop", "orders-drain")] == foreign
    _set_drain(kube, {"enabled": True})  # enabled: not ours to take over either
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.objects[("Deployment", "shop", "orders-drain")] == foreign
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "orders-drain" in degraded["message"]


def test_a_rolling_drain_pool_keeps_versions_held() -> None:
    kube = FakeKube()
    reconciler, _ = _setup(kube)
    _set_drain(kube, {"enabled": True})
    reconciler.reconcile_by_name("shop", "orders")
    _roll_out(kube)
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    stored["spec"]["image"] = "example.invalid/orders:1.1.0"
    stored["spec"]["orchestrations"][0]["versions"].append("1.11.0")
    reconciler.reconcile_by_name("shop", "orders")
    _roll_out(kube)  # the main pool is done; the drain pool (no status here) is not
    reconciler.reconcile_by_name("shop", "orders")
    assert _checkout_policy(kube) == {"name": "checkout", "policy": "exact", "version": "1.10.0"}
    drain_file = yaml.safe_load(
        kube.objects[("ConfigMap", "shop", "orders-drain")]["data"]["worker.yaml"]
    )
    assert {"name": "checkout", "policy": "exact", "version": "1.10.0"} in drain_file[
        "orchestrations"
    ]


class _Response:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.data = status, data

    def read(self) -> None:
        pass


class _Api:
    """Just enough of kubernetes.client.ApiClient for Kube._call: records each request."""

    def __init__(self, status: int, data: bytes = b"{}") -> None:
        self.response = _Response(status, data)
        self.requests: list[tuple[str, str, Any]] = []

    def param_serialize(self, method: str, path: str, **kw: Any) -> tuple[Any, ...]:
        self.requests.append((method, path, kw.get("body")))
        return (method, path)

    def call_api(self, *request: Any) -> _Response:
        return self.response


def test_delete_is_guarded_by_uid_and_a_missing_object_is_success() -> None:
    api = _Api(200, b'{"kind": "Status", "status": "Success"}')
    assert Kube(api).delete("Deployment", "shop", "orders-drain", "u-1") is True
    [(method, path, body)] = api.requests
    assert (method, path) == ("DELETE", "/apis/apps/v1/namespaces/shop/deployments/orders-drain")
    assert body["preconditions"] == {"uid": "u-1"}
    assert body["propagationPolicy"] == "Background"
    assert Kube(_Api(404)).delete("ConfigMap", "shop", "orders-drain", "u-2") is False
    conflict = _Api(409, b'{"reason": "Conflict"}')
    with pytest.raises(KubeError) as failed:
        Kube(conflict).delete("ConfigMap", "shop", "orders-drain", "u-3")
    assert failed.value.status == 409  # the uid changed under us: the next pass looks again


class _FailingKube(FakeKube):
    """Refuses applies of one kind, or reads of one kind."""

    def __init__(self, apply_kind: str | None = None, get_kind: str | None = None) -> None:
        super().__init__()
        self.apply_kind, self.get_kind = apply_kind, get_kind

    def apply(self, obj: Obj) -> dict[str, Any]:
        if obj["kind"] == self.apply_kind:
            raise KubeError(f"apply {obj['kind']}: HTTP 500", 500)
        return super().apply(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == self.get_kind:
            raise KubeError(f"GET {kind}: HTTP 403: forbidden", 403)
        return super().get(kind, namespace, name)


def test_a_failed_deployment_apply_stops_the_walk_after_the_file_is_published() -> None:
    kube = _FailingKube(apply_kind="Deployment")
    reconciler, events = _setup(kube)
    _set_drain(kube, {"enabled": True})
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("status", "orders")]  # no drain pair
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    assert status["configRevision"]  # the file went out, so its revision is reported
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["reason"], degraded["message"]) == (
        "ApplyFailed",
        "apply Deployment: HTTP 500",
    )
    assert ("Normal", "CreatedConfigMap") in events.posted
    assert ("Normal", "CreatedDeployment") not in events.posted


def test_a_child_that_cannot_be_read_is_reported_and_nothing_is_written() -> None:
    kube = _FailingKube(get_kind="ConfigMap")
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("status", "orders")]
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed" and "forbidden" in degraded["message"]
    assert ("Warning", "ApplyFailed") in events.posted


def test_a_hand_edit_is_restored_with_an_event_naming_the_fields() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    dep = kube.objects[("Deployment", "shop", "orders")]
    dep["spec"]["replicas"] = 1  # kubectl scale
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"  # kubectl set image
    kube.writes.clear()
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "Deployment")]
    assert events.posted == [("Normal", "RestoredDeployment")]
    restored = kube.objects[("Deployment", "shop", "orders")]
    assert restored["spec"]["replicas"] == 2
    assert restored["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []


def test_pods_of_the_pool_are_read_and_their_failures_reported() -> None:
    kube = FakeKube()
    reconciler, events = _setup(kube)
    reconciler.reconcile_by_name("shop", "orders")
    dep = kube.objects[("Deployment", "shop", "orders")]
    dep["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                     "readyReplicas": 1, "availableReplicas": 1}  # fmt: skip
    labels = dep["spec"]["template"]["metadata"]["labels"]
    waiting = {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}
    kube.put({
        "kind": "Pod",
        "metadata": {"name": "orders-abc", "namespace": "shop", "labels": labels},
        "status": {"containerStatuses": [{"name": "worker", "state": {"waiting": waiting}}]},
    })  # fmt: skip
    kube.put({"kind": "Pod", "metadata": {"name": "other", "namespace": "shop"},
              "status": {"phase": "Failed"}})  # fmt: skip
    events.posted.clear()
    reconciler.reconcile_by_name("shop", "orders")
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "PodsFailing"
    assert degraded["message"] == (
        "1 of 1 pods failing; pod orders-abc: container worker: CrashLoopBackOff: "
        "back-off 40s restarting"
    )
    assert ("Warning", "PodsFailing") in events.posted


# -- the store step ------------------------------------------------------------------------------


class FakeStores(StoreObserver):
    """Answers `observe` with a canned observation (or failure); records what it was asked."""

    def __init__(self, answer: StoreObservation | StoreUnobservable) -> None:
        super().__init__()
        self.answer = answer
        self.asked: list[tuple[tuple[str, str], str, str]] = []
        self.forgotten: list[tuple[str, str]] = []

    def observe(self, key: tuple[str, str], url: str, pool: str) -> StoreObservation:
        self.asked.append((key, url, pool))
        if isinstance(self.answer, StoreUnobservable):
            raise self.answer
        return self.answer

    def forget(self, key: tuple[str, str]) -> None:
        self.forgotten.append(key)


def _secret(name: str, url: str) -> dict[str, Any]:
    data = {"url": base64.b64encode(url.encode()).decode()}
    return {"kind": "Secret", "metadata": {"name": name, "namespace": "shop"}, "data": data}


def _store_condition(kube: FakeKube) -> tuple[str, str]:
    status = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"]
    cond = next(c for c in status["conditions"] if c["type"] == "StoreObserved")
    return cond["status"], cond["reason"]


def test_a_missing_store_secret_is_a_condition_and_the_children_are_still_written() -> None:
    kube = FakeKube()
    stores = FakeStores(store(worker("w1")))
    kube.put(registry() | {"kind": "OrchestrationRegistry"})
    events = Events()
    Reconciler(kube, events, stores).reconcile_by_name("shop", "orders")
    assert kube.writes == [("apply", "ConfigMap"), ("apply", "Deployment"), ("status", "orders")]
    assert _store_condition(kube) == ("False", "SecretUnreadable")
    assert ("Warning", "SecretUnreadable") in events.posted
    assert stores.asked == []


def test_a_sqlite_store_is_not_observable_and_never_opened() -> None:
    kube = FakeKube()
    kube.put(registry() | {"kind": "OrchestrationRegistry"})
    kube.put(_secret("orders-store", "sqlite:///data/durox.db"))
    stores = StoreObserver()
    try:
        Reconciler(kube, Events(), stores).reconcile_by_name("shop", "orders")
    finally:
        stores.close()
    assert _store_condition(kube) == ("False", "StoreNotObservable")
    assert stores.open_keys() == set()


def test_the_operator_secret_is_preferred_and_the_pool_named() -> None:
    kube = FakeKube()
    body = registry()
    body["kind"] = "OrchestrationRegistry"
    body["spec"]["store"]["operatorSecretRef"] = {"name": "orders-store-ro"}
    kube.put(body)
    kube.put(_secret("orders-store", "postgresql://worker:w@db/app"))
    kube.put(_secret("orders-store-ro", "postgresql://observer:o@db/app"))
    stores = FakeStores(store(worker("w1")))
    Reconciler(kube, Events(), stores).reconcile_by_name("shop", "orders")
    assert stores.asked == [(("shop", "orders"), "postgresql://observer:o@db/app", "orders")]
    assert _store_condition(kube) == ("True", "Observed")


def test_an_unreachable_store_is_a_condition_not_a_crash() -> None:
    kube = FakeKube()
    kube.put(registry() | {"kind": "OrchestrationRegistry"})
    kube.put(_secret("orders-store", "postgresql://observer:o@db/app"))
    stores = FakeStores(StoreUnobservable("StoreUnreachable", "cannot reach the store"))
    Reconciler(kube, Events(), stores).reconcile_by_name("shop", "orders")
    assert _store_condition(kube) == ("False", "StoreUnreachable")
    assert ("apply", "Deployment") in kube.writes


def test_a_deleted_registry_closes_its_store_connection() -> None:
    kube = FakeKube()
    stores = FakeStores(store())
    reconciler = Reconciler(kube, Events(), stores)
    reconciler.reconcile_by_name("shop", "gone")
    reconciler.forget("shop", "other")
    assert stores.forgotten == [("shop", "gone"), ("shop", "other")]


def test_the_store_url_password_is_redacted() -> None:
    assert redacted("postgresql://observer:s3cret@db/app") == "postgresql://observer:***@db/app"


def test_a_failed_store_is_not_dialled_again_until_its_retry_time() -> None:
    stores = StoreObserver(timeout=1.0, retry_after=60.0)
    try:
        url = "postgresql://x:secret@127.0.0.1:1/none"
        with pytest.raises(StoreUnobservable) as first:
            stores.observe(("shop", "orders"), url, "orders")
        with pytest.raises(StoreUnobservable) as again:
            stores.observe(("shop", "orders"), url, "orders")
        assert again.value is first.value
        assert first.value.reason == "StoreUnreachable" and "secret" not in str(first.value)
    finally:
        stores.close()


def test_metrics_report_each_registrys_store_and_the_passes() -> None:
    kube = FakeKube()
    kube.put(registry() | {"kind": "OrchestrationRegistry"})
    kube.put(_secret("orders-store", "postgresql://observer:o@db/app"))
    seen = store(
        worker("w1", {"checkout": ["1.10.0"], "refund": ["2.0.0"]}),
        worker("w2", live=False),
        versions=(usage("checkout", "1.0.0", {"0.2.0": 4}), usage("checkout", "1.10.0", {None: 2})),
    )
    metrics = OperatorMetrics()
    reconciler = Reconciler(kube, Events(), FakeStores(seen), metrics)
    reconciler.reconcile_by_name("shop", "orders")
    value = metrics.registry.get_sample_value
    at = {"namespace": "shop", "registry": "orders"}
    assert value("durox_operator_store_observed", at) == 1.0
    assert (
        value("durox_operator_instances", at | {"orchestration": "checkout", "version": "1.0.0"})
        == 4.0
    )
    assert (
        value("durox_operator_instances", at | {"orchestration": "checkout", "version": "1.10.0"})
        == 2.0
    )
    assert (
        value(
            "durox_operator_stranded_instances", at | {"version": "checkout@1.0.0", "pin": "0.2.0"}
        )
        == 4.0
    )
    assert value("durox_operator_workers", at | {"state": "stale"}) == 1.0
    assert value("durox_operator_reconcile_duration_seconds_count", {}) == 1.0

    reconciler.forget("shop", "orders")
    assert "durox_operator_instances{" not in generate_latest(metrics.registry).decode()


def test_a_failed_pass_counts_as_a_reconcile_error() -> None:
    kube = FakeKube(fail_apply=KubeError("HTTP 500", 500))
    kube.put(registry() | {"kind": "OrchestrationRegistry"})
    metrics = OperatorMetrics()
    Reconciler(kube, Events(), None, metrics).reconcile_by_name("shop", "orders")
    at = {"namespace": "shop", "registry": "orders"}
    assert metrics.registry.get_sample_value("durox_operator_reconcile_errors_total", at) == 1.0


def test_status_keys_the_plan_drops_leave_the_cluster_too() -> None:
    """The status is merge-patched, and a merge patch keeps what it does not name: without
    nulls, a pin gone from status.drain.pinned, or the drain's emptySince cleared because
    work came back, would stay (and the pool would be removed on a stale clock)."""
    kube = FakeKube()
    body = registry(drain={"mode": "Auto", "supportedVersions": {"max": "0.9.0"}})
    kube.put(body | {"kind": "OrchestrationRegistry"})
    kube.put(_secret("orders-store", "postgresql://observer:o@db/app"))
    pinned = store(worker("w1"), versions=(usage("checkout", "1.0.0", {"0.0.5": 3}),))
    stores = FakeStores(pinned)
    reconciler = Reconciler(kube, Events(), stores)

    def drain() -> dict[str, Any]:
        got: dict[str, Any] = kube.objects[("OrchestrationRegistry", "shop", "orders")]["status"][
            "drain"
        ]
        return got

    reconciler.reconcile_by_name("shop", "orders")
    assert drain()["pinned"] == {"0.0.5": 3} and "emptySince" not in drain()
    stores.answer = store(worker("w1"))  # the last pinned instance ended
    reconciler.reconcile_by_name("shop", "orders")
    assert drain()["pinned"] == {} and "emptySince" in drain()
    stores.answer = pinned  # work for the drain pool came back: the clock is cleared
    reconciler.reconcile_by_name("shop", "orders")
    assert drain()["pinned"] == {"0.0.5": 3} and "emptySince" not in drain()


def test_a_status_patch_names_each_dropped_key_with_null() -> None:
    from durox_operator.planner import status_patch

    before = {"drain": {"pinned": {"0.0.5": 3}, "emptySince": "t"}, "kopf": {"a": 1}, "x": [1]}
    after = {"drain": {"pinned": {}}, "x": [2]}
    assert status_patch(before, after) == {
        "drain": {"pinned": {"0.0.5": None}, "emptySince": None},
        "x": [2],
    }  # status.kopf is not the plan's: left alone


def test_a_refused_login_is_named_as_such_not_as_an_unreachable_store() -> None:
    import asyncpg

    from durox.errors import StoreUnavailableError
    from durox_operator.store import _classify

    url = "postgresql://observer:s3cret@db/app"
    try:
        try:
            raise asyncpg.InvalidPasswordError('password authentication failed for user "o"')
        except asyncpg.InvalidPasswordError as exc:
            raise StoreUnavailableError("postgres connection: refused") from exc
    except StoreUnavailableError as wrapped:
        reason, message = _classify(wrapped, url)
    assert reason == "StoreNotObservable"
    assert message.startswith("the store refused the operator's login")
    assert "s3cret" not in message
