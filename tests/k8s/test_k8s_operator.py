"""The operator, as a real process, against the real control plane.

Each test drives the operator only through the API, the way a user or GitOps tool would: apply
a registry, edit it, delete it, and watch what the cluster does. kwok plays the kubelet, so pods
become Ready without containers; the workers themselves are proven elsewhere.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for
from tests.k8s.k8s_operator_fixtures import operator_fixture

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


operator = operator_fixture("operator", resync=2)


def _registry(name: str, image: str = "example.invalid/orders:1.0.0") -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "replicas": 2,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [
                {"name": "checkout", "versions": ["1.0.0", "1.1.0"]},
            ],
            "replay": {"supportedVersions": {"max": "0.3.0"}},
            # kwok runs no container: a replay check here would "pass" without replaying
            # anything (tests/k8s/test_k8s_real_pods.py runs it for real).
            "rollout": {"replayCheck": {"mode": "Skip"}},
        },
    }


class Cluster:
    """Small reads over kubectl for one namespace, with the operator's log on failure."""

    def __init__(self, plane: ControlPlane, namespace: str, log: Path) -> None:
        self.plane, self.ns, self.log = plane, namespace, log

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.plane.get_json(kind, name, "-n", self.ns)  # type: ignore[no-any-return]

    def pods(self) -> list[dict[str, Any]]:
        items = self.plane.get_json(
            "pods", "-n", self.ns, "-l", "app.kubernetes.io/instance=orders"
        )["items"]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    def conditions(self) -> dict[str, str]:
        status = self.get("orchestrationregistry", "orders").get("status", {})
        return {c["type"]: c["status"] for c in status.get("conditions", [])}

    def event_reasons(self) -> set[str]:
        items = self.plane.get_json(
            "events", "-n", self.ns, "--field-selector", "involvedObject.name=orders"
        )["items"]
        return {
            e["reason"] for e in items if e["involvedObject"]["kind"] == "OrchestrationRegistry"
        }

    def wait(self, what: str, check: Any, timeout: float = 90) -> None:
        try:
            wait_for(what, check, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{tail(self.log, 60)}") from None

    def settled(self, generation: int, workers: int = 2) -> bool:
        body = self.get("orchestrationregistry", "orders")
        status = body.get("status", {})
        conds = {c["type"]: c for c in status.get("conditions", [])}
        return (
            status.get("observedGeneration") == generation
            and conds.get("Available", {}).get("status") == "True"
            and conds.get("Progressing", {}).get("status") == "False"
            and all(c.get("observedGeneration") == generation for c in conds.values())
            and status.get("workers") == f"{workers}/{workers}"
        )


@pytest.fixture
def cluster(control_plane: ControlPlane, namespace: str, operator: Path) -> Cluster:
    control_plane.kubectl(
        "create", "secret", "generic", "store", "-n", namespace,
        "--from-literal=url=postgresql://durox@db/durox",
    )  # fmt: skip
    return Cluster(control_plane, namespace, operator)


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def test_registry_lifecycle(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns

    # create: children appear, pods become Ready on kwok nodes, status turns Available
    plane.apply(_registry("orders"), "-n", ns)
    cluster.wait("the registry to become Available", lambda: cluster.settled(1))
    cm = cluster.get("configmap", "orders")
    dep = cluster.get("deployment", "orders")
    for child in (cm, dep):
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "OrchestrationRegistry",
            "orders",
            True,
        )
    assert "policy: latest" in cm["data"]["worker.yaml"]
    pods = cluster.pods()
    assert len(pods) == 2
    assert all(_ready(p) for p in pods)
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    status = cluster.get("orchestrationregistry", "orders")["status"]
    assert status["activeVersions"] == "checkout@1.1.0"
    assert {"CreatedConfigMap", "CreatedDeployment"} <= cluster.event_reasons()

    # idle: nothing changed, so the operator writes nothing
    versions = {k: cluster.get(k, "orders")["metadata"]["resourceVersion"] for k in
                ("orchestrationregistry", "configmap", "deployment")}  # fmt: skip
    time.sleep(3)
    assert versions == {
        k: cluster.get(k, "orders")["metadata"]["resourceVersion"] for k in versions
    }

    # policy change: the ConfigMap changes, the pods stay
    pod_names = {p["metadata"]["name"] for p in pods}
    revision = status["configRevision"]
    plane.kubectl(
        "patch", "orchestrationregistry", "orders", "-n", ns, "--type=json", "-p",
        json.dumps([
            {"op": "add", "path": "/spec/orchestrations/0/policy", "value": "exact"},
            {"op": "add", "path": "/spec/orchestrations/0/version", "value": "1.0.0"},
        ]),
    )  # fmt: skip
    cluster.wait(
        "the ConfigMap to carry the pinned version",
        lambda: "version: 1.0.0" in cluster.get("configmap", "orders")["data"]["worker.yaml"],
    )
    cluster.wait("the registry to settle on generation 2", lambda: cluster.settled(2))
    status = cluster.get("orchestrationregistry", "orders")["status"]
    assert status["configRevision"] != revision
    assert status["activeVersions"] == "checkout@1.0.0"
    assert (
        cluster.get("deployment", "orders")["metadata"]["generation"]
        == dep["metadata"]["generation"]
    )
    assert {p["metadata"]["name"] for p in cluster.pods()} == pod_names

    # image change: a rolling update, Progressing then Available again
    plane.kubectl(
        "patch", "orchestrationregistry", "orders", "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": {"image": "example.invalid/orders:1.1.0"}}),
    )  # fmt: skip
    cluster.wait("the registry to settle on generation 3", lambda: cluster.settled(3))
    assert "RollingOut" in cluster.event_reasons()  # the Progressing=True flip, as an Event
    new_pods = cluster.pods()
    assert len(new_pods) == 2
    assert not pod_names & {p["metadata"]["name"] for p in new_pods}
    assert {p["spec"]["containers"][0]["image"] for p in new_pods} == {
        "example.invalid/orders:1.1.0"
    }

    # delete: the garbage collector removes the children through their owner references
    plane.kubectl("delete", "orchestrationregistry", "orders", "-n", ns, "--wait=true")
    cluster.wait(
        "the children to be garbage-collected",
        lambda: (
            not plane.exists("configmap", "orders", "-n", ns)
            and not plane.exists("deployment", "orders", "-n", ns)
            and not cluster.pods()
        ),
    )


def test_deleted_child_is_recreated(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_registry("orders"), "-n", ns)
    cluster.wait("the registry to become Available", lambda: cluster.settled(1))
    uid = cluster.get("deployment", "orders")["metadata"]["uid"]
    plane.kubectl("delete", "deployment", "orders", "-n", ns, "--wait=true")
    cluster.wait(
        "a new Deployment",
        lambda: (
            plane.exists("deployment", "orders", "-n", ns)
            and cluster.get("deployment", "orders")["metadata"]["uid"] != uid
        ),
    )
    cluster.wait("the registry to become Available again", lambda: cluster.settled(1))


def test_hand_edited_configmap_is_restored_by_resync(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_registry("orders"), "-n", ns)
    cluster.wait("the registry to become Available", lambda: cluster.settled(1))
    planned = cluster.get("configmap", "orders")["data"]["worker.yaml"]
    plane.kubectl(
        "patch", "configmap", "orders", "-n", ns, "--type=merge",
        "-p", json.dumps({"data": {"worker.yaml": "pool: tampered\n"}}),
    )  # fmt: skip
    cluster.wait(
        "the resync to restore the worker file",
        lambda: cluster.get("configmap", "orders")["data"]["worker.yaml"] == planned,
        timeout=30,
    )


def test_unset_replicas_leave_scaling_to_someone_else(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    body = _registry("orders")
    del body["spec"]["replicas"]
    plane.apply(body, "-n", ns)
    cluster.wait(
        "one worker (the Deployment's default)",
        lambda: (
            cluster.get("orchestrationregistry", "orders").get("status", {}).get("workers") == "1/1"
        ),
    )
    # an autoscaler (here: kubectl scale) owns the count; the operator must not fight it
    plane.kubectl("scale", "deployment", "orders", "-n", ns, "--replicas=3")
    cluster.wait("the registry to report 3/3 workers", lambda: cluster.settled(1, workers=3))
    time.sleep(3)  # longer than the resync period of the operator under test
    assert cluster.get("deployment", "orders")["spec"]["replicas"] == 3


def _freeze_deployments(plane: ControlPlane, namespace: str) -> str:
    """An admission policy that refuses every Deployment write in `namespace`."""
    name = f"freeze-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "deployments are frozen"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    plane.apply(policy)
    plane.apply(binding)

    def refused() -> bool:
        probe = plane.run(
            "kubectl", "create", "deployment", "probe", "--image=example.invalid/x",
            "-n", namespace, "--dry-run=server", check=False,
        )  # fmt: skip
        return probe.returncode != 0 and "deployments are frozen" in probe.stderr

    wait_for("the admission policy to take effect", refused, 30)
    return name


def test_refused_apply_is_degraded_then_recovers(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    policy = _freeze_deployments(plane, ns)
    try:
        plane.apply(_registry("orders"), "-n", ns)

        def degraded() -> bool:
            status = cluster.get("orchestrationregistry", "orders").get("status", {})
            return any(
                (c["type"], c["status"], c["reason"]) == ("Degraded", "True", "ApplyFailed")
                and "deployments are frozen" in c["message"]
                for c in status.get("conditions", [])
            )

        cluster.wait("the registry to report ApplyFailed", degraded)
        assert cluster.conditions()["Available"] == "False"
        assert plane.exists("configmap", "orders", "-n", ns)
        warnings = plane.get_json(
            "events", "-n", ns, "--field-selector", "type=Warning,involvedObject.name=orders"
        )["items"]
        assert any(e["reason"] == "ApplyFailed" for e in warnings)
    finally:
        plane.kubectl("delete", "validatingadmissionpolicybinding", policy, check=False)
        plane.kubectl("delete", "validatingadmissionpolicy", policy, check=False)
    # no event announces the policy's removal: the periodic resync retries on its own
    cluster.wait("the registry to recover", lambda: cluster.settled(1))
    assert cluster.conditions()["Degraded"] == "False"


def _checkout(cm: dict[str, Any]) -> dict[str, Any]:
    """The checkout policy in a worker ConfigMap's file."""
    policies = yaml.safe_load(cm["data"]["worker.yaml"])["orchestrations"]
    return next(p for p in policies if p["name"] == "checkout")


def _progressing(cluster: Cluster) -> dict[str, Any]:
    status = cluster.get("orchestrationregistry", "orders").get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == "Progressing"), {})


def test_new_version_waits_until_every_worker_has_its_handlers(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_registry("orders"), "-n", ns)
    cluster.wait("the registry to become Available", lambda: cluster.settled(1))
    cm = cluster.get("configmap", "orders")
    assert cm["metadata"]["annotations"]["durox.dev/active-versions"] == "checkout@1.1.0"
    old_pods = {p["metadata"]["name"] for p in cluster.pods()}

    # Keep the rollout from finishing (kwok makes pods Ready at once): a quota of two pods
    # leaves no room for the surge pod, so the old workers keep serving.
    plane.apply(
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "two-pods"},
         "spec": {"hard": {"pods": "2"}}},
        "-n", ns,
    )  # fmt: skip
    cluster.wait(
        "the quota to count the pods",
        lambda: (
            cluster.get("resourcequota", "two-pods").get("status", {}).get("used", {}).get("pods")
            == "2"
        ),
    )

    # one apply: a new image that also registers checkout 1.2.0, which `latest` now picks
    upgrade = _registry("orders", image="example.invalid/orders:1.2.0")
    upgrade["spec"]["orchestrations"][0]["versions"].append("1.2.0")
    plane.apply(upgrade, "-n", ns)
    cluster.wait(
        "the registry to hold checkout at 1.1.0",
        lambda: _progressing(cluster).get("reason") == "HoldingVersions",
    )
    dep = cluster.get("deployment", "orders")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.0")
    cm = cluster.get("configmap", "orders")
    assert cm["metadata"]["annotations"]["durox.dev/active-versions"] == "checkout@1.1.0"
    assert _checkout(cm) == {"name": "checkout", "policy": "exact", "version": "1.1.0"}
    status = cluster.get("orchestrationregistry", "orders")["status"]
    assert status["activeVersions"] == "checkout@1.1.0"
    assert status["versions"] == [{"name": "checkout", "active": "1.1.0", "desired": "1.2.0"}]
    assert "checkout@1.1.0 (wants 1.2.0)" in _progressing(cluster)["message"]
    assert "HoldingVersions" in cluster.event_reasons()
    time.sleep(3)  # longer than the resync period: level-triggered passes keep holding
    assert _checkout(cluster.get("configmap", "orders"))["policy"] == "exact"
    assert {p["metadata"]["name"] for p in cluster.pods()} == old_pods

    # room for the rollout: once every worker runs the new template, 1.2.0 is activated
    plane.kubectl("delete", "resourcequota", "two-pods", "-n", ns)
    cluster.wait("the rollout to finish", lambda: cluster.settled(2), timeout=120)
    cluster.wait(
        "the ConfigMap to activate checkout 1.2.0",
        lambda: (
            cluster.get("configmap", "orders")["metadata"]["annotations"][
                "durox.dev/active-versions"
            ]
            == "checkout@1.2.0"
        ),
    )
    assert _checkout(cluster.get("configmap", "orders")) == {"name": "checkout", "policy": "latest"}
    cluster.wait(
        "the status to report checkout@1.2.0",
        lambda: (
            cluster.get("orchestrationregistry", "orders")["status"]["activeVersions"]
            == "checkout@1.2.0"
        ),
    )
    status = cluster.get("orchestrationregistry", "orders")["status"]
    assert status["versions"] == [{"name": "checkout", "active": "1.2.0", "desired": "1.2.0"}]
    assert "ActivatedVersions" in cluster.event_reasons()
    assert not old_pods & {p["metadata"]["name"] for p in cluster.pods()}


def test_drain_pool_comes_and_goes_beside_the_main_pool(cluster: Cluster) -> None:
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_registry("orders"), "-n", ns)
    cluster.wait("the registry to become Available", lambda: cluster.settled(1))

    def main_pool() -> tuple[str, str, int, set[str]]:
        dep = cluster.get("deployment", "orders")
        return (
            cluster.get("configmap", "orders")["metadata"]["resourceVersion"],
            dep["metadata"]["uid"],
            dep["metadata"]["generation"],
            {p["metadata"]["name"] for p in cluster.pods()},
        )

    def drain_pods() -> list[dict[str, Any]]:
        items = plane.get_json("pods", "-n", ns, "-l", "app.kubernetes.io/instance=orders-drain")[
            "items"
        ]
        return [p for p in items if "deletionTimestamp" not in p["metadata"]]

    before = main_pool()

    # enable: a second ConfigMap and Deployment, with the widened range, become ready
    plane.kubectl(
        "patch", "orchestrationregistry", "orders", "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": {"drain": {
            "enabled": True, "supportedVersions": {"min": "0.0.1", "max": "0.9.0"},
        }}}),
    )  # fmt: skip
    cluster.wait(
        "the drain pool to be ready",
        lambda: (
            cluster.settled(2)
            and cluster.get("orchestrationregistry", "orders")["status"].get("drain")
            == {"enabled": True, "workers": "1/1"}
        ),
    )
    drain_cm = cluster.get("configmap", "orders-drain")
    config = yaml.safe_load(drain_cm["data"]["worker.yaml"])
    assert config["supported_replay_versions"] == {"min": "0.0.1", "max": "0.9.0"}
    assert config["pool"] == "orders"
    assert config["orchestrations"] == [{"name": "checkout", "policy": "latest"}]
    main_config = yaml.safe_load(cluster.get("configmap", "orders")["data"]["worker.yaml"])
    assert main_config["supported_replay_versions"] == {"min": "0.0.0", "max": "0.3.0"}
    drain = cluster.get("deployment", "orders-drain")
    assert drain["metadata"]["labels"]["app.kubernetes.io/component"] == "drain-worker"
    assert drain["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "orders-drain"
    [owner] = drain["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == (
        "OrchestrationRegistry",
        "orders",
        True,
    )
    pods = drain_pods()
    assert len(pods) == 1 and _ready(pods[0])
    assert main_pool() == before  # the main pool was not touched
    assert {"CreatedConfigMap", "CreatedDeployment"} <= cluster.event_reasons()

    # disable: both drain children are deleted, the main pool stays as it was
    plane.kubectl(
        "patch", "orchestrationregistry", "orders", "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": {"drain": {"enabled": False}}}),
    )  # fmt: skip
    cluster.wait(
        "the drain pool to be gone",
        lambda: (
            not plane.exists("deployment", "orders-drain", "-n", ns)
            and not plane.exists("configmap", "orders-drain", "-n", ns)
            and not drain_pods()
        ),
    )
    cluster.wait("the registry to settle on generation 3", lambda: cluster.settled(3))
    status = cluster.get("orchestrationregistry", "orders")["status"]
    assert status["drain"] == {"enabled": False, "workers": "0/0"}
    assert {"DeletedConfigMap", "DeletedDeployment"} <= cluster.event_reasons()
    assert main_pool() == before
