"""Real-PostgreSQL tier: worker processes, a killed worker, a restarted server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conformance.pg import fresh_schema, pg_dsn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dsn() -> str:
    return pg_dsn()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    async with fresh_schema(dsn) as name:
        yield name


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
def _workers(dsn: str, schema: str, logs: Path) -> Iterator[Workers]:
    w = Workers(dsn, schema, logs)
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def workers(dsn: str, schema: str, tmp_path: Path) -> Iterator[Workers]:
    with _workers(dsn, schema, tmp_path) as w:
        yield w
