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
from tests.k8s.k8s_control_plane import ControlPlane, operator_process, tail, wait_for

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


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, registry_crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator-store") / "operator.log"
    port = str(METRICS_PORT)
    with operator_process(control_plane, log, "--resync-seconds", "1", "--metrics-port", port):
        yield log


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
