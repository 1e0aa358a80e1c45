"""Builders for raw OrchestrationRegistry and Deployment bodies, as the apiserver returns them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from durox.providers import ObservedWorker, StoreObservation, VersionUsage, WorkerRecord


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
            # Image changes here test other things; the replay check that would hold them has
            # its own tests (test_operator_replaycheck.py), which turn it back on.
            "rollout": {"replayCheck": {"mode": "Skip"}},
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


# -- store observations, as `durox.providers.ProviderAdmin.observe` returns them ---------------

T0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)
HANDLERS = ("Charge", "Refund")


def worker(
    worker_id: str,
    versions: dict[str, list[str]] | None = None,
    *,
    activities: tuple[str, ...] = HANDLERS,
    sessions: tuple[str, ...] = (),
    live: bool = True,
    node: str | None = None,
    replay: tuple[str, str] = ("0.1.0", "0.3.0"),
) -> ObservedWorker:
    """A capability record of pool `orders`; by default registering the fixture's versions."""
    registered = versions or {"checkout": ["1.0.0", "1.9.0", "1.10.0"], "refund": ["2.0.0"]}
    record = WorkerRecord(
        worker_id=worker_id,
        node_id=node,
        pool="orders",
        engine_version="0.2.0",
        replay_min=replay[0],
        replay_max=replay[1],
        orchestrations={
            n: {"versions": list(v), "policy": "latest"} for n, v in registered.items()
        },
        activities=list(activities),
        session_activities=list(sessions),
        config_revision="r1",
        started_at=T0,
        heartbeat_at=T0,
    )
    age = timedelta(seconds=2 if live else 300)
    return ObservedWorker(record=record, heartbeat_age=age, live=live)


def usage(
    name: str, version: str, pins: dict[str | None, int], oldest: str = "i-1"
) -> VersionUsage:
    return VersionUsage(
        orchestration_name=name,
        orchestration_version=version,
        instances=sum(pins.values()),
        by_pin=dict(pins),
        oldest_instance_id=oldest,
        oldest_created_at=T0 - timedelta(days=3),
    )


def store(*workers: ObservedWorker, versions: tuple[VersionUsage, ...] = ()) -> StoreObservation:
    return StoreObservation(
        observed_at=T0,
        pool="orders",
        versions=versions,
        failed_since=T0 - timedelta(hours=1),
        failures=(),
        stale_after=timedelta(seconds=30),
        workers=tuple(workers),
    )
