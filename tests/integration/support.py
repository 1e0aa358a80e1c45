"""Helpers the real-PostgreSQL tests share: worker processes on one schema, a workload of
pipelines, and the exactly-once check of what they left in the store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from durox import Client
from durox.core import events as ev
from durox.providers import PostgresProvider
from tests.integration.worker_proc import STEPS

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Worker processes on one schema; each is stopped (or killed) by the end of the test."""

    def __init__(self, dsn: str, schema: str, logs: Path) -> None:
        self.dsn, self.schema, self.logs = dsn, schema, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int) -> None:
        for _ in range(n):
            with open(self.logs / f"worker-{len(self.procs)}.log", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "tests.integration.worker_proc",
                            self.dsn,
                            self.schema,
                        ],
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "PYTHONPATH": str(ROOT)},
                    )
                )
        deadline = time.monotonic() + 60
        for i in range(len(self.procs) - n, len(self.procs)):
            path = self.logs / f"worker-{i}.log"
            while b"ready" not in path.read_bytes():
                assert self.procs[i].poll() is None, path.read_text()
                assert time.monotonic() < deadline, "worker did not start"
                time.sleep(0.05)

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log"))
        )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def running_workers(dsn: str, schema: str, logs: Path) -> Iterator[Workers]:
    w = Workers(dsn, schema, logs)
    try:
        yield w
    finally:
        w.stop()


async def start_all(client: Client, n: int) -> None:
    for base in range(0, n, 100):
        await asyncio.gather(
            *(client.start_orchestration(f"p{i}", "Pipeline", i) for i in range(base, base + 100))
        )


async def completed_count(provider: PostgresProvider) -> int:
    return (await provider.system_metrics()).instances_by_status.get("Completed", 0)


async def wait_all(provider: PostgresProvider, workers: Workers, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (done := await completed_count(provider)) < n:
        assert time.monotonic() < deadline, f"{done}/{n} completed\n{workers.log_tail()}"
        await asyncio.sleep(0.25)


async def wait_until(provider: PostgresProvider, done: int) -> None:
    """Poll the store (another process does the work: there is nothing local to await)."""
    for _ in range(2400):
        if await completed_count(provider) >= done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {done} completed in 2 minutes")


async def check_exactly_once(provider: PostgresProvider, n: int) -> None:
    infos = await provider.list_instances(limit=n + 10)
    assert len(infos) == n
    assert all(i.status == "Completed" for i in infos)
    assert sorted(i.output for i in infos) == sorted(i + STEPS for i in range(n))
    for info in infos:
        history = await provider.read_history(info.instance_id, 1)
        completions = [e.source_event_id for e in history if isinstance(e, ev.ActivityCompleted)]
        assert len(completions) == len(set(completions)) == STEPS, info.instance_id
        scheduled = [e for e in history if isinstance(e, ev.ActivityScheduled)]
        assert len(scheduled) == STEPS
        assert sum(isinstance(e, ev.OrchestrationCompleted) for e in history) == 1
        assert [e.event_id for e in history] == list(range(1, len(history) + 1))
    depths = await provider.queue_depths()
    assert (depths.orchestrator_ready, depths.orchestrator_locked) == (0, 0)
    assert (depths.worker_ready, depths.worker_locked, depths.worker_delayed) == (0, 0, 0)
