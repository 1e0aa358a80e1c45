"""A rolling upgrade of durox itself on one PostgreSQL: workers of the previous release run a
workload, a worker of this release joins and applies the new migrations under load, both run
side by side on the migrated schema, then the old workers are replaced one by one. Nothing is
lost, nothing is stuck, no instance fails, and both releases did work after the migration."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from durox import Client
from durox.core import events as ev
from durox.providers import PostgresProvider, QueueDepths
from durox.providers.postgres._driver import migrations
from tests.integration.previous_release import previous_commit, python_of, schema_version

N = 100
"""Instances started by the previous release before the migration, and again by this one
after it; each runs an activity, waits for an event (raised after the migration), then runs a
timer, a sub-orchestration with one activity, and an activity."""

SCRIPT = Path(__file__).with_name("upgrade_worker.py")


class Fleet:
    """Worker processes of either release on one schema; all stopped by the end of the test."""

    def __init__(self, dsn: str, schema: str, logs: Path) -> None:
        self.dsn, self.schema, self.logs = dsn, schema, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # The script's own folder comes first on its path; nothing else of this checkout may.
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def _log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, python: Path | str, label: str) -> None:
        with open(self._log(name), "wb") as log:
            self.procs[name] = subprocess.Popen(
                [str(python), str(SCRIPT), "worker", self.dsn, self.schema, label],
                cwd=self.logs,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while b"ready" not in self._log(name).read_bytes():
            assert self.procs[name].poll() is None, self.tail()
            assert time.monotonic() < deadline, f"{name} did not start\n{self.tail()}"
            time.sleep(0.05)

    def run(self, python: Path | str, *args: str) -> None:
        done = subprocess.run(
            [str(python), str(SCRIPT), *args],
            cwd=self.logs,
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

    def stop(self, name: str) -> int:
        proc = self.procs[name]
        proc.terminate()
        return proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log"))
        )


async def _count(conn: asyncpg.Connection, schema: str, where: str) -> int:
    sql = f'SELECT count(*) FROM "{schema}".instances WHERE orchestration_name = $1 AND {where}'
    return int(await conn.fetchval(sql, "Upgrade"))


async def _wait(conn: asyncpg.Connection, schema: str, where: str, n: int, fleet: Fleet) -> None:
    deadline = time.monotonic() + 90
    while (got := await _count(conn, schema, where)) < n:
        assert time.monotonic() < deadline, f"{got}/{n} where {where}\n{fleet.tail()}"
        await asyncio.sleep(0.1)


async def _wait_parked(conn: asyncpg.Connection, schema: str, fleet: Fleet) -> None:
    """Until all N instances run, with nothing queued: each has done its first activity."""
    deadline = time.monotonic() + 90
    q = f'"{schema}"'
    sql = (
        f"SELECT (SELECT count(*) FROM {q}.instances WHERE status = 'Running'),"
        f" (SELECT count(*) FROM {q}.orchestrator_queue) + (SELECT count(*) FROM {q}.worker_queue)"
    )
    while tuple(await conn.fetchrow(sql)) != (N, 0):
        assert time.monotonic() < deadline, f"not parked: {await conn.fetchrow(sql)}"
        await asyncio.sleep(0.1)


async def _version(conn: asyncpg.Connection, schema: str) -> int:
    return int(await conn.fetchval(f'SELECT max(version) FROM "{schema}".durox_migrations'))


async def test_a_rolling_upgrade_loses_nothing_and_leaves_nothing_stuck(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    commit = previous_commit()
    old, new = python_of(commit), sys.executable
    before, after = schema_version(commit), migrations()[-1][0]
    assert before < after, f"{commit[:12]} already has migration {after}: nothing to upgrade"
    began = time.monotonic()
    fleet = Fleet(dsn, schema, tmp_path)
    conn = await asyncpg.connect(dsn)
    provider: PostgresProvider | None = None
    try:
        # The previous release creates the schema and runs a workload.
        fleet.start("old-1", old, "old")
        fleet.start("old-2", old, "old")
        assert await _version(conn, schema) == before
        fleet.run(old, "start", dsn, schema, "a", str(N))
        await _wait_parked(conn, schema, fleet)  # every instance waits for its event

        # A worker of this release joins, migrating the schema while the old ones work.
        fleet.start("new-1", new, "new")
        assert await _version(conn, schema) == after
        provider = await PostgresProvider.connect(dsn, schema=schema)
        client = Client(provider)
        await asyncio.gather(*(client.start_orchestration(f"b{i}", "Upgrade", i) for i in range(N)))
        await asyncio.gather(*(client.raise_event(f"{p}{i}", "go") for p in "ab" for i in range(N)))

        # Side by side on the migrated schema until the old release has finished instances
        # started after the migration; then the old workers are replaced one at a time.
        await _wait(conn, schema, "instance_id LIKE 'b%' AND output LIKE '%old%'", 3, fleet)
        assert fleet.stop("old-1") == 0, fleet.tail()
        fleet.start("new-2", new, "new")
        assert fleet.stop("old-2") == 0, fleet.tail()
        await _wait(conn, schema, "status = 'Completed'", 2 * N, fleet)
        elapsed = time.monotonic() - began

        # Nothing lost, nothing failed, nothing left in a queue, every history well formed.
        metrics = await provider.system_metrics()
        assert metrics.instances_by_status == {"Completed": 4 * N}, metrics  # parents + children
        depths = await provider.queue_depths()
        assert depths == QueueDepths(0, 0, 0, 0, 0, 0), depths
        parents = await provider.list_instances(name="Upgrade", limit=4 * N)
        assert sorted(i.instance_id for i in parents) == sorted(
            f"{p}{i}" for p in "ab" for i in range(N)
        )
        labels: dict[str, set[str]] = {"a": set(), "b": set()}
        for info in parents:
            assert isinstance(info.output, list) and len(info.output) == 3, info
            labels[info.instance_id[0]].update(info.output)
            if info.instance_id[0] == "a":
                assert info.output[0] == "old", info  # before the migration
            history = await provider.read_history(info.instance_id, 1)
            assert [e.event_id for e in history] == list(range(1, len(history) + 1))
            done = [e.source_event_id for e in history if isinstance(e, ev.ActivityCompleted)]
            assert len(done) == len(set(done)) == 2, info.instance_id
            assert sum(isinstance(e, ev.TimerFired) for e in history) == 1, info.instance_id
            assert sum(isinstance(e, ev.SubOrchestrationCompleted) for e in history) == 1
            assert sum(isinstance(e, ev.OrchestrationCompleted) for e in history) == 1
        # Both releases worked on instances of both halves: the old one after the migration.
        assert labels == {"a": {"old", "new"}, "b": {"old", "new"}}, labels
        print(
            json.dumps(
                {
                    "previous": commit[:12],
                    "schema": [before, after],
                    "instances": 4 * N,
                    "seconds": round(elapsed, 1),
                }
            )
        )
    finally:
        if provider is not None:
            await provider.close()
        await conn.close()
        fleet.stop_all()
