"""Helpers for the worker tests: a real HTTP client, ConfigMap-style files, a running worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from durox.worker import App, Worker, WorkerSettings

APP = "tests.unit.worker.sample_app:app"


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) from urllib, run in a thread so the loop keeps serving."""

    def fetch() -> tuple[int, str, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    return await asyncio.to_thread(fetch)


class ConfigMapDir:
    """A folder laid out as the kubelet mounts a ConfigMap, updated the way it updates one.

    `worker.yaml -> ..data/worker.yaml`, `..data -> ..<version>/`; an update writes a new
    version folder and renames a fresh symlink over `..data`, one atomic step.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.root / "worker.yaml"

    def write(self, content: dict[str, Any] | str) -> None:
        self.versions += 1
        version = self.root / f"..2026_01_01_{self.versions:04d}"
        version.mkdir()
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        (version / "worker.yaml").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/worker.yaml")


async def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_worker(
    store: Path,
    config: Path | None = None,
    app: App | None = None,
    app_spec: str = APP,
    node_id: str | None = None,
) -> AsyncIterator[Worker]:
    """A worker in this event loop; stopped (and checked to exit 0) on the way out."""
    worker = Worker(
        WorkerSettings(
            app=app_spec,
            store_url=f"sqlite:///{store}",
            config_path=config,
            node_id=node_id,
            host="127.0.0.1",
            reload_interval=0.05,
        ),
        app=app,
    )
    task = asyncio.create_task(worker.run(), name="worker under test")
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if not ready.done():
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        worker.request_stop()
        code = await task
        raise AssertionError(f"worker did not become ready (exit status {code})")
    try:
        yield worker
    finally:
        worker.request_stop()
        assert await task == 0
