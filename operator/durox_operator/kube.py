"""The operator's only door to the Kubernetes API: read, server-side apply, patch status.

Every call goes through one small class so that failures take one shape (a `KubeError`
carrying the HTTP status, None for the network) and the rest of the operator handles plain dicts,
the same shapes the planner is tested with. Children are written with server-side apply under
one named field manager, so fields other tools own (an autoscaler's replicas, an admission
webhook's annotations) are left alone.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import kubernetes

from durox_operator.model import FIELD_MANAGER, GROUP, PLURAL, VERSION, Obj

logger = logging.getLogger(__name__)

_PATHS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Lease": "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "OrchestrationRegistry": f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}",
}


class KubeError(Exception):
    """An API call failed: `status` is the HTTP status, None when no answer came (the network).

    Nothing retries one call: the failure is reported in the registry's status and the next
    pass (an event or the periodic resync) tries again from the current objects."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def load_config() -> None:
    """In a pod, the ServiceAccount; elsewhere, KUBECONFIG or ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]


class Kube:
    def __init__(self, api: Any | None = None) -> None:
        self._api = api if api is not None else kubernetes.client.ApiClient()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            request = self._api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(*request)
            response.read()
        except Exception as exc:  # urllib3 and socket errors: the network
            raise KubeError(f"{method} {path}: {exc}", None) from exc
        if response.status == 404:
            return None
        data = response.data.decode() if response.data else ""
        if not 200 <= response.status < 300:
            raise KubeError(f"{method} {path}: HTTP {response.status}: {data}", response.status)
        return json.loads(data) if data else {}

    @staticmethod
    def _path(kind: str, namespace: str, name: str | None = None) -> str:
        base = _PATHS[kind].format(ns=quote(namespace, safe=""))
        return base if name is None else f"{base}/{quote(name, safe='')}"

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call("GET", self._path(kind, namespace, name))

    def list_registries(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every registry in `namespace`, or in the whole cluster when it is None."""
        if namespace is None:
            path = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        else:
            path = self._path("OrchestrationRegistry", namespace)
        result = self._call("GET", path)
        items: list[dict[str, Any]] = (result or {}).get("items", [])
        for item in items:  # list items omit these; the reconciler and Events need them
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", "OrchestrationRegistry")
        return items

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """The pods in `namespace` whose labels match every pair of `selector`."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))]
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
        result = self._call("GET", path, query=query)
        items: list[dict[str, Any]] = (result or {}).get("items", [])
        return items

    def apply(self, obj: Obj, manager: str = FIELD_MANAGER, force: bool = True) -> dict[str, Any]:
        """Server-side apply as `manager`; without `force`, a field another manager owns with
        another value is a KubeError with status 409 (a conflict), not taken over."""
        meta = obj["metadata"]
        result = self._call(
            "PATCH",
            self._path(obj["kind"], meta["namespace"], meta["name"]),
            body=dict(obj),
            query=[("fieldManager", manager), ("force", "true" if force else "false")],
            content_type="application/apply-patch+yaml",
        )
        if result is None:
            raise KubeError(f"apply {obj['kind']} {meta['name']}: namespace is gone", 404)
        logger.info("applied %s %s/%s", obj["kind"], meta["namespace"], meta["name"])
        return result

    def create(self, obj: Obj) -> dict[str, Any]:
        """POST a new object; a KubeError with status 409 when one by that name exists."""
        meta = obj["metadata"]
        result = self._call("POST", self._path(obj["kind"], meta["namespace"]), body=dict(obj))
        if result is None:
            raise KubeError(f"create {obj['kind']} {meta['name']}: namespace is gone", 404)
        return result

    def replace(self, obj: Obj) -> dict[str, Any]:
        """PUT `obj` whole. Its `metadata.resourceVersion` makes the write conditional: a
        KubeError with status 409 when the object changed since it was read."""
        meta = obj["metadata"]
        path = self._path(obj["kind"], meta["namespace"], meta["name"])
        result = self._call("PUT", path, body=dict(obj))
        if result is None:
            raise KubeError(f"replace {obj['kind']} {meta['name']}: it is gone", 404)
        return result

    def post_event(self, registry: Obj, type: str, reason: str, message: str) -> None:
        """A core/v1 Event about the registry. Best effort: a lost Event is logged, not raised,
        because the status already says the same thing."""
        meta = registry["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": registry.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": registry.get("kind", "OrchestrationRegistry"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._call(
                "POST", f"/api/v1/namespaces/{quote(meta['namespace'], safe='')}/events", body=event
            )
        except KubeError as exc:
            logger.warning("posting Event %s about %s failed: %s", reason, meta["name"], exc)

    def patch_registry_status(self, namespace: str, name: str, status: Obj) -> None:
        """Merge-patch the registry's status: `status` is a JSON merge patch (RFC 7386), so
        a key it does not name stays as it was and a null removes one (`status_patch`)."""
        self._call(
            "PATCH",
            self._path("OrchestrationRegistry", namespace, name) + "/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Delete one object if it is still the one we saw (`uid`); False if it was already
        gone (a 404 is success). Dependents (a Deployment's ReplicaSets) go in the background."""
        result = self._call(
            "DELETE",
            self._path(kind, namespace, name),
            body={
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "propagationPolicy": "Background",
                "preconditions": {"uid": uid},
            },
        )
        if result is not None:
            logger.info("deleted %s %s/%s", kind, namespace, name)
        return result is not None
