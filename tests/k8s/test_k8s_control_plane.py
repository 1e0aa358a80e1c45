"""The control plane fixture does what the operator tests rely on.

If these fail, every operator test would fail for reasons unrelated to the operator: a
Deployment must become ReplicaSets (controller-manager), its pods must land on kwok nodes
(scheduler) and turn Ready (kwok), and a new pod template must replace them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


def _deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def _pods(plane: ControlPlane, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = plane.get_json("pods", "-n", namespace, "-l", f"app={app}")[
        "items"
    ]
    return [p for p in items if "deletionTimestamp" not in p["metadata"]]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def test_versions_are_stamped(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json"))
    assert versions["serverVersion"]["gitVersion"].startswith("v1.36.")
    assert versions["clientVersion"]["gitVersion"].startswith("v1.36.")


def test_kwok_nodes_are_ready(control_plane: ControlPlane) -> None:
    nodes = control_plane.get_json("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(control_plane.nodes)


def test_deployment_rolls_out_and_updates_on_kwok(
    control_plane: ControlPlane, namespace: str
) -> None:
    plane = control_plane
    plane.apply(_deployment("web", "example.invalid/web:1", 3), "-n", namespace)
    plane.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")

    first = _pods(plane, namespace, "web")
    assert len(first) == 3
    assert all(_ready(p) for p in first)
    assert {p["spec"]["nodeName"] for p in first} <= set(plane.nodes)

    plane.apply(_deployment("web", "example.invalid/web:2", 3), "-n", namespace)
    plane.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")

    def replaced() -> bool:
        pods = _pods(plane, namespace, "web")
        return (
            len(pods) == 3
            and all(_ready(p) for p in pods)
            and all(p["spec"]["containers"][0]["image"] == "example.invalid/web:2" for p in pods)
        )

    wait_for("the rolling update to replace every pod", replaced, 60)
    old_names = {p["metadata"]["name"] for p in first}
    assert not old_names & {p["metadata"]["name"] for p in _pods(plane, namespace, "web")}
    replica_sets = plane.get_json("replicasets", "-n", namespace)["items"]
    assert len(replica_sets) == 2


def test_garbage_collector_removes_dependents(control_plane: ControlPlane, namespace: str) -> None:
    plane = control_plane
    plane.apply(_deployment("gc", "example.invalid/gc:1", 2), "-n", namespace)
    plane.kubectl("rollout", "status", "deployment/gc", "-n", namespace, "--timeout=90s")
    assert plane.get_json("replicasets", "-n", namespace, "-l", "app=gc")["items"]
    plane.kubectl("delete", "deployment", "gc", "-n", namespace)
    wait_for(
        "the ReplicaSet and its pods to be garbage-collected",
        lambda: (
            not plane.get_json("replicasets", "-n", namespace, "-l", "app=gc")["items"]
            and not plane.get_json("pods", "-n", namespace, "-l", "app=gc")["items"]
        ),
        60,
    )
