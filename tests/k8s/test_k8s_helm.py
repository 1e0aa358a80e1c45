"""The Helm chart: it lints, renders secure objects from one CRD source, and installs an
operator whose RBAC is enough, and only what is needed, to run a registry.

The least-privilege proof runs the operator on the host with a token of the chart's own
ServiceAccount: if the ClusterRole lacked a verb the operator uses, the registry would never
become Available.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.k8s_control_plane import (
    ControlPlane,
    free_port,
    http_ok,
    operator_process,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "durox"


def _render(plane: ControlPlane, *args: str) -> list[dict[str, Any]]:
    out = plane.run("helm", "template", "durox", str(CHART), "-n", "durox-system", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_chart_lints_strictly(control_plane: ControlPlane) -> None:
    proc = control_plane.run("helm", "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout


def test_chart_renders_secure_defaults_and_the_one_crd(control_plane: ControlPlane) -> None:
    docs = _render(control_plane, "--include-crds")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    [crd] = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    source = yaml.safe_load((REPO / "crds" / "durox.dev_orchestrationregistries.yaml").read_text())
    assert crd == source

    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 2  # one leader, one standby
    [role] = [d for d in docs if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "durox-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]}
    ]  # fmt: skip
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # the image the repository builds (Dockerfile's `operator` target), tagged appVersion
    chart = yaml.safe_load((REPO / "helm" / "durox" / "Chart.yaml").read_text())
    assert container["image"] == f"durox-operator:{chart['appVersion']}" == "durox-operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"  # a loaded image is used as it is
    assert container["args"][0] == "run"
    assert {"--lease=durox", "--lease-namespace=durox-system", "--identity=$(POD_NAME)"} <= set(
        container["args"]
    )
    assert container["env"][0]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for doc in docs[1:] if docs[0]["kind"] == "CustomResourceDefinition" else docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "durox-operator"
        assert labels["app.kubernetes.io/part-of"] == "durox"


def test_chart_options_reach_the_operator_args(control_plane: ControlPlane) -> None:
    docs = _render(
        control_plane,
        "--set",
        "watchNamespaces={a,b}",
        "--set",
        "replicas=2",
        "--set",
        "peering.enabled=true",
    )
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=a" in args
    assert "--namespace=b" in args
    assert "--peering=durox" in args
    assert "--resync-seconds=300" in args
    assert "--metrics-port=8080" in args


def test_chart_metrics_service_and_an_opt_in_service_monitor(control_plane: ControlPlane) -> None:
    """The metrics Service by default, the ServiceMonitor only when asked, nothing when off."""
    kinds = [d["kind"] for d in _render(control_plane)]
    assert "Service" in kinds and "ServiceMonitor" not in kinds
    docs = _render(
        control_plane,
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=prom",
    )  # fmt: skip
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    [service] = [d for d in docs if d["kind"] == "Service"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    off = _render(control_plane, "--set", "metrics.enabled=false")
    assert {"Service", "ServiceMonitor"}.isdisjoint(d["kind"] for d in off)
    [dep] = [d for d in off if d["kind"] == "Deployment"]
    assert not any(
        a.startswith("--metrics-port")
        for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("leaderElection.enabled=false", "replicas > 1 needs leaderElection.enabled"),
        ("unknownKey=1", "additional properties 'unknownKey' not allowed"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("resyncSeconds=1", "resyncSeconds"),
    ],
)
def test_chart_refuses_bad_values(control_plane: ControlPlane, setting: str, message: str) -> None:
    proc = control_plane.run("helm", "template", "durox", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.fixture
def installed(control_plane: ControlPlane) -> Iterator[str]:
    """The chart installed into its own namespace; yields that namespace."""
    ns = f"durox-{uuid.uuid4().hex[:8]}"
    control_plane.run(
        "helm", "install", "durox", str(CHART), "-n", ns, "--create-namespace",
        "--wait", "--timeout=120s",
    )  # fmt: skip
    yield ns
    control_plane.run("helm", "uninstall", "durox", "-n", ns, "--wait", check=False)
    control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_installed_chart_rbac_runs_a_registry(
    control_plane: ControlPlane, installed: str, namespace: str, tmp_path: Path
) -> None:
    plane = control_plane
    dep = plane.get_json("deployment", "durox", "-n", installed)
    assert dep["status"].get("readyReplicas") == 2  # kwok runs the operator's pods "Ready"
    assert plane.exists("crd", "orchestrationregistries.durox.dev")

    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    token = plane.kubectl("create", "token", sa, "-n", installed, "--duration=1h").strip()
    kubeconfig = plane.write_kubeconfig(f"operator-{installed}", token)

    def can_i(verb: str, resource: str, ns: str = namespace) -> str:
        return plane.kubectl(
            "auth", "can-i", verb, resource, "-n", ns,
            f"--as=system:serviceaccount:{installed}:{sa}", check=False,
        ).strip()  # fmt: skip

    # The Lease: in the release namespace only, and never deleted.
    assert [can_i(v, "leases", installed) for v in ("get", "create", "update")] == ["yes"] * 3
    assert [can_i("delete", "leases", installed), can_i("update", "leases")] == ["no", "no"]

    # Least privilege: deleting Deployments and ConfigMaps is granted for a disabled drain pool,
    # reading (only getting, by name) the store Secret a registry names to observe its store;
    # nothing the operator never touches is.
    assert can_i("delete", "deployments") == "yes"
    assert [can_i("delete", "pods"), can_i("list", "secrets"), can_i("delete", "secrets")] == [
        "no",
        "no",
        "no",
    ]
    assert can_i("get", "secrets") == "yes"

    plane.kubectl(
        "create", "secret", "generic", "store", "-n", namespace, "--from-literal=url=sqlite://x"
    )
    registry = {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": "orders"},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 1,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "checkout", "versions": ["1.0.0"]}],
        },
    }
    log = tmp_path / "operator.log"
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    with operator_process(
        plane, log, "--namespace", namespace, "--liveness", liveness,
        "--lease", "durox", "--lease-namespace", installed, kubeconfig=kubeconfig,
    ):  # fmt: skip
        wait_for("the liveness endpoint the chart probes", lambda: http_ok(liveness), 30)
        plane.apply(registry, "-n", namespace)

        def available() -> bool:
            status = plane.get_json("orchestrationregistry", "orders", "-n", namespace).get(
                "status", {}
            )
            return any(
                c["type"] == "Available" and c["status"] == "True"
                for c in status.get("conditions", [])
            )

        try:
            wait_for("the registry to become Available under the chart's RBAC", available, 90)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{tail(log, 60)}") from None
        events = plane.get_json("events", "-n", namespace)["items"]
        assert any(e["reason"] == "CreatedDeployment" for e in events)

        # A drain pool turned on and off again needs create, then delete, under the same RBAC.
        def drain(enabled: bool) -> None:
            patch = json.dumps({"spec": {"drain": {"enabled": enabled}}})
            plane.kubectl(
                "patch", "orchestrationregistry", "orders", "-n", namespace, "--type=merge",
                "-p", patch,
            )  # fmt: skip

        def drain_children() -> list[bool]:
            return [
                plane.exists(kind, "orders-drain", "-n", namespace)
                for kind in ("deployment", "configmap")
            ]

        drain(True)
        wait_for("the drain pool's children", lambda: drain_children() == [True, True], 60)
        drain(False)
        wait_for("the drain pool to be deleted", lambda: drain_children() == [False, False], 60)
    # a 403 anywhere, not a log line's milliseconds (",403")
    assert not re.search(r"(?<![,\d])403\b", log.read_text())
    assert "is now the leader" in log.read_text()
