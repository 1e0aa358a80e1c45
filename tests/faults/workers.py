"""Real `durox worker` processes for the fault tests, and what a user of them would look at:
`/readyz`, `/metrics`, the log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from tests.faults.pg import free_port

ROOT = Path(__file__).resolve().parents[2]


class WorkerProc:
    """`durox worker --app tests.faults.app:app` against `store`, with its own config file."""

    def __init__(
        self,
        logs: Path,
        name: str,
        store: str,
        *,
        prefix: list[str] | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        **config: Any,
    ) -> None:
        self.name, self.host = name, host
        self.port = free_port()
        self.log = logs / f"{name}.log"
        conf = {"revision": "1", "http_port": self.port, "lock_timeout_seconds": 3, **config}
        (logs / f"{name}.yaml").write_text(yaml.safe_dump(conf))
        cmd = [
            *(prefix or []),
            sys.executable,
            "-m",
            "durox.cli",
            "worker",
            "--app",
            "tests.faults.app:app",
            "--config",
            str(logs / f"{name}.yaml"),
            "--node-id",
            name,
            "--host",
            "0.0.0.0",
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "DUROX_STORE_URL": store,
                    "DUROX_FAULT_MARKS": str(logs / "marks"),
                    **(env or {}),
                },
            )
        (logs / "marks").mkdir(exist_ok=True)

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        url = f"http://{self.host}:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (0 if absent)."""
        total = 0.0
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 120, every: float = 0.2
) -> float:
    """Poll `check` until true; the seconds it took. Fails after `timeout` (generous: the
    figures are measured, never asserted against a clock)."""
    began = time.monotonic()
    while True:
        ok = check()
        if not isinstance(ok, bool):
            ok = await ok
        if ok:
            return time.monotonic() - began
        assert time.monotonic() - began < timeout, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(every)


def tails(*workers: WorkerProc) -> str:
    return "\n".join(f"--- {w.name}\n{w.text()[-4000:]}" for w in workers)


def record(fault: str, **figures: Any) -> None:
    """Append one row of figures to `$DUROX_FAULT_FIGURES` (if set) for docs/reliability.md."""
    path = os.environ.get("DUROX_FAULT_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"fault": fault, **figures}) + "\n")
