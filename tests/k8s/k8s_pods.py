"""Helpers of the tests that run real pods: app images, the chart's operator, the shared store.

The operator runs on the host (the apiserver listens on loopback only) with a token of the
ServiceAccount the Helm chart creates, so its RBAC is the chart's. Workers run in pods on the
real node and reach the store on the pod bridge's gateway address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.k8s.k8s_control_plane import (
    ControlPlane,
    free_port,
    http_ok,
    operator_process,
    tail,
    wait_for,
)
from tests.k8s.k8s_node import IMAGES_SCRIPT, PLACEMENT, NodeError, PodStore, RealNode

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
CHART = REPO / "helm" / "durox"


def app_image(node: RealNode, tag: str, app_dir: Path, engine: str = "") -> str:
    """An image FROM the worker image with `app_dir` in /app (README's recipe), imported.
    With `engine`, FROM a worker image whose durox engine calls itself that version."""
    proc = subprocess.run(
        ["bash", str(IMAGES_SCRIPT), "app", tag, str(app_dir), *([engine] if engine else [])],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if proc.returncode != 0:
        raise NodeError(f"building {tag} failed:\n{proc.stderr[-4000:]}")
    tarball = next(line for line in proc.stdout.split() if line.startswith("app="))[4:]
    node.import_image(Path(tarball))
    return tag


@contextlib.contextmanager
def chart_operator(
    plane: ControlPlane, watch: str, workdir: Path, resync: int = 2
) -> Iterator[Path]:
    """The Helm chart installed for real, and `durox-operator run` on the host with a token of
    the chart's ServiceAccount, watching namespace `watch`; yields the operator's log."""
    ns = f"durox-{uuid.uuid4().hex[:8]}"
    plane.run(
        "helm", "install", "durox", str(CHART), "-n", ns, "--create-namespace",
        "--wait", "--timeout=120s",
    )  # fmt: skip
    try:
        dep = plane.get_json("deployment", "durox", "-n", ns)
        sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
        token = plane.kubectl("create", "token", sa, "-n", ns, "--duration=2h").strip()
        kubeconfig = plane.write_kubeconfig(f"operator-{ns}", token)
        log = workdir / "operator.log"
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        with operator_process(
            plane, log, "--namespace", watch, "--liveness", liveness,
            "--resync-seconds", str(resync), kubeconfig=kubeconfig,
        ):  # fmt: skip
            wait_for("the operator's liveness endpoint", lambda: http_ok(liveness), 30)
            yield log
        assert " 403" not in log.read_text(), "the chart's RBAC refused the operator something"
    finally:
        plane.run("helm", "uninstall", "durox", "-n", ns, "--wait", check=False)
        plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def registry(
    name: str, image: str, versions: list[str], replicas: int = 3, **spec: Any
) -> dict[str, Any]:
    """An OrchestrationRegistry whose workers run on the real node."""
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "imagePullPolicy": "Never",
            "replicas": replicas,
            "app": "e2eapp.worker:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "e2e::orchestration::loop", "versions": versions}],
            "pod": dict(PLACEMENT),
            **spec,
        },
    }


@dataclass
class Pods:
    """Reads over one namespace's registry and its real pods."""

    plane: ControlPlane
    ns: str
    name: str
    log: Path
    streams: dict[str, list[str]] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        return self.plane.get_json(kind, name or self.name, "-n", self.ns)  # type: ignore[no-any-return]

    def pods(self, *, terminating: bool = False) -> list[dict[str, Any]]:
        items = self.plane.get_json(
            "pods", "-n", self.ns, "-l", f"app.kubernetes.io/instance={self.name}"
        )["items"]
        return [p for p in items if terminating or "deletionTimestamp" not in p["metadata"]]

    def ready_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if ready(p)]

    def status(self) -> dict[str, Any]:
        return self.get("orchestrationregistry").get("status", {})  # type: ignore[no-any-return]

    def active_versions(self) -> str:
        cm = self.get("configmap")
        return str(cm["metadata"].get("annotations", {}).get("durox.dev/active-versions", ""))

    def wait(self, what: str, check: Any, timeout: float = 120) -> None:
        try:
            wait_for(what, check, timeout, interval=0.5)
        except TimeoutError as exc:
            pods = self.plane.kubectl("get", "pods", "-n", self.ns, "-o", "wide", check=False)
            raise AssertionError(
                f"{exc}\npods:\n{pods}\noperator log:\n{tail(self.log, 40)}"
            ) from None

    def settled(self, workers: int) -> bool:
        status = self.status()
        conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
        gen = self.get("orchestrationregistry")["metadata"]["generation"]
        return (
            status.get("observedGeneration") == gen
            and conds.get("Available") == "True"
            and conds.get("Progressing") == "False"
            and status.get("workers") == f"{workers}/{workers}"
            and len(self.ready_pods()) == workers
        )

    def follow_logs(self, pod: str) -> None:
        """Collect `kubectl logs -f POD` in the background until the container exits."""
        lines: list[str] = []
        self.streams[pod] = lines

        def run() -> None:
            with subprocess.Popen(
                [str(self.plane.bin_dir / "kubectl"), "logs", "-f", pod, "-n", self.ns],
                env=self.plane.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            ) as proc:
                assert proc.stdout is not None
                lines.extend(proc.stdout)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join_logs(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def restarts(pod: dict[str, Any]) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses", []))


def metrics(pod: dict[str, Any]) -> str:
    ip = pod["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def config_revision(pod: dict[str, Any]) -> str | None:
    match = re.search(r'durox_worker_info\{[^}]*config_revision="([^"]*)"', metrics(pod))
    return match.group(1) if match else None


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def store_secret(plane: ControlPlane, ns: str, store: PodStore) -> None:
    plane.kubectl(
        "create", "secret", "generic", "store", "-n", ns, f"--from-literal=url={store.pod_dsn}"
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


E2E_TABLE = """
CREATE TABLE IF NOT EXISTS e2e_activity_runs (
    id bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    execution_id bigint NOT NULL,
    activity text NOT NULL,
    orchestration_version text NOT NULL,
    session_id text,
    worker_id text NOT NULL,
    image text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def fresh_database(store: PodStore) -> PodStore:
    """A database of its own on the shared server (a test's registry and its rows), with the
    table the e2e app records its activity executions in."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(store.host_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(store.host_dsn.rsplit("/", 1)[0] + f"/{name}")
        try:
            await conn.execute(E2E_TABLE)
        finally:
            await conn.close()

    run(create())
    return PodStore(
        host_dsn=store.host_dsn.rsplit("/", 1)[0] + f"/{name}",
        pod_dsn=store.pod_dsn.rsplit("/", 1)[0] + f"/{name}",
    )
