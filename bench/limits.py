"""The machine's own limits, measured in the same run as the systems: what one durable commit
costs here. No orchestration engine can finish more durable steps per second than its store
can commit, so these are the ceilings the report divides by.

- SQLite: single-writer commits per second (WAL, the same `synchronous` level as the systems).
- PostgreSQL: `pgbench -b simple-update` TPS, and a `FOR UPDATE SKIP LOCKED` dequeue rate (one
  committed delete per dequeue, several connections), the shape of a durable queue's fetch.
"""

from __future__ import annotations

import asyncio
import glob
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit


def sqlite_commit_rate(workdir: str, sync: str, seconds: float) -> float:
    path = Path(workdir) / f"limit-commit-{sync.lower()}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT)")
        n = 0
        deadline = time.perf_counter() + seconds
        began = time.perf_counter()
        while time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", ("x" * 200,))
            conn.execute("COMMIT")
            n += 1
        return n / (time.perf_counter() - began)
    finally:
        conn.close()


def pgbench_binary() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if not found:
        raise RuntimeError("pgbench not found")
    return found


def pgbench_tps(dsn: str, seconds: int, clients: int) -> float:
    """`pgbench -b simple-update` on its own tables (scale 10) in the benchmark database."""
    exe = pgbench_binary()
    subprocess.run([exe, "-i", "-q", "-s", "10", dsn], check=True, capture_output=True, timeout=300)
    out = subprocess.run(
        [exe, "-n", "-b", "simple-update", "-c", str(clients), "-j", "2", "-T", str(seconds), dsn],
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    ).stdout
    match = re.search(r"tps = ([0-9.]+)", out)
    if not match:
        raise RuntimeError(f"no tps in pgbench output: {out[-300:]}")
    return float(match.group(1))


def pgbench_version() -> str:
    return subprocess.run(
        [pgbench_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


async def skip_locked_rate(dsn: str, seconds: float, connections: int) -> float:
    """Committed single-row dequeues per second with `FOR UPDATE SKIP LOCKED`."""
    import asyncpg

    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "DROP TABLE IF EXISTS bench_queue;"
        "CREATE TABLE bench_queue (id bigserial PRIMARY KEY, payload text NOT NULL);"
        "INSERT INTO bench_queue (payload) SELECT repeat('x', 200) FROM generate_series(1, 200000)"
    )
    await setup.close()
    done = 0
    deadline = time.perf_counter() + seconds

    async def consumer() -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        try:
            while time.perf_counter() < deadline:
                got = await conn.fetchval(
                    "DELETE FROM bench_queue WHERE id = (SELECT id FROM bench_queue ORDER BY id"
                    " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
                )
                if got is None:
                    return
                done += 1
        finally:
            await conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(consumer() for _ in range(connections)))
    return done / (time.perf_counter() - began)


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(path=f"/{database}").geturl()
