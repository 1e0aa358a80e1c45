"""Safe activation end to end on real PostgreSQL with real `durox worker` processes: the
operator's reconciler (over an in-memory API server, a real `StoreObserver` on the registry's
Secret) runs a gate orchestration on the new version, ramps new starts step by step, rolls a
ramp back when the new version fails more than the old, and rolls back by hand.

The test plays the kubelet and the Deployment controller: a worker Deployment with a new pod
template replaces the worker processes by ones of its image (`DUROX_ROLLOUT_IMAGE`, the
image's tag) and is then reported rolled out; the ConfigMap's worker file is copied to each
worker's config file (each with its own HTTP port), which the workers re-read live, as from a
mounted ConfigMap. Everything else is the operator's and the runtime's own code.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from durox import Client
from durox.core.versions import Ramp
from durox.providers import PostgresProvider
from durox_operator.model import TEMPLATE_ANNOTATION, Obj
from durox_operator.reconciler import Reconciler
from durox_operator.store import StoreObserver
from tests.faults.pg import free_port
from tests.unit.operator.support import registry
from tests.unit.operator.test_operator_reconciler import FakeKube

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)
NS, NAME = "shop", "orders"
STATUS_NOTE = Path("/tmp/h13b-status.txt")


class Recorded:
    """The Events the reconciler posts, in order, with their messages."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def __call__(self, registry: Obj, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.events]


class Cluster:
    """The operator over a fake API server, and worker processes standing for the pods."""

    def __init__(self, dsn: str, logs: Path) -> None:
        self.dsn, self.logs = dsn, logs
        self.kube = FakeKube()
        self.kube.put(
            {
                "kind": "Secret",
                "metadata": {"namespace": NS, "name": "orders-store"},
                "data": {"url": base64.b64encode(dsn.encode()).decode()},
            }
        )
        self.recorded = Recorded()
        self.stores = StoreObserver(timeout=5.0)
        self.reconciler = Reconciler(self.kube, self.recorded, self.stores)
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.template: str | None = None
        self.serial = 0

    # -- the API server's side --------------------------------------------------------------

    def apply_spec(self, image: str, versions: list[str], **rollout: Any) -> None:
        body = self.kube.get("OrchestrationRegistry", NS, NAME)
        if body is None:
            body = registry()
            body["metadata"]["generation"] = 1
        else:
            body["metadata"]["generation"] += 1
        body["kind"] = "OrchestrationRegistry"
        body["spec"]["image"] = f"example.invalid/orders:{image}"
        body["spec"]["orchestrations"] = [{"name": "checkout", "versions": versions}]
        body["spec"].pop("replay", None)
        # No Job can run against this in-memory API server: the replay check before a rollout
        # has its own tests (unit, and real pods in tests/k8s/test_k8s_real_replay_check.py).
        body["spec"]["rollout"] = {"replayCheck": {"mode": "Skip"}, **rollout}
        self.kube.put(body)

    @property
    def registry(self) -> dict[str, Any]:
        found = self.kube.get("OrchestrationRegistry", NS, NAME)
        assert found is not None
        return found

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.registry.get("status", {}))

    def condition(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = next(c for c in self.status["conditions"] if c["type"] == kind)
        return found

    def worker_file(self) -> dict[str, Any]:
        cm = self.kube.get("ConfigMap", NS, NAME)
        assert cm is not None
        loaded: dict[str, Any] = yaml.safe_load(cm["data"]["worker.yaml"])
        return loaded

    def checkout_policy(self) -> dict[str, Any]:
        found: dict[str, Any] = next(
            o for o in self.worker_file()["orchestrations"] if o["name"] == "checkout"
        )
        return found

    # -- one pass, then the kubelet's and the Deployment controller's part ------------------

    def reconcile(self) -> None:
        self.reconciler.reconcile_by_name(NS, NAME)
        self.settle()

    def settle(self) -> None:
        dep = self.kube.objects.get(("Deployment", NS, NAME))
        if dep is None:
            return
        template = dep["metadata"]["annotations"][TEMPLATE_ANNOTATION]
        if template != self.template:
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"].rpartition(":")[2]
            self._replace_workers(image)
            self.template = template
        n = dep["spec"].get("replicas", 1)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
        self._write_files()

    def _write_files(self) -> None:
        for name, (_, port) in self.procs.items():
            content = {**self.worker_file(), "http_port": port}
            path = self.logs / f"{name}.yaml"
            text = yaml.safe_dump(content)
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.replace(path)  # swapped whole, as the kubelet swaps a ConfigMap's files

    def _replace_workers(self, image: str) -> None:
        self.stop_workers()
        for _ in range(2):
            self.serial += 1
            name = f"orders-{image}-{self.serial}"
            port = free_port()
            self.procs[name] = (self._start(name, image, port), port)
        self._write_files()
        for name, (proc, _) in self.procs.items():
            log = self.logs / f"{name}.log"
            deadline = time.monotonic() + 60
            while b"serving /healthz" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.05)

    def _start(self, name: str, image: str, port: int) -> subprocess.Popen[bytes]:
        config = self.logs / f"{name}.yaml"
        config.write_text(yaml.safe_dump({**self.worker_file(), "http_port": port}))
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "durox.cli", "worker",
                 "--app", "tests.integration.rollout_app:app", "--config", str(config),
                 "--node-id", name, "--host", "127.0.0.1"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT), "DUROX_STORE_URL": self.dsn,
                     "DUROX_ROLLOUT_IMAGE": image},
            )  # fmt: skip

    def stop_workers(self) -> None:
        for proc, _ in self.procs.values():
            proc.terminate()
        for name, (proc, _) in self.procs.items():
            assert proc.wait(30) == 0, (self.logs / f"{name}.log").read_text()[-3000:]
        self.procs.clear()

    def close(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.stores.close()

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.logs.glob("*.log"))
        )

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Reconcile (and settle) until `check()` holds."""
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.to_thread(self.reconcile)
            if check():
                return
            assert time.monotonic() < deadline, (
                f"never: {what}\nstatus: {yaml.safe_dump(self.status)}\n"
                f"events: {self.recorded.events}\n{self.tail()}"
            )
            await asyncio.sleep(0.3)


@pytest.fixture
async def database(dsn: str) -> AsyncIterator[str]:
    """A database of its own: `durox worker` keeps its store in the schema `durox`."""
    name = f"durox_rollout_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        parts = urlsplit(dsn)
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


@pytest.fixture
async def cluster(database: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(database, tmp_path)
    try:
        yield c
    finally:
        await asyncio.to_thread(c.close)


@pytest.fixture
async def client(database: str) -> AsyncIterator[tuple[Client, PostgresProvider]]:
    provider = await PostgresProvider.connect(database, listen=False)
    try:
        yield Client(provider), provider
    finally:
        await provider.close()


async def _workers_applied(cluster: Cluster, provider: PostgresProvider) -> None:
    """Until every live worker reports the revision of the file the ConfigMap carries."""
    revision = cluster.worker_file()["revision"]
    deadline = time.monotonic() + 30
    while True:
        records = await provider.list_workers(None, 10_000)
        live = {w.node_id: w.config_revision for w in records}
        if set(live) == set(cluster.procs) and set(live.values()) == {revision}:
            return
        assert time.monotonic() < deadline, f"workers at {live}, file at {revision}"
        await asyncio.sleep(0.2)


async def _run(client: Client, ids: list[str], order: Any = None) -> dict[str, str]:
    """Start `ids` (the policy picks the version) and wait for each to end: id -> version."""
    await asyncio.gather(*(client.start_orchestration(i, "checkout", order) for i in ids))
    versions: dict[str, str] = {}
    deadline = time.monotonic() + 60
    for i in ids:
        while True:
            status = await client.get_orchestration_status(i)
            if status.is_terminal:
                assert status.orchestration_version is not None
                versions[i] = status.orchestration_version
                if status.orchestration_version == "1.0.0":
                    assert (status.status, status.output) == ("Completed", "v1"), status
                break
            assert time.monotonic() < deadline, f"{i} never ended: {status}"
            await asyncio.sleep(0.05)
    return versions


async def _start_old(cluster: Cluster, provider: PostgresProvider) -> None:
    """checkout@1.0.0 active, served by two workers of the old image."""
    cluster.apply_spec("old", ["1.0.0"])
    await asyncio.to_thread(cluster.reconcile)
    await _workers_applied(cluster, provider)
    await cluster.until(
        lambda: cluster.condition("StoreObserved")["status"] == "True", "the store observed"
    )
    assert cluster.status["activeVersions"] == "checkout@1.0.0"


async def test_a_failing_gate_holds_the_activation(
    cluster: Cluster, client: tuple[Client, PostgresProvider]
) -> None:
    c, provider = client
    await _start_old(cluster, provider)
    gate = {"orchestration": "checkout", "input": {"gate": True}, "timeoutSeconds": 60}
    cluster.apply_spec("bad", ["1.0.0", "2.0.0"], gate=gate)
    await cluster.until(
        lambda: cluster.status.get("rollout", {}).get("gate", {}).get("phase") == "Failed",
        "the gate fails",
    )
    gate_status = cluster.status["rollout"]["gate"]
    assert gate_status["version"] == "2.0.0"
    info = await provider.get_instance(gate_status["instance"])
    assert info is not None and (info.orchestration_version, info.status) == ("2.0.0", "Failed")
    degraded = cluster.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "GateFailed")
    assert "v2 cannot price order" in degraded["message"]
    assert ("Warning", "GateFailed") in [(t, r) for t, r, _ in cluster.recorded.events]
    assert cluster.status["activeVersions"] == "checkout@1.0.0"
    assert cluster.checkout_policy() == {"name": "checkout", "policy": "exact", "version": "1.0.0"}
    # The new workers serve, and new starts stay on the old version.
    await _workers_applied(cluster, provider)
    versions = await _run(c, [f"after-{i}" for i in range(20)])
    assert set(versions.values()) == {"1.0.0"}
    # It stays held: more passes start no second gate.
    for _ in range(3):
        await asyncio.to_thread(cluster.reconcile)
    assert cluster.recorded.reasons().count("GateStarted") == 1
    assert cluster.status["activeVersions"] == "checkout@1.0.0"


async def test_a_gate_the_operators_role_cannot_start_says_so_and_fails_at_its_timeout(
    cluster: Cluster, client: tuple[Client, PostgresProvider], database: str
) -> None:
    """The read-only role of docs/operator.md ("Reading the store") observes but cannot start
    the gate: a Warning names the refusal, the old version stays active, the gate times out."""
    _, provider = client
    await _start_old(cluster, provider)
    role = f"durox_ro_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'ro'")
        await conn.execute(f"GRANT USAGE ON SCHEMA durox TO {role}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA durox TO {role}")
        parts = urlsplit(database)
        read_only = urlunsplit(
            parts._replace(netloc=f"{role}:ro@{parts.netloc.rpartition('@')[2]}")
        )
        cluster.kube.put(
            {
                "kind": "Secret",
                "metadata": {"namespace": NS, "name": "orders-store-ro"},
                "data": {"url": base64.b64encode(read_only.encode()).decode()},
            }
        )
        gate = {"orchestration": "checkout", "timeoutSeconds": 3}
        cluster.apply_spec("good", ["1.0.0", "2.0.0"], gate=gate)
        body = cluster.registry
        body["spec"]["store"]["operatorSecretRef"] = {"name": "orders-store-ro"}
        cluster.kube.put(body)
        await cluster.until(
            lambda: cluster.status.get("rollout", {}).get("gate", {}).get("phase") == "Failed",
            "the gate times out",
            timeout=30,
        )
        refused = [m for t, r, m in cluster.recorded.events if r == "GateNotStarted"]
        assert refused and all(t == "Warning" for t, r, _ in cluster.recorded.events
                               if r == "GateNotStarted")  # fmt: skip
        assert "permission denied" in refused[0]
        degraded = cluster.condition("Degraded")
        assert (
            degraded["reason"] == "GateFailed"
            and "did not complete within 3s" in (degraded["message"])
        )
        assert cluster.status["activeVersions"] == "checkout@1.0.0"
        assert await provider.get_instance(cluster.status["rollout"]["gate"]["instance"]) is None
    finally:
        await asyncio.to_thread(cluster.close)  # its pool logs in as the role
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_a_healthy_version_passes_the_gate_and_ramps_to_completion(
    cluster: Cluster, client: tuple[Client, PostgresProvider]
) -> None:
    """The negative control of the two others: the same gate (here at every step) and ramp with
    a new version that fails no more than the old one activates it, step by step, each instance
    on the side its id's hash picks. Then a rollback by hand: new starts return to 1.0.0 at
    once, and an instance already running 2.0.0 finishes on 2.0.0."""
    c, provider = client
    await _start_old(cluster, provider)
    gate = {"orchestration": "checkout", "input": {"gate": True}, "timeoutSeconds": 60}
    gate["everyStep"] = True
    steps = [{"percent": 30, "pauseSeconds": 4}, {"percent": 70, "pauseSeconds": 4}]
    analysis = {"thresholdPercent": 10, "minSamples": 10}
    cluster.apply_spec("good", ["1.0.0", "2.0.0"], gate=gate, steps=steps, analysis=analysis)

    def ramp() -> dict[str, Any]:
        ramps = cluster.status.get("rollout", {}).get("ramps", [{}])
        return dict(ramps[0])

    await cluster.until(lambda: ramp().get("step") == 1, "the gate passes and the ramp starts")
    assert cluster.status["rollout"]["gate"]["phase"] == "Passed"
    assert cluster.checkout_policy() == {
        "name": "checkout",
        "policy": "exact",
        "version": "1.0.0",
        "ramp": {"version": "2.0.0", "percent": 30.0},
    }
    await _workers_applied(cluster, provider)
    ids = [f"s1-{i}" for i in range(60)]
    versions = await _run(c, ids)
    share = Ramp("2.0.0", 30)
    assert versions == {i: "2.0.0" if share.takes(i) else "1.0.0" for i in ids}
    assert 5 < sum(v == "2.0.0" for v in versions.values()) < 35

    await cluster.until(lambda: ramp().get("step") == 2, "the second step", timeout=30)
    (stepped,) = [m for _, r, m in cluster.recorded.events if r == "RampStep" and "2 of 2" in m]
    on_new = sum(v == "2.0.0" for v in versions.values())
    figures = re.search(r"\(step 1: 2\.0\.0 failed 0 of (\d+) ended, 1\.0\.0 0 of (\d+)\)", stepped)
    assert figures is not None, stepped
    # The gate run before step 2 is in the window too, and the first gate's instance may share
    # the step's first second (the window starts on a whole second).
    assert int(figures[1]) in (on_new + 1, on_new + 2) and int(figures[2]) == 60 - on_new
    await _workers_applied(cluster, provider)
    ids = [f"s2-{i}" for i in range(40)]
    versions = await _run(c, ids)
    share = Ramp("2.0.0", 70)
    assert versions == {i: "2.0.0" if share.takes(i) else "1.0.0" for i in ids}

    await cluster.until(lambda: ramp().get("phase") == "Completed", "completion", timeout=30)
    assert cluster.checkout_policy() == {"name": "checkout", "policy": "latest"}
    assert cluster.status["activeVersions"] == "checkout@2.0.0"
    reasons = cluster.recorded.reasons()
    assert reasons.count("RampStep") == 2 and reasons.count("RampCompleted") == 1
    # The gate ran before the ramp, before step 2 and before the ramp completed.
    assert reasons.count("GateStarted") == reasons.count("GatePassed") == 3
    assert "RolledBack" not in reasons
    assert cluster.condition("Degraded")["status"] == "False"
    await _workers_applied(cluster, provider)
    await c.start_orchestration("long", "checkout", {"wait": True})
    await _run(c, ["all-new"])
    info = await provider.get_instance("all-new")
    assert info is not None and info.orchestration_version == "2.0.0"

    # Rollback by hand: one field in the spec.
    body = cluster.registry
    body["spec"]["rollout"]["rollback"] = True
    body["metadata"]["generation"] += 1
    cluster.kube.put(body)
    await cluster.until(
        lambda: cluster.status["activeVersions"] == "checkout@1.0.0", "the rollback by hand"
    )
    assert cluster.checkout_policy() == {"name": "checkout", "policy": "exact", "version": "1.0.0"}
    await _workers_applied(cluster, provider)
    versions = await _run(c, [f"back-{i}" for i in range(20)])
    assert set(versions.values()) == {"1.0.0"}
    long = await provider.get_instance("long")
    assert long is not None and (long.orchestration_version, long.status) == ("2.0.0", "Running")
    await c.raise_event("long", "go")
    deadline = time.monotonic() + 30
    while (status := await c.get_orchestration_status("long")).status != "Completed":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    assert (status.orchestration_version, status.output) == ("2.0.0", "v2")


async def test_a_ramp_rolls_back_when_the_new_version_fails_more(
    cluster: Cluster, client: tuple[Client, PostgresProvider]
) -> None:
    c, provider = client
    await _start_old(cluster, provider)
    steps = [{"percent": 50, "pauseSeconds": 600}, {"percent": 100, "pauseSeconds": 600}]
    analysis = {"thresholdPercent": 10, "minSamples": 10}
    cluster.apply_spec("bad", ["1.0.0", "2.0.0"], steps=steps, analysis=analysis)

    def ramp() -> dict[str, Any]:
        ramps = cluster.status.get("rollout", {}).get("ramps", [{}])
        return dict(ramps[0])

    await cluster.until(lambda: ramp().get("phase") == "Ramping", "the ramp starts")
    await _workers_applied(cluster, provider)
    ids = [f"r-{i}" for i in range(60)]
    versions = await _run(c, ids)
    share = Ramp("2.0.0", 50)
    assert versions == {i: "2.0.0" if share.takes(i) else "1.0.0" for i in ids}
    on_new = sum(v == "2.0.0" for v in versions.values())

    await cluster.until(lambda: ramp().get("phase") == "RolledBack", "the rollback", timeout=30)
    assert ramp()["analysis"] == {
        "newEnded": on_new,
        "newFailed": on_new,
        "newPoisoned": 0,
        "previousEnded": 60 - on_new,
        "previousFailed": 0,
        "previousPoisoned": 0,
    }
    degraded = cluster.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack")
    assert (
        f"checkout@2.0.0 failed {on_new} of {on_new} ended instances (100.0%"
        in (degraded["message"])
    )
    warnings = [
        (t, r)
        for t, r, _ in cluster.recorded.events
        if t == "Warning" and r != "ReplayCheckSkipped"  # the harness skips the check
    ]
    assert warnings == [("Warning", "RampRolledBack"), ("Warning", "RolledBack")]
    assert cluster.checkout_policy() == {"name": "checkout", "policy": "exact", "version": "1.0.0"}
    assert cluster.status["activeVersions"] == "checkout@1.0.0"
    await _workers_applied(cluster, provider)
    versions = await _run(c, [f"after-{i}" for i in range(30)])
    assert set(versions.values()) == {"1.0.0"}
    # The ramp stays stopped: no step is taken later, though its window keeps filling.
    for _ in range(3):
        await asyncio.to_thread(cluster.reconcile)
    assert cluster.recorded.reasons().count("RampStep") == 1
    _write_note(cluster)


def _write_note(cluster: Cluster) -> None:
    """The rolled-back ramp as a user sees it: the status's conditions and rollout, and the
    Events (what `kubectl describe orchestrationregistry orders` shows)."""
    status = copy.deepcopy(cluster.status)
    shown = {
        "activeVersions": status["activeVersions"],
        "versions": status["versions"],
        "rollout": status["rollout"],
        "conditions": [
            {k: c[k] for k in ("type", "status", "reason", "message")} for c in status["conditions"]
        ],
    }
    lines = [
        "# A ramp rolled back (tests/integration/test_operator_rollout.py, real PostgreSQL,",
        "# real durox worker processes). status, as `kubectl get -o yaml` shows it:",
        yaml.safe_dump({"status": shown}, sort_keys=False, width=100),
        "# Events, oldest first (TYPE REASON MESSAGE):",
        *(f"{t:8} {r:20} {m}" for t, r, m in cluster.recorded.events),
        "",
        "# The worker file the ConfigMap carries now:",
        yaml.safe_dump(cluster.worker_file(), sort_keys=False),
    ]
    STATUS_NOTE.write_text("\n".join(lines))
