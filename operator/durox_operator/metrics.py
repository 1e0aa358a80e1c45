"""The operator's Prometheus metrics: what each registry's store said on its last pass, and
how the passes go.

Per-registry gauges come from one snapshot per registry, replaced whole on every pass that
read the store and dropped when the registry goes, through a custom collector: a version whose
instances all ended disappears from the scrape instead of lingering at its last value.
Served on its own port (`durox-operator run --metrics-port`), on a registry of its own, not the
process-wide default one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Key = tuple[str, str]
"""(namespace, registry name)."""


@dataclass(frozen=True)
class Snapshot:
    """One registry's last observation, as the metrics report it."""

    observed: bool
    instances: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(NAME, version) -> instances not ended."""
    stranded: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(NAME@version, engine pin or "none") -> instances no live worker can run."""
    live_workers: int = 0
    stale_workers: int = 0
    drain_pinned: Mapping[str, int] = field(default_factory=dict)


class _Snapshots(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[Key, Snapshot] = {}

    def put(self, key: Key, snap: Snapshot) -> None:
        with self._lock:
            self._by_key[key] = snap

    def drop(self, key: Key) -> None:
        with self._lock:
            self._by_key.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            items = sorted(self._by_key.items())
        base = ["namespace", "registry"]
        observed = GaugeMetricFamily(
            "durox_operator_store_observed",
            "1 when the operator's last pass read the registry's store, else 0",
            labels=base,
        )
        instances = GaugeMetricFamily(
            "durox_operator_instances",
            "Instances not ended per orchestration NAME and version (the store's count)",
            labels=[*base, "orchestration", "version"],
        )
        stranded = GaugeMetricFamily(
            "durox_operator_stranded_instances",
            "Instances not ended that no live worker can run, per NAME@version and engine pin",
            labels=[*base, "version", "pin"],
        )
        workers = GaugeMetricFamily(
            "durox_operator_workers",
            "Capability records of the registry's pool, by state (live or stale)",
            labels=[*base, "state"],
        )
        pinned = GaugeMetricFamily(
            "durox_operator_drain_pinned_instances",
            "Instances not ended pinned outside the main replay range, per engine pin",
            labels=[*base, "pin"],
        )
        for (ns, name), snap in items:
            observed.add_metric([ns, name], 1.0 if snap.observed else 0.0)
            if not snap.observed:
                continue
            for (orch, version), n in sorted(snap.instances.items()):
                instances.add_metric([ns, name, orch, version], float(n))
            for (version, pin), n in sorted(snap.stranded.items()):
                stranded.add_metric([ns, name, version, pin], float(n))
            workers.add_metric([ns, name, "live"], float(snap.live_workers))
            workers.add_metric([ns, name, "stale"], float(snap.stale_workers))
            for pin, n in sorted(snap.drain_pinned.items()):
                pinned.add_metric([ns, name, pin], float(n))
        yield from (observed, instances, stranded, workers, pinned)


class OperatorMetrics:
    """The operator's metrics on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshots = _Snapshots()
        self.registry.register(self._snapshots)
        self.reconcile_seconds = Histogram(
            "durox_operator_reconcile_duration_seconds",
            "Time one reconcile pass of a registry took (reads, store, writes, status)",
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "durox_operator_reconcile_errors",
            "Reconcile passes that failed (an API call raised), per registry",
            ["namespace", "registry"],
            registry=self.registry,
        )

    def record(self, key: Key, snap: Snapshot) -> None:
        self._snapshots.put(key, snap)

    def forget(self, key: Key) -> None:
        self._snapshots.drop(key)
        with contextlib.suppress(KeyError):
            self.reconcile_errors.remove(*key)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
