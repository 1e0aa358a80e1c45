"""Four worker processes on one PostgreSQL: every instance completes exactly once, every activity
completion is recorded exactly once, also when a worker is SIGKILLed in the middle."""

from __future__ import annotations

import os
import signal
import time

from durox import Client
from durox.providers import PostgresProvider
from tests.integration.support import (
    Workers,
    check_exactly_once,
    completed_count,
    start_all,
    wait_all,
    wait_until,
)
from tests.integration.worker_proc import STEPS

N = 1000


async def test_four_workers_complete_every_instance_exactly_once(
    dsn: str, schema: str, workers: Workers
) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4)
    try:
        workers.start(4)
        began = time.monotonic()
        await start_all(Client(provider), N)
        await wait_all(provider, workers, N, timeout=240)
        took = time.monotonic() - began
        print(f"{N} orchestrations x {STEPS} activities on 4 workers: {took:.1f}s")
        await check_exactly_once(provider, N)
    finally:
        workers.stop()
        await provider.close()


async def test_a_killed_worker_loses_nothing(dsn: str, schema: str, workers: Workers) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=4)
    try:
        workers.start(4)
        await start_all(Client(provider), N)
        await wait_until(provider, N // 5)
        victim = workers.procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert victim.returncode == -signal.SIGKILL
        assert await completed_count(provider) < N, "finished before the kill: make it longer"
        await wait_all(provider, workers, N, timeout=240)
        await check_exactly_once(provider, N)
    finally:
        workers.stop()
        await provider.close()
