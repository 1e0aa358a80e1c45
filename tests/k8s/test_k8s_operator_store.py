"""The operator reading the store, as a real process against the real control plane and a
real PostgreSQL: worker processes (standing for the pods kwok does not run) write real
capability records and run real instances; the operator observes them through a read-only
role named by `store.operatorSecretRef`, and a person follows the upgrade in `kubectl get
oreg` and the registry's Events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from durox import Client
from durox.providers import PostgresProvider
from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for
from tests.k8s.k8s_operator_fixtures import operator_fixture

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OUT = os.environ.get("DUROX_STORY_OUT")  # where to write the story a person sees, if set
METRICS_PORT = _free_port()


def _scrape(name: str, **labels: str) -> float | None:
    """One sample from the operator's /metrics, None when absent."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read()
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def _pg_dsn() -> str:
    dsn = os.environ.get("DUROX_TEST_PG_DSN", "").strip()
    if not dsn:
        pytest.skip("DUROX_TEST_PG_DSN is not set (scripts/test.sh starts a server)")
    return dsn


def _with(dsn: str, *, user: str | None = None, password: str | None = None,
          database: str | None = None) -> str:  # fmt: skip
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    netloc = host
    if user is not None:
        netloc = f"{user}:{password}@{host}"
    elif "@" in parts.netloc:
        netloc = parts.netloc
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


class Database:
    """A database of its own, the schema the workers migrate, and a read-only role on it."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.name = f"durox_k8s_{uuid.uuid4().hex[:8]}"
        self.role = f"observer_{uuid.uuid4().hex[:8]}"
        self.url = _with(admin, database=self.name)
        self.ro_url = _with(admin, user=self.role, password="observer", database=self.name)

    def _run(self, dsn: str, *statements: str) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                for s in statements:
                    await conn.execute(s)
            finally:
                await conn.close()

        asyncio.run(go())

    def create(self) -> None:
        self._run(self.admin, f"CREATE DATABASE {self.name}")
        self._run(self.admin, f"CREATE ROLE {self.role} LOGIN PASSWORD 'observer'")

    def grant(self) -> None:
        """docs/operator.md, "Reading the store": USAGE on the schema, SELECT on its tables."""
        self._run(
            self.url,
            f"GRANT USAGE ON SCHEMA durox TO {self.role}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA durox TO {self.role}",
        )

    def drop(self) -> None:
        self._run(self.admin, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self._run(self.admin, f"DROP ROLE IF EXISTS {self.role}")


class Workers:
    """Worker processes of pool `orders` on the database (tests/integration/operator_worker)."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node: str, versions: str) -> None:
        path = self.logs / f"{node}.log"
        with open(path, "wb") as log:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.operator_worker", self.url, "durox",
                 node, versions, "Charge"],
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


operator = operator_fixture("store", 1, "--metrics-port", str(METRICS_PORT))


@pytest.fixture
def database() -> Iterator[Database]:
    db = Database(_pg_dsn())
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def workers(database: Database, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(database.url, tmp_path)
    try:
        yield w
    finally:
        for node in list(w.procs):
            w.stop(node)


def _registry(image: str, versions: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": "orders"},
        "spec": {
            "image": image,
            "replicas": 2,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}, "operatorSecretRef": {"name": "store-ro"}},
            "orchestrations": [{"name": "checkout", "versions": versions}],
            "replay": {"supportedVersions": {"max": "9.0.0"}},
            # kwok runs no container: a replay check here would "pass" without replaying
            # anything (tests/k8s/test_k8s_real_pods.py runs it for real).
            "rollout": {"replayCheck": {"mode": "Skip"}},
        },
    }


def _client_call(url: str, coro: Any) -> None:
    async def go() -> None:
        provider = await PostgresProvider.connect(url, listen=False)
        try:
            await coro(Client(provider))
        finally:
            await provider.close()

    asyncio.run(go())


def test_an_upgrade_told_by_the_store(
    control_plane: ControlPlane,
    namespace: str,
    operator: Path,
    database: Database,
    workers: Workers,
) -> None:
    plane, ns = control_plane, namespace

    def status() -> dict[str, Any]:
        got: dict[str, Any] = plane.get_json("oreg", "orders", "-n", ns).get("status", {})
        return got

    def cond(kind: str) -> dict[str, Any]:
        return next((c for c in status().get("conditions", []) if c["type"] == kind), {})

    def wait(what: str, check: Any, timeout: float = 60) -> None:
        try:
            wait_for(what, check, timeout)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nstatus: {json.dumps(status(), indent=1)}\noperator log:\n"
                f"{tail(operator, 60)}"
            ) from None

    story: list[str] = []

    def snapshot(title: str) -> None:
        story.append(f"$ kubectl get oreg   # {title}\n" + plane.kubectl("get", "oreg", "-n", ns))

    # The old image's worker runs three instances on checkout@1.0.0.
    workers.start("orders-a-1", "1.0.0,1.1.0")
    database.grant()

    async def start(client: Client) -> None:
        for i in range(3):
            await client.start_orchestration_versioned(f"c{i}", "checkout", "1.0.0")

    _client_call(database.url, start)
    for name, url in (("store", database.url), ("store-ro", database.ro_url)):
        plane.kubectl("create", "secret", "generic", name, "-n", ns, f"--from-literal=url={url}")
    plane.apply(_registry("example.invalid/orders:1.0.0", ["1.0.0", "1.1.0"]), "-n", ns)
    wait(
        "store observed: 3 instances",
        lambda: (
            status().get("instances") == 3
            and cond("StoreObserved").get("status") == "True"
            and cond("Ready").get("status") == "True"
        ),
    )
    assert status()["oldestVersions"] == "checkout@1.0.0"
    assert cond("Stranded")["reason"] == "NoneStranded"
    at = {"namespace": ns, "registry": "orders"}
    assert _scrape("durox_operator_instances", **at, version="1.0.0") == 3.0
    assert _scrape("durox_operator_store_observed", **at) == 1.0
    snapshot("the old image, 3 instances on checkout@1.0.0")

    # The new image drops 1.0.0; its first worker reports: the rollout is paused.
    workers.start("orders-b-1", "1.1.0,1.2.0")
    plane.apply(_registry("example.invalid/orders:2.0.0", ["1.1.0", "1.2.0"]), "-n", ns)
    wait("guarded", lambda: cond("Degraded").get("reason") == "VersionInUse")
    assert "checkout@1.0.0 (3 not ended)" in cond("Degraded")["message"]
    dep = plane.get_json("deployment", "orders", "-n", ns)
    assert dep["spec"].get("paused") is True
    snapshot("the new image lacks checkout@1.0.0: rollout paused")

    # The instances finish: the guard lifts, the rollout runs; 1.2.0 waits for the old
    # worker's record to go, since it does not register it.
    async def finish(client: Client) -> None:
        for i in range(3):
            await client.raise_event(f"c{i}", "go")
        for i in range(3):
            await client.wait_for_orchestration(f"c{i}", 60)

    _client_call(database.url, finish)
    wait(
        "held on the workers' word",
        lambda: (
            cond("Degraded").get("status") == "False"
            and cond("Progressing").get("reason") == "HoldingVersions"
            and "do not register checkout@1.2.0" in cond("Progressing").get("message", "")
        ),
    )
    assert status()["instances"] == 0
    snapshot("rolled out; checkout@1.2.0 held until every live worker registers it")

    workers.stop("orders-a-1")
    wait(
        "activated",
        lambda: (
            status().get("activeVersions") == "checkout@1.2.0"
            and cond("Ready").get("status") == "True"
        ),
    )
    snapshot("the old worker gone: checkout@1.2.0 active")

    events = plane.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=orders")
    lines = [
        f"{e['type']:8} {e['reason']:20} {e['message']}"
        for e in sorted(events["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["involvedObject"]["kind"] == "OrchestrationRegistry"
    ]
    reasons = {line.split()[1] for line in lines}
    assert {"VersionInUse", "WaitingForWorkers", "ActivatedVersions"} <= reasons
    story.append("$ kubectl get events (the registry's)\n" + "\n".join(lines))
    if OUT:
        Path(OUT).write_text("\n\n".join(story) + "\n")


def test_a_sqlite_store_is_reported_and_the_rest_still_works(
    control_plane: ControlPlane, namespace: str, operator: Path
) -> None:
    plane, ns = control_plane, namespace
    plane.kubectl(
        "create", "secret", "generic", "store", "-n", ns, "--from-literal=url=sqlite:///x.db"
    )
    body = _registry("example.invalid/orders:1.0.0", ["1.0.0"])
    del body["spec"]["store"]["operatorSecretRef"]
    plane.apply(body, "-n", ns)

    def observed() -> bool:
        st = plane.get_json("oreg", "orders", "-n", ns).get("status", {})
        conds = {c["type"]: c for c in st.get("conditions", [])}
        return bool(
            conds.get("StoreObserved", {}).get("reason") == "StoreNotObservable"
            and conds.get("Ready", {}).get("status") == "True"
        )

    wait_for("StoreNotObservable and Ready", observed, 60)
    assert plane.exists("deployment", "orders", "-n", ns)


def _events(plane: ControlPlane, ns: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the registry's Events, in the order the apiserver stored them."""
    events = plane.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=orders")
    return [
        (e["type"], e["reason"], e["message"])
        for e in sorted(events["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["involvedObject"]["kind"] == "OrchestrationRegistry"
    ]


def test_an_auto_drain_starts_reports_and_removes_its_pool_from_what_the_store_holds(
    control_plane: ControlPlane,
    namespace: str,
    operator: Path,
    database: Database,
    workers: Workers,
) -> None:
    """spec.drain.mode Auto against real instances: the engine of the main pool now replays
    from 0.1.1, so the 3 instances a worker pinned to engine 0.1.0 are outside its range. The
    operator starts the drain pool for them, reports them in status.drain by pin, and removes
    the pool removeAfterSeconds after the last of them ended, with an Event at each step."""
    from durox import __version__ as engine

    assert engine == "0.1.0", "the ranges below assume the engine pins instances to 0.1.0"
    plane, ns = control_plane, namespace

    def status() -> dict[str, Any]:
        got: dict[str, Any] = plane.get_json("oreg", "orders", "-n", ns).get("status", {})
        return got

    def wait(what: str, check: Any, timeout: float = 60) -> None:
        try:
            wait_for(what, check, timeout, interval=0.2)
        except TimeoutError as exc:
            raise AssertionError(
                f"{exc}\nstatus: {json.dumps(status(), indent=1)}\nevents: {_events(plane, ns)}"
                f"\noperator log:\n{tail(operator, 60)}"
            ) from None

    workers.start("orders-a-1", "1.0.0")
    database.grant()

    async def start(client: Client) -> None:
        for i in range(3):
            await client.start_orchestration_versioned(f"d{i}", "checkout", "1.0.0")

    _client_call(database.url, start)
    for name, url in (("store", database.url), ("store-ro", database.ro_url)):
        plane.kubectl("create", "secret", "generic", name, "-n", ns, f"--from-literal=url={url}")
    body = _registry("example.invalid/orders:1.0.0", ["1.0.0"])
    body["spec"]["replay"] = {"supportedVersions": {"min": "0.1.1", "max": "9.0.0"}}
    delay = 3
    body["spec"]["drain"] = {
        "mode": "Auto",
        "supportedVersions": {"max": "0.1.0"},
        "removeAfterSeconds": delay,
        "replicas": 1,
    }
    plane.apply(body, "-n", ns)

    def drain() -> dict[str, Any]:
        got: dict[str, Any] = status().get("drain", {})
        return got

    wait(
        "the drain pool started for the pinned instances",
        lambda: (
            drain().get("pinned") == {"0.1.0": 3}
            and plane.exists("deployment", "orders-drain", "-n", ns)
        ),
    )
    assert drain()["mode"] == "Auto" and drain()["enabled"] is True
    started = [m for _, r, m in _events(plane, ns) if r == "DrainStarted"]
    assert started == ["starting the drain pool: 3 pinned to 0.1.0, outside the main replay range"]
    cm = plane.get_json("configmap", "orders-drain", "-n", ns)
    assert "0.1.0" in cm["data"]["worker.yaml"]  # the drain pool's file carries its range

    async def finish(client: Client) -> None:
        for i in range(3):
            await client.raise_event(f"d{i}", "go")
        for i in range(3):
            await client.wait_for_orchestration(f"d{i}", 60)

    _client_call(database.url, finish)
    wait("the drain counted empty", lambda: bool(drain().get("emptySince")))
    empty_at = time.monotonic()
    assert drain()["pinned"] == {}
    wait(
        "the drain pool removed",
        lambda: not plane.exists("deployment", "orders-drain", "-n", ns),
        timeout=delay + 30,
    )
    removed_after = time.monotonic() - empty_at
    # The store's clock starts the delay (whole seconds), the operator's resync (1 s) ends it.
    assert removed_after >= delay - 1.5, removed_after
    assert not plane.exists("configmap", "orders-drain", "-n", ns)
    wait("status.drain disabled", lambda: drain().get("enabled") is False)

    steps = [
        (r, m)
        for _, r, m in _events(plane, ns)
        if r.startswith("Drain") or m.endswith("orders-drain")
    ]
    assert [r for r, _ in steps] == [
        "DrainStarted",
        "CreatedConfigMap",
        "CreatedDeployment",
        "DrainEmpty",
        "DrainFinished",
        "DeletedDeployment",
        "DeletedConfigMap",
    ], steps
    assert all(t == "Normal" for t, r, _ in _events(plane, ns) if r.startswith("Drain"))
    print(
        f"\nauto drain: started for 3 instances pinned to 0.1.0; removed {removed_after:.1f}s "
        f"after the store showed none left (removeAfterSeconds {delay})\n"
        + "\n".join(f"{r:18} {m}" for r, m in steps)
    )
