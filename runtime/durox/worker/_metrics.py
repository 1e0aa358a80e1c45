"""Prometheus metrics for one worker process.

The runtime reports through `RuntimeObserver` hooks that run inline on its dispatchers, so each
hook here only bumps a counter. Queue depths are the one thing the runtime does not report: they
are read from the store when `/metrics` is scraped, so the store is asked only as often as
someone is looking. Every metric lives in a registry owned by this object (not the process-wide
default), which keeps two workers in one test process from counting into each other.
"""

from __future__ import annotations

import logging
from typing import Final

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from durox.providers._base import QueueDepths
from durox.runtime import RuntimeObserver
from durox.status import InstanceStatus

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

_TURN_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_ACTIVITY_BUCKETS: Final = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

_ENDINGS: Final[dict[str, str]] = {
    InstanceStatus.COMPLETED: "completions",
    InstanceStatus.FAILED: "failures",
    InstanceStatus.CONTINUED_AS_NEW: "continued_as_new",
    InstanceStatus.CANCELLED: "cancellations",
}


class WorkerMetrics(RuntimeObserver):
    """A `RuntimeObserver` that counts into its own Prometheus registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(standard)  # process_*, python_info, python_gc_*: read-only, shareable
        on = ["name", "version"]
        self.turns = Counter(
            "durox_orchestration_turns", "Acknowledged orchestration turns.", on, registry=r
        )
        self.turn_seconds = Histogram(
            "durox_orchestration_turn_seconds",
            "Time to replay the history and run one turn (store time excluded).",
            on,
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.starts = Counter(
            "durox_orchestration_starts",
            "Executions started (incl. continue_as_new).",
            on,
            registry=r,
        )
        self.endings = {
            status: Counter(
                f"durox_orchestration_{what}",
                f"Executions that ended {status}.",
                on,
                registry=r,
            )
            for status, what in _ENDINGS.items()
        }
        self.activities = Counter(
            "durox_activity_executions",
            "Activity executions by outcome (completed, failed, poisoned).",
            ["name", "outcome"],
            registry=r,
        )
        self.activity_seconds = Histogram(
            "durox_activity_duration_seconds",
            "Activity handler run time.",
            ["name"],
            buckets=_ACTIVITY_BUCKETS,
            registry=r,
        )
        self.cache_turns = Counter(
            "durox_instance_cache_turns",
            "Turns with the instance cache on: run on a kept state, or replayed from the store.",
            ["result"],
            registry=r,
        )
        self.cache_evictions = Counter(
            "durox_instance_cache_evictions",
            "Kept instance states dropped to hold the instance cache's bounds, by reason: "
            "count or bytes (least recently used, evicted), oversized (larger than the whole "
            "byte budget, not kept). Each replays from the store at its next turn.",
            ["reason"],
            registry=r,
        )
        self.poisoned = Counter(
            "durox_poisoned", "Messages given up on after max_attempts.", ["kind"], registry=r
        )
        self.queue_depth = Gauge(
            "durox_queue_depth",
            "Messages in the store's queues when last scraped (the whole store, not this worker).",
            ["queue", "state"],
            registry=r,
        )
        self.info = Gauge(
            "durox_worker_info",
            "Always 1; labels carry this worker's identity and applied config revision.",
            ["worker_id", "pool", "engine_version", "config_revision"],
            registry=r,
        )

        self.config_rejections = Counter(
            "durox_config_rejections",
            "Config files (or revisions) read on reload and rejected; the last good one served on.",
            registry=r,
        )
        self.config_rejected = Gauge(
            "durox_config_rejected",
            "1 while the newest config file is rejected and an older revision serves, else 0.",
            registry=r,
        )

    # -- RuntimeObserver ----------------------------------------------------------------------

    def on_turn(self, name: str, version: str, status: str, started: bool, seconds: float) -> None:
        self.turns.labels(name, version).inc()
        self.turn_seconds.labels(name, version).observe(seconds)
        if started:
            self.starts.labels(name, version).inc()
        ending = self.endings.get(status)
        if ending is not None:
            ending.labels(name, version).inc()

    def on_activity(self, name: str, outcome: str, seconds: float) -> None:
        self.activities.labels(name, outcome).inc()
        if outcome == "poisoned":
            self.poisoned.labels("activity").inc()
        else:
            self.activity_seconds.labels(name).observe(seconds)

    def on_poison(self, kind: str, reason: str) -> None:
        self.poisoned.labels(kind).inc()

    def on_instance_cache(self, kept: bool) -> None:
        self.cache_turns.labels("kept" if kept else "replayed").inc()

    def on_instance_cache_eviction(self, reason: str) -> None:
        self.cache_evictions.labels(reason).inc()

    # -- set by the worker --------------------------------------------------------------------

    def set_identity(
        self, worker_id: str, pool: str, engine_version: str, config_revision: str
    ) -> None:
        self.info.clear()
        self.info.labels(worker_id, pool, engine_version, config_revision).set(1)

    def set_config_rejected(self, rejected: bool) -> None:
        if rejected:
            self.config_rejections.inc()
        self.config_rejected.set(1 if rejected else 0)

    def set_queue_depths(self, d: QueueDepths) -> None:
        for queue, state, value in (
            ("orchestrator", "ready", d.orchestrator_ready),
            ("orchestrator", "delayed", d.orchestrator_delayed),
            ("orchestrator", "locked", d.orchestrator_locked),
            ("worker", "ready", d.worker_ready),
            ("worker", "delayed", d.worker_delayed),
            ("worker", "locked", d.worker_locked),
        ):
            self.queue_depth.labels(queue, state).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
