"""`kubectl durox status REGISTRY`, run by the real kubectl as a plugin against a real
apiserver: it resolves the registry's store Secret (the operator's read-only one first) and
shows the store's versions and workers beside the resource's status. No pod runs: the store is
a SQLite file real workers filled on this machine, which the plugin opens from the Secret's URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_admin_cli import ORDER, fill_store
from tests.k8s.k8s_control_plane import ControlPlane
from tests.k8s.test_k8s_crd import valid_registry

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

CONDITIONS = [
    {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "2 of 2 workers serve checkout@1.1.0",
        "lastTransitionTime": "2026-11-30T00:00:00Z",
    },
    {
        "type": "Degraded",
        "status": "False",
        "reason": "AsExpected",
        "message": "nothing wrong",
        "lastTransitionTime": "2026-11-30T00:00:00Z",
    },
]


def plugin(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl durox ARGS`: kubectl finds `kubectl-durox` on PATH (the project's venv)."""
    env = plane.env()
    env["PATH"] = f"{env['PATH']}{os.pathsep}{Path(sys.executable).parent}"
    return subprocess.run(
        [str(plane.bin_dir / "kubectl"), "durox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def secret(plane: ControlPlane, namespace: str, name: str, url: str) -> None:
    plane.kubectl("create", "secret", "generic", name, f"--from-literal=url={url}", "-n", namespace)


def registry(plane: ControlPlane, namespace: str, store: dict[str, Any]) -> None:
    body = valid_registry("orders")
    body["spec"]["pool"] = "main"
    body["spec"]["store"] = store
    plane.apply(body, "-n", namespace)
    status = {
        "workers": "2/2",
        "activeVersions": "checkout@1.1.0,refund@2.0.0",
        "versions": [{"name": "checkout", "active": "1.1.0", "desired": "1.1.0", "running": 3}],
        "conditions": CONDITIONS,
    }
    plane.kubectl(
        "patch", "orchestrationregistry", "orders", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_status_shows_the_resource_and_its_store(
    control_plane: ControlPlane, registry_crd: str, namespace: str, tmp_path: Path
) -> None:
    url = asyncio.run(fill_store(f"sqlite:///{tmp_path / 'shop.db'}"))
    # The workers' Secret points nowhere: the plugin must read the operator's one.
    secret(control_plane, namespace, "orders-store", "postgresql://w:s3cret@127.0.0.1:1/none")
    secret(control_plane, namespace, "orders-store-ro", url)
    registry(
        control_plane,
        namespace,
        {"secretRef": {"name": "orders-store"}, "operatorSecretRef": {"name": "orders-store-ro"}},
    )

    shown = plugin(control_plane, "status", "orders", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"registry:        {namespace}/orders" in lines
    assert "active versions: checkout@1.1.0,refund@2.0.0" in lines
    assert any(line.split()[:3] == ["Ready", "True", "Reconciled"] for line in lines)
    assert any(line.split() == ["checkout", "1.1.0", "1.1.0", "3"] for line in lines)
    assert "In the store (pool main):" in lines
    assert any(line.split()[:2] == [f"{ORDER}@1.0.0", "2"] for line in lines)
    assert any(line.split()[:3] == ["w-1", "pod-a", "main"] and "live" in line for line in lines)
    assert "shop.db" not in shown.stdout  # the store URL is not printed

    as_json = plugin(control_plane, "status", "orders", "-n", namespace, "-o", "json")
    document = json.loads(as_json.stdout)
    assert document["registry"]["status"]["conditions"][0]["type"] == "Ready"
    assert document["pool"] == "main"
    assert [(v["version"], v["running"]) for v in document["store"]["versions"]] == [
        ("1.0.0", 2),
        ("1.1.0", 1),
    ]
    assert [w["worker_id"] for w in document["workers"]] == ["w-1"]


def test_what_is_missing_or_unreachable_says_so_without_the_password(
    control_plane: ControlPlane, registry_crd: str, namespace: str
) -> None:
    gone = plugin(control_plane, "status", "nope", "-n", namespace)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith("kubectl durox status: kubectl get ") and "nope" in gone.stderr

    registry(control_plane, namespace, {"secretRef": {"name": "orders-store"}})
    no_secret = plugin(control_plane, "status", "orders", "-n", namespace)
    assert no_secret.returncode == 1 and "orders-store" in no_secret.stderr

    secret(control_plane, namespace, "orders-store", "postgresql://w:s3cret@127.0.0.1:1/none")
    unreachable = plugin(control_plane, "status", "orders", "-n", namespace)
    assert unreachable.returncode == 2 and unreachable.stdout == ""
    assert "postgresql://w:***@127.0.0.1:1/none" in unreachable.stderr
    assert "s3cret" not in unreachable.stderr
