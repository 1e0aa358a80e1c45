"""The operator's store step against real PostgreSQL: worker processes write real capability
records and run real instances, the operator observes them through a read-only role, and the
planner decides activation, the removal guard and stranded instances from what it read."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from durox import Client
from durox.providers import PostgresProvider, StoreObservation
from durox_operator import planner
from durox_operator.store import StoreObserver, StoreUnobservable
from tests.unit.operator.support import registry
from tests.unit.operator.test_operator_plan import _converge, _rolled_out, _rolling, _stored

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def _as_role(dsn: str, role: str, password: str) -> str:
    """`dsn` logging in as `role`: the same server and database, another user."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@pytest.fixture
async def observer_dsn(dsn: str, schema: str) -> AsyncIterator[str]:
    """The read-only role docs/operator.md documents, on a migrated schema."""
    await (await PostgresProvider.connect(dsn, schema=schema, listen=False)).close()
    role = f"durox_observer_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'observer'")
        await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        yield _as_role(dsn, role, "observer")
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


class Images:
    """Worker processes standing for pods of two images."""

    def __init__(self, dsn: str, schema: str, logs: Path) -> None:
        self.dsn, self.schema, self.logs = dsn, schema, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node: str, versions: str, activities: str = "Charge") -> None:
        path = self.logs / f"{node}.log"
        with open(path, "wb") as log:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.operator_worker", self.dsn,
                 self.schema, node, versions, activities],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"ready" not in path.read_bytes():
            assert self.procs[node].poll() is None, path.read_text()
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)

    def stop(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    def stop_all(self) -> None:
        for node in list(self.procs):
            self.stop(node)


@pytest.fixture
def images(dsn: str, schema: str, tmp_path: Path) -> Iterator[Images]:
    w = Images(dsn, schema, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


@pytest.fixture
def observer(schema: str) -> Iterator[StoreObserver]:
    stores = StoreObserver(schema=schema, timeout=5.0)
    try:
        yield stores
    finally:
        stores.close()


KEY = ("shop", "orders")


async def _observe(stores: StoreObserver, url: str) -> StoreObservation:
    return await asyncio.to_thread(stores.observe, KEY, url, "orders")


async def _until(stores: StoreObserver, url: str, check: Any) -> StoreObservation:
    deadline = time.monotonic() + 30
    while True:
        seen = await _observe(stores, url)
        if check(seen):
            return seen
        assert time.monotonic() < deadline, f"store never showed it: {seen}"
        await asyncio.sleep(0.2)


def _spec(versions: list[str]) -> dict[str, Any]:
    body = registry()
    body["spec"]["orchestrations"] = [{"name": "checkout", "versions": versions}]
    return body


async def test_a_read_only_role_observes_real_workers_and_cannot_write(
    dsn: str, schema: str, observer_dsn: str, images: Images, observer: StoreObserver
) -> None:
    images.start("orders-a-1", "1.0.0,1.1.0")
    provider = await PostgresProvider.connect(dsn, schema=schema, listen=False)
    try:
        client = Client(provider)
        for i in range(3):
            await client.start_orchestration_versioned(f"c{i}", "checkout", "1.0.0")
        seen = await _until(observer, observer_dsn, lambda s: s.instances == 3)
    finally:
        await provider.close()
    assert [(v.key, v.instances) for v in seen.versions] == [("checkout@1.0.0", 3)]
    ((w, live),) = [(w.record, w.live) for w in seen.workers]
    assert live and w.node_id == "orders-a-1" and w.activities == ["Charge"]
    assert observer.open_keys() == {KEY}

    conn = await asyncpg.connect(observer_dsn, server_settings={"search_path": schema})
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM workers")
    finally:
        await conn.close()
    observer.forget(KEY)
    assert observer.open_keys() == set()


async def test_a_role_without_grants_or_a_dead_server_is_a_reason_not_a_crash(
    dsn: str, schema: str, observer: StoreObserver
) -> None:
    await (await PostgresProvider.connect(dsn, schema=schema, listen=False)).close()
    role = f"durox_nobody_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'nobody'")
        with pytest.raises(StoreUnobservable) as denied:
            await _observe(observer, _as_role(dsn, role, "nobody"))
        assert denied.value.reason == "StoreNotObservable"
        assert ":nobody@" not in str(denied.value)  # the password never reaches a condition
    finally:
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()
    host = urlsplit(dsn).hostname or "127.0.0.1"
    with pytest.raises(StoreUnobservable) as down:
        await _observe(observer, f"postgresql://x:secret@{host}:1/none")
    assert down.value.reason == "StoreUnreachable"
    assert "secret" not in str(down.value)
    assert observer.open_keys() == set()


async def test_a_store_no_worker_has_migrated_yet_is_observed_as_soon_as_one_has(
    dsn: str, schema: str, observer: StoreObserver
) -> None:
    """A registry is created with its store, so the operator's first passes come before any
    worker has created the schema. That answer is named plainly, and it is not kept: the pass
    right after the first worker migrated observes the store. (Found in the real-pod tier: the
    first answer was held for the 30 s back-off meant for a dead server, and a whole upgrade
    ran and finished on Kubernetes' word alone.)"""
    with pytest.raises(StoreUnobservable) as missing:
        await _observe(observer, dsn)
    assert missing.value.reason == "SchemaMissing"
    assert f"no {schema!r} schema yet" in str(missing.value)
    assert "no worker has started on it" in str(missing.value)
    await (await PostgresProvider.connect(dsn, schema=schema, listen=False)).close()
    started = time.monotonic()
    seen = await _observe(observer, dsn)  # at once: no back-off after an answered failure
    assert time.monotonic() - started < 5
    assert seen.instances == 0 and seen.workers == ()


async def test_the_plan_from_real_records_guards_holds_activates_and_finds_strays(
    dsn: str, schema: str, observer_dsn: str, images: Images, observer: StoreObserver
) -> None:
    """An upgrade told through the store: the old image runs 3 instances on 1.0.0; the new
    image drops 1.0.0 (guard), then keeps it but adds 1.2.0 (held until every live worker has
    it, activated then); an image with neither strands the 1.0.0 instances."""
    images.start("orders-a-1", "1.0.0,1.1.0")
    provider = await PostgresProvider.connect(dsn, schema=schema, listen=False)
    try:
        client = Client(provider)
        for i in range(3):
            await client.start_orchestration_versioned(f"c{i}", "checkout", "1.0.0")
        await _until(observer, observer_dsn, lambda s: s.instances == 3)

        old = _spec(["1.0.0", "1.1.0"])
        observed = _converge(old)

        # A new image without 1.0.0: its first worker reports, the rollout is paused.
        images.start("orders-b-1", "1.1.0,1.2.0")
        seen = await _until(observer, observer_dsn, lambda s: len(s.live_workers) == 2)
        dropping = _spec(["1.1.0", "1.2.0"])
        dropping["spec"]["image"] = "example.invalid/orders:2.0.0"
        first = planner.plan(dropping, observed)
        (dep,) = [a for a in first.applies if a.slot == "deployment"]
        rolling = observed.with_child("deployment", _rolling(_stored(dep.obj)))
        guarded = planner.plan(dropping, rolling.with_store(seen))
        assert guarded.guard == {"checkout@1.0.0": 3}
        (paused,) = [a for a in guarded.applies if a.slot == "deployment"]
        assert paused.obj["spec"]["paused"] is True

        # An image that keeps 1.0.0 and adds 1.2.0, rolled out per Kubernetes: the old
        # worker (still live) lacks 1.2.0, so it is held until that worker's record goes.
        keeping = _spec(["1.0.0", "1.1.0", "1.2.0"])
        keeping["spec"]["image"] = "example.invalid/orders:2.1.0"
        first = planner.plan(keeping, observed)
        done = observed.with_child("configmap", _stored(first.applies[0].obj))
        (dep,) = [a for a in first.applies if a.slot == "deployment"]
        done = done.with_child("deployment", _rolled_out(_stored(dep.obj)))
        images.stop("orders-b-1")
        images.start("orders-c-1", "1.0.0,1.1.0,1.2.0")
        seen = await _until(
            observer, observer_dsn, lambda s: {w.record.node_id for w in s.workers if w.live}
            == {"orders-a-1", "orders-c-1"},
        )  # fmt: skip
        held = planner.plan(keeping, done.with_store(seen))
        assert held.versions is not None and held.versions.held == ("checkout",)
        assert "do not register checkout@1.2.0" in str(held.versions.workers_say)
        images.stop("orders-a-1")
        seen = await _until(observer, observer_dsn, lambda s: len(s.workers) == 1)
        released = planner.plan(keeping, done.with_store(seen))
        assert released.versions is not None and released.versions.held == ()
        report = released.report(done, "2026-01-02T03:04:05Z")
        assert report.status is not None
        assert report.status["instances"] == 3
        assert report.status["oldestVersions"] == "checkout@1.0.0"
        assert report.status["workerRecords"] == {"live": 1, "ready": 1, "stale": 0}

        # Only an image without 1.0.0 is left: its instances are stranded.
        images.stop("orders-c-1")
        images.start("orders-d-1", "1.1.0,1.2.0")
        seen = await _until(observer, observer_dsn, lambda s: len(s.workers) == 1)
        left = planner.stranded(seen)
        assert dict(left.counts) == {("checkout@1.0.0", next(iter(seen.by_pin))): 3}
    finally:
        await provider.close()
