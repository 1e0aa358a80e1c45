"""Shared pieces: what a case is, the closed-loop driver every system is measured with, and the
statistics. Kept free of durox and of every peer so each adapter imports only its own system.

A case runs in its own process (`python -m bench.case`), so peak memory is per process and one
system's threads or leaked state never touch another's figures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Workloads: (a) five activities in sequence, (b) five in parallel joined, (c) one activity
# (latency), (d) timer then activity, repeated through continue_as_new.
ACTIVITIES_PER_INSTANCE = {"seq5": 5, "fanout5": 5, "single": 1, "timer_can": 3}
CAN_ROUNDS = 3  # timer_can: executions per instance, one timer and one activity each
TIMER_MS = 1


@dataclass
class Case:
    """One measured configuration. `inflight` instances are kept running (closed loop)."""

    system: str  # durox | duroxide | dbos | temporal
    store: str  # sqlite | postgres | temporal-dev
    workload: str
    n: int  # instances per measured run
    inflight: int
    runs: int  # measured runs (a warm-up run of `warmup` instances comes first, discarded)
    warmup: int
    activity_ms: float = 0.0
    procs: int = 1  # worker processes (durox on PostgreSQL)
    orch_conc: int = 16
    act_conc: int = 32
    sync: str = "FULL"
    dsn: str = ""
    workdir: str = ""
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Case:
        return cls(**json.loads(text))

    @property
    def activities(self) -> int:
        return ACTIVITIES_PER_INSTANCE[self.workload]


def instance_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(n)]


RunOne = Callable[[str, int], Awaitable[tuple[float, float]]]
"""Start instance `id` with input `i`, wait for it; return (wall start, wall completion)."""


async def closed_loop(run_one: RunOne, ids: list[str], inflight: int) -> dict[str, Any]:
    """Keep `inflight` instances running until every id has completed; per-instance latency is
    each instance's own start-to-completion time, not the batch time divided by the count."""
    queue = list(reversed(list(enumerate(ids))))
    spans: list[tuple[float, float]] = []

    async def slot() -> None:
        while queue:
            i, iid = queue.pop()
            spans.append(await run_one(iid, i))

    await asyncio.gather(*(slot() for _ in range(min(inflight, len(ids)))))
    return summarize(spans)


def summarize(spans: list[tuple[float, float]]) -> dict[str, Any]:
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    lat = sorted((e - s) * 1000.0 for s, e in spans)
    return {
        "instances": len(spans),
        "seconds": last - first,
        "orch_per_s": len(spans) / (last - first) if last > first else 0.0,
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
    }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set. `VmHWM` first: `ru_maxrss` survives exec on Linux, so
    a case process would report its parent's (the driver's) peak when that is higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def wall() -> float:
    return time.time()


def remove_store_files(path: str, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> None:
    """Start every case from an empty store file (SQLite's side files included)."""
    for suffix in suffixes:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
