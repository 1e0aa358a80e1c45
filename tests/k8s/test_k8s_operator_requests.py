"""What a pass costs in API requests, counted in the operator process (`bench.operator_probe`).

Five settled registries and three resync periods with nothing changing: the operator reads its
children and pods from its watches, so a resync costs about one request per registry (the
registry's GET), and at most five. Not a timing test: requests are counted, not seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
RESYNC = 3.0


def _registry(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 1,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "checkout", "versions": ["1.0.0"]}],
        },
    }


def _counts(path: Path) -> dict[str, int]:
    try:
        return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("WATCH")}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_a_resync_of_settled_registries_costs_at_most_five_requests_each(
    control_plane: ControlPlane, registry_crd: str, namespace: str, tmp_path: Path
) -> None:
    plane, ns = control_plane, namespace
    names = [f"orders-{i}" for i in range(5)]
    plane.kubectl("create", "secret", "generic", "store", "-n", ns, "--from-literal=url=x")
    probe, log = tmp_path / "probe.json", tmp_path / "operator.log"
    env = plane.env()
    env["DUROX_PROBE_OUT"] = str(probe)
    cmd = [sys.executable, "-m", "bench.operator_probe", "run", "--namespace", ns,
           "--resync-seconds", str(RESYNC)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        for name in names:
            plane.apply(_registry(name), "-n", ns)

        def settled() -> bool:
            items = plane.get_json("orchestrationregistries", "-n", ns)["items"]
            return len(items) == len(names) and all(
                any(
                    c["type"] == "Available" and c["status"] == "True"
                    for c in i.get("status", {}).get("conditions", [])
                )
                and i["status"].get("workers") == "1/1"
                for i in items
            )

        try:
            wait_for("every registry Available", settled, 90)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{tail(log, 40)}") from None
        time.sleep(RESYNC)  # the last events' passes
        before = _counts(probe)
        time.sleep(3 * RESYNC)
        after = _counts(probe)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    spent = {k: v for k, v in spent.items() if v}
    per_registry = sum(spent.values()) / (3 * len(names))
    print(f"three resyncs of {len(names)} registries: {spent} ({per_registry:.2f} per registry)")
    assert per_registry <= 5, spent
    # no write at all while nothing changes, and no GET of a child: they come from the watches
    assert not [k for k in spent if not k.startswith(("GET", "LIST"))], spent
    assert not [k for k in spent if k.endswith(("configmaps", "deployments", "pods"))], spent
