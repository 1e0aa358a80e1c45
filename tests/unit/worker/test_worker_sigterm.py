"""SIGTERM on a real `durox worker` process: in-flight work finishes or is handed over.

Two real processes share one SQLite file. The first is stopped while four activities run: the
two that end within its grace period finish there, the two that cannot are released at the end
of it, and the second worker completes everything well before the first one's 60 s leases
could have expired, so the handover came from the release, not from a lapsed lease.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import yaml

from durox import Client
from durox.providers import SqliteProvider
from tests.unit.worker.sample_app import SLEEPY
from tests.unit.worker.support import http_get, wait_until

ROOT = Path(__file__).parents[3]
DUROX = Path(sys.executable).with_name("durox")
APP = "tests.unit.worker.sample_app:app"


async def _start_worker(
    store: Path, config: dict[str, object], node: str, tmp: Path
) -> tuple[asyncio.subprocess.Process, Path]:
    cfg = tmp / f"{node}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = tmp / f"{node}.log"
    env = {**os.environ, "DUROX_STORE_URL": f"sqlite:///{store}", "DUROX_NODE_ID": node}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(DUROX),
            "worker",
            "--app",
            APP,
            "--config",
            str(cfg),
            "--log-format",
            "json",
            "--host",
            "127.0.0.1",
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    return proc, log


def _log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def _port(log: Path) -> int:
    def bound() -> bool:
        return log.exists() and "serving /healthz" in log.read_text()

    await wait_until(bound, timeout=30)
    found = re.search(r"on 127\.0\.0\.1:(\d+)", _text(log))
    assert found is not None
    return int(found.group(1))


def _text(path: Path) -> str:
    return path.read_text()


async def test_sigterm_finishes_or_releases_in_flight_work_and_exits_0(tmp_path: Path) -> None:
    assert DUROX.exists(), f"the durox console script is not installed next to {sys.executable}"
    store = tmp_path / "store.db"
    markers = tmp_path / "markers"
    markers.mkdir()
    provider = await SqliteProvider.open(store)
    try:
        client = Client(provider)
        jobs = {"quick-0": 1.0, "quick-1": 1.0, "long-0": 8.0, "long-1": 8.0}
        for iid, seconds in jobs.items():
            await client.start_orchestration(iid, SLEEPY, {"seconds": seconds, "dir": str(markers)})

        w1, w1_log = await _start_worker(
            store,
            {"http_port": 0, "shutdown_grace_seconds": 2.5, "lock_timeout_seconds": 60},
            "w1",
            tmp_path,
        )
        port = await _port(w1_log)
        await wait_until(lambda: len(list(markers.glob("started-*"))) == 4, timeout=30)
        assert (await http_get(port, "/readyz"))[0] == 200

        w1.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert await asyncio.wait_for(w1.wait(), 20) == 0
        took = time.monotonic() - stopped_at
        assert took < 2.5 + 5.0, took  # the long ones were cut off at the grace period

        finished_on_w1 = sorted(p.name.split("-w1-")[0] for p in markers.glob("finished-*"))
        assert finished_on_w1 == ["finished-quick-0", "finished-quick-1"]
        entries = _log(w1_log)
        got_term = next(e for e in entries if e["message"] == "received SIGTERM")
        assert got_term["worker_id"] == "w1"  # every line of the process names its worker
        assert entries[-1]["message"] == "worker exiting with status 0"
        assert not await client.list_workers()  # w1 removed its capability record

        w2, _ = await _start_worker(store, {"http_port": 0}, "w2", tmp_path)
        began = time.monotonic()
        try:
            for iid, seconds in jobs.items():
                status = await client.wait_for_orchestration(iid, timeout=40)
                assert status.status == "Completed", (iid, status)
                assert status.output == f"slept {seconds}"
        finally:
            w2.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(w2.wait(), 30) == 0
        assert time.monotonic() - began < 30  # far below w1's 60 s lease: it was released
    finally:
        await provider.close()

    names = sorted(p.name for p in markers.iterdir())
    # each quick activity ran once (on w1); each long one was cut off on w1 and ran again,
    # in full, on w2, with its attempt not counted against it
    assert names == sorted(
        [
            "started-quick-0-w1-1.json",
            "finished-quick-0-w1-1.json",
            "started-quick-1-w1-1.json",
            "finished-quick-1-w1-1.json",
            "started-long-0-w1-1.json",
            "started-long-0-w2-1.json",
            "finished-long-0-w2-1.json",
            "started-long-1-w1-1.json",
            "started-long-1-w2-1.json",
            "finished-long-1-w2-1.json",
        ]
    ), names
