"""Builders for raw OrchestrationRegistry and Deployment bodies, as the apiserver returns them."""

from __future__ import annotations

import copy
from typing import Any


def registry(**spec_changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {
            "name": "orders",
            "namespace": "shop",
            "uid": "1111-2222",
            "generation": 3,
        },
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 2,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "orders-store", "key": "url"}},
            "orchestrations": [
                {"name": "checkout", "versions": ["1.0.0", "1.10.0", "1.9.0"], "policy": "latest"},
                {"name": "refund", "versions": ["2.0.0"], "policy": "exact", "version": "2.0.0"},
            ],
            "replay": {"supportedVersions": {"min": "0.1.0", "max": "0.3.0"}},
            "worker": {"httpPort": 8080},
        },
    }
    body["spec"].update(copy.deepcopy(spec_changes))
    return body


def deployment(
    *,
    generation: int = 1,
    observed: int = 1,
    replicas: int = 2,
    updated: int = 2,
    ready: int = 2,
    available: int = 2,
    total: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": "shop", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas if total is None else total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }
