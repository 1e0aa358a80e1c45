"""The server restarts in the middle of a run: workers reconnect (pool and listener) and finish."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import time

import asyncpg
import pytest

from durox import Client
from durox.providers import PostgresProvider
from tests.integration.support import (
    Workers,
    check_exactly_once,
    completed_count,
    start_all,
    wait_until,
)

N = 300


async def _restart_server(dsn: str) -> None:
    """Restart the test cluster with pg_ctl (it must run on this machine)."""
    conn = await asyncpg.connect(dsn)
    try:
        data = await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    finally:
        await conn.close()
    pg_ctls = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    have_data = await asyncio.to_thread(lambda: os.path.isdir(data))
    if not (pg_ctls and have_data):
        message = f"cannot restart the server at {dsn}: no pg_ctl or data directory here"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    owner = os.stat(data).st_uid
    run_as = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 and owner != 0 else []
    log = os.path.join(data, "restart.log")
    await asyncio.to_thread(
        subprocess.run,
        [*run_as, pg_ctls[-1], "-D", data, "-l", log, "-m", "fast", "-w", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


async def test_workers_survive_a_server_restart(dsn: str, schema: str, workers: Workers) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=2)
    try:
        workers.start(2)
        await start_all(Client(provider), N)
        await wait_until(provider, N // 6)
        await _restart_server(dsn)
        assert await _wait_for_store(provider) < N, "finished before the restart"
        deadline = time.monotonic() + 180
        while (done := await _completed_retrying(provider)) < N:
            assert time.monotonic() < deadline, f"{done}/{N}\n{workers.log_tail()}"
            await asyncio.sleep(0.25)
        await check_exactly_once(provider, N)
        assert all(p.poll() is None for p in workers.procs), workers.log_tail()
    finally:
        workers.stop()
        await provider.close()


async def _completed_retrying(provider: PostgresProvider) -> int:
    from durox.errors import RetryableError

    try:
        return await completed_count(provider)
    except RetryableError:
        return -1


async def _wait_for_store(provider: PostgresProvider) -> int:
    deadline = time.monotonic() + 60
    while (done := await _completed_retrying(provider)) < 0:
        assert time.monotonic() < deadline, "the store did not come back"
        await asyncio.sleep(0.1)
    return done
