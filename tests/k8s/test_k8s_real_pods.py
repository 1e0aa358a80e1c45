"""Real pods: the worker image in a real kubelet, the Helm chart's operator, a shared store.

These tests prove what kwok cannot: the image starts as the operator's pod spec asks (non-root,
read-only root file system, probes), a ConfigMap edit reaches running workers through the
kubelet's volume swap, and the operator's promise for a live upgrade: a new version goes live
only when every worker can run it, and no running instance is lost or broken. The upgrade test
has a negative control: the same upgrade applied in the wrong order (the new version's policy
before its image) must hand work to workers that lack its handlers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_control_plane import ControlPlane
from k8s_node import NODE_NAME, PodStore, RealNode
from k8s_pods import (
    APPS,
    Pods,
    app_image,
    chart_operator,
    config_revision,
    fresh_database,
    registry,
    restarts,
    store_secret,
)

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]

LOOP = "e2e::orchestration::loop"
INSTANCES = 200
CYCLE_SECONDS = 10


@pytest.fixture(scope="module")
def images(real_node: RealNode, node_images: dict[str, Path]) -> dict[str, str]:
    """The test app at v1 and v2, each an image FROM the worker image."""
    return {
        v: app_image(real_node, f"localhost/durox-e2e:{v}", APPS / v / "") for v in ("v1", "v2")
    }


@pytest.fixture
def pods(
    control_plane: ControlPlane, namespace: str, pod_store: PodStore, tmp_path: Path
) -> Iterator[tuple[Pods, PodStore]]:
    db = fresh_database(pod_store)
    store_secret(control_plane, namespace, db)
    with chart_operator(control_plane, namespace, tmp_path) as log:
        yield Pods(control_plane, namespace, "loop", log), db


def _env(cycle: int = CYCLE_SECONDS) -> dict[str, Any]:
    return {"env": [{"name": "E2E_CYCLE_SECONDS", "value": str(cycle)}]}


def _with_env(body: dict[str, Any], cycle: int = CYCLE_SECONDS) -> dict[str, Any]:
    body["spec"]["pod"] = {**body["spec"]["pod"], **_env(cycle)}
    return body


def test_workers_run_in_real_pods_and_reload_their_config_live(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    cluster, _ = pods
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_with_env(registry("loop", images["v1"], ["1.0.0"], replicas=2)), "-n", ns)
    cluster.wait("2 real workers Ready and the registry Available", lambda: cluster.settled(2))
    running = cluster.pods()
    assert {p["spec"]["nodeName"] for p in running} == {NODE_NAME}
    [name, *_] = [p["metadata"]["name"] for p in running]
    # the operator's pod spec, for real: non-root UID, read-only root file system
    assert plane.kubectl("exec", name, "-n", ns, "--", "id", "-u").strip() == "65532"
    denied = plane.run("kubectl", "exec", name, "-n", ns, "--", "touch", "/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert "serving /healthz" in plane.kubectl("logs", name, "-n", ns)

    revision = cluster.status()["configRevision"]
    assert {config_revision(p) for p in running} == {revision}

    # a policy change: the ConfigMap changes, the kubelet swaps the volume, workers reload
    started = time.monotonic()
    plane.kubectl(
        "patch", "orchestrationregistry", "loop", "-n", ns, "--type=json", "-p",
        json.dumps([
            {"op": "add", "path": "/spec/orchestrations/0/policy", "value": "exact"},
            {"op": "add", "path": "/spec/orchestrations/0/version", "value": "1.0.0"},
        ]),
    )  # fmt: skip
    cluster.wait(
        "a new revision in the status",
        lambda: cluster.status().get("configRevision") not in (None, revision),
    )
    new = cluster.status()["configRevision"]
    cluster.wait(
        "every worker to report the new revision",
        lambda: {config_revision(p) for p in cluster.pods()} == {new},
        timeout=90,
    )
    reload_seconds = time.monotonic() - started
    after = cluster.pods()
    assert {p["metadata"]["name"] for p in after} == {p["metadata"]["name"] for p in running}
    assert [restarts(p) for p in after] == [0, 0]
    assert cluster.settled(2)
    print(f"\nconfig reload reached every worker in {reload_seconds:.1f}s, 0 restarts")
