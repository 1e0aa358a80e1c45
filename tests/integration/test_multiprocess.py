"""Four worker processes on one PostgreSQL: every instance completes exactly once, every activity
completion is recorded exactly once, also when a worker is SIGKILLed in the middle."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from durox import Client
from durox.core import events as ev
from durox.providers import PostgresProvider
from tests.integration.conftest import Workers
from tests.integration.worker_proc import STEPS

N = 1000


async def _start_all(client: Client, n: int) -> None:
    for base in range(0, n, 100):
        await asyncio.gather(
            *(client.start_orchestration(f"p{i}", "Pipeline", i) for i in range(base, base + 100))
        )


async def _completed(provider: PostgresProvider) -> int:
    return (await provider.system_metrics()).instances_by_status.get("Completed", 0)


async def _wait_all(provider: PostgresProvider, workers: Workers, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (done := await _completed(provider)) < n:
        assert time.monotonic() < deadline, f"{done}/{n} completed\n{workers.log_tail()}"
        await asyncio.sleep(0.25)


async def _wait_until(provider: PostgresProvider, done: int) -> None:
    """Poll the store (another process does the work: there is nothing local to await)."""
    for _ in range(2400):
        if await _completed(provider) >= done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {done} completed in 2 minutes")


async def _check_exactly_once(provider: PostgresProvider, n: int) -> None:
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


async def test_four_workers_complete_every_instance_exactly_once(
    dsn: str, schema: str, workers: Workers
) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4)
    try:
        workers.start(4)
        began = time.monotonic()
        await _start_all(Client(provider), N)
        await _wait_all(provider, workers, N, timeout=240)
        took = time.monotonic() - began
        print(f"{N} orchestrations x {STEPS} activities on 4 workers: {took:.1f}s")
        await _check_exactly_once(provider, N)
    finally:
        workers.stop()
        await provider.close()


async def test_a_killed_worker_loses_nothing(dsn: str, schema: str, workers: Workers) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4)
    try:
        workers.start(4)
        await _start_all(Client(provider), N)
        await _wait_until(provider, N // 5)
        victim = workers.procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert victim.returncode == -signal.SIGKILL
        assert await _completed(provider) < N, "the run finished before the kill: make it longer"
        await _wait_all(provider, workers, N, timeout=240)
        await _check_exactly_once(provider, N)
    finally:
        workers.stop()
        await provider.close()
