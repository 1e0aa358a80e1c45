"""The HTTP endpoints, hit with a real client: probes, and metrics after real work."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from durox import Client
from durox.demo.health_monitor import HEALTH_MONITOR
from durox.providers import SqliteProvider
from durox.worker import Worker, WorkerSettings
from tests.unit.worker.sample_app import FAILING, SLEEP, SLEEPY
from tests.unit.worker.support import ConfigMapDir, http_get, running_worker, wait_until


def _sample(metrics: str, metric: str, /, **labels: str) -> float:
    """The value of one sample line in Prometheus text format."""
    for line in metrics.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {metric}{labels} in:\n{metrics}")


async def test_probes_and_unknown_paths(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    async with running_worker(tmp_path / "s.db", cm.path) as worker:
        assert await http_get(worker.port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        assert (await http_get(worker.port, "/readyz"))[::2] == (200, "ready\n")
        assert (await http_get(worker.port, "/readyz", method="HEAD"))[::2] == (200, "")
        assert (await http_get(worker.port, "/nope"))[0] == 404
        assert (await http_get(worker.port, "/healthz", method="POST"))[0] == 405


async def test_a_raw_malformed_request_gets_400(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    async with running_worker(tmp_path / "s.db", cm.path) as worker:
        reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
        writer.write(b"HELLO\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_not_ready_until_the_store_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store URL names a directory SQLite cannot open: /healthz is up, /readyz is not."""
    blocker = tmp_path / "not-a-file.db"
    blocker.mkdir()
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    worker = Worker(
        WorkerSettings(
            app="tests.unit.worker.sample_app:app",
            store_url=f"sqlite:///{blocker}",
            config_path=cm.path,
            host="127.0.0.1",
        )
    )
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if worker._http is not None:
            break
        await asyncio.sleep(0.01)
    status, _, body = await http_get(worker.port, "/readyz")
    assert (status, body) == (503, "not ready: starting\n")
    assert (await http_get(worker.port, "/healthz"))[0] == 200
    await wait_until(lambda: "unreachable" in caplog.text)  # retried, not given up on
    worker.request_stop()
    assert await task == 0


async def test_readyz_fails_when_the_store_stops_answering(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    async with running_worker(tmp_path / "s.db", cm.path) as worker:
        assert (await http_get(worker.port, "/readyz"))[0] == 200
        provider = worker._provider
        assert provider is not None

        async def unreachable(instance_id: str) -> None:
            from durox.errors import StoreUnavailableError

            raise StoreUnavailableError("connection refused")

        original = provider.get_instance
        provider.get_instance = unreachable  # type: ignore[method-assign]
        worker._probe_at = 0.0
        try:
            status, _, body = await http_get(worker.port, "/readyz")
        finally:
            provider.get_instance = original  # type: ignore[method-assign]
        assert (status, body) == (503, "not ready: the store does not answer\n")


async def test_metrics_count_real_work(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0, "revision": "rev-9", "pool": "blue"})
    store = tmp_path / "s.db"
    async with running_worker(store, cm.path, node_id="pod-a") as worker:
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            for i in range(3):
                await client.start_orchestration(f"sleepy-{i}", SLEEPY, {"seconds": 0.01})
            await client.start_orchestration("failing", FAILING, None)
            await client.start_orchestration_versioned(
                "monitor",
                HEALTH_MONITOR,
                "1.0.1",
                {"target": "db", "max_cycles": 2, "interval_ms": 10},
            )
            for iid in ("sleepy-0", "sleepy-1", "sleepy-2", "failing", "monitor"):
                await client.wait_for_orchestration(iid, timeout=20)
        finally:
            await provider.close()
        status, ctype, text = await http_get(worker.port, "/metrics")
    assert status == 200
    assert ctype == CONTENT_TYPE_LATEST
    v2 = {"name": SLEEPY, "version": "2.0.0"}
    assert _sample(text, "durox_orchestration_starts_total", **v2) == 3
    assert _sample(text, "durox_orchestration_completions_total", **v2) == 3
    assert _sample(text, "durox_orchestration_failures_total", name=FAILING) == 1
    mon = {"name": HEALTH_MONITOR, "version": "1.0.1"}
    assert _sample(text, "durox_orchestration_starts_total", **mon) == 2
    assert _sample(text, "durox_orchestration_continued_as_new_total", **mon) == 1
    assert _sample(text, "durox_orchestration_completions_total", **mon) == 1
    assert _sample(text, "durox_orchestration_turn_seconds_count", **v2) == 6
    # Each execution's first turn replays (nothing kept yet); the sleepers' second runs kept.
    assert _sample(text, "durox_instance_cache_turns_total", result="kept") >= 3
    assert _sample(text, "durox_instance_cache_turns_total", result="replayed") >= 6
    assert _sample(text, "durox_activity_executions_total", name=SLEEP, outcome="completed") == 3
    assert _sample(text, "durox_activity_duration_seconds_count", name=SLEEP) == 3
    assert _sample(text, "durox_activity_duration_seconds_sum", name=SLEEP) >= 0.03
    assert (
        _sample(
            text,
            "durox_activity_executions_total",
            name="worker-test::activity::boom",
            outcome="failed",
        )
        == 1
    )
    assert _sample(text, "durox_queue_depth", queue="worker", state="ready") == 0
    info = {"worker_id": "pod-a", "pool": "blue", "config_revision": "rev-9"}
    assert _sample(text, "durox_worker_info", **info) == 1


async def test_poison_is_counted(tmp_path: Path) -> None:
    """An orchestration NAME this app does not register is poisoned after max_attempts."""
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0, "max_attempts": 1})
    store = tmp_path / "s.db"
    async with running_worker(store, cm.path) as worker:
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            await client.start_orchestration("ghost", "worker-test::not-registered", None)
            status = await client.wait_for_orchestration("ghost", timeout=20)
            assert status.status == "Failed"
        finally:
            await provider.close()
        _, _, text = await http_get(worker.port, "/metrics")
    assert _sample(text, "durox_poisoned_total", kind="orchestration") == 1


async def test_queue_depths_are_read_at_scrape_time(tmp_path: Path) -> None:
    """Start messages for a NAME nobody registers stay queued (retried with backoff)."""
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    store = tmp_path / "s.db"
    async with running_worker(store, cm.path) as worker:
        _, _, before = await http_get(worker.port, "/metrics")
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            for i in range(2):
                await client.start_orchestration(f"ghost-{i}", "worker-test::not-registered")
        finally:
            await provider.close()
        _, _, after = await http_get(worker.port, "/metrics")

    def orchestrator_total(text: str) -> float:
        return sum(
            _sample(text, "durox_queue_depth", queue="orchestrator", state=state)
            for state in ("ready", "delayed", "locked")
        )

    assert orchestrator_total(before) == 0
    assert orchestrator_total(after) == 2
