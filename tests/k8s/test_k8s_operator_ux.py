"""The operator as its users and their tools meet it, against the real control plane.

Drift repair (a hand edit of a child is undone within seconds, by the watch on the children,
not by the periodic resync, which this module sets to ten minutes), kstatus conditions judged
by the kstatus library itself (sigs.k8s.io/cli-utils, built by build-kstatus.sh), failures
the Deployment hides until its progress deadline, the /scale subresource, and the CEL rules on
`image` and the name.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.gitops_checks import kstatus
from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for
from tests.k8s.k8s_operator_fixtures import kstatus_fixture, operator_fixture

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
PROMPTLY = 20.0
"""Seconds a watched change may take to be repaired or reported: well under the resync."""


operator = operator_fixture("ux", resync=600)
kstatus_check = kstatus_fixture()


def _registry(name: str = "orders", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 2,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "checkout", "versions": ["1.0.0", "1.1.0"]}],
            # kwok runs no container: a replay check here would "pass" without replaying
            # anything (tests/k8s/test_k8s_real_pods.py runs it for real).
            "rollout": {"replayCheck": {"mode": "Skip"}},
        },
    }
    body["spec"].update(spec)
    return body


class Cluster:
    def __init__(self, plane: ControlPlane, namespace: str, log: Path) -> None:
        self.plane, self.ns, self.log = plane, namespace, log

    def get(self, kind: str, name: str = "orders") -> dict[str, Any]:
        return self.plane.get_json(kind, name, "-n", self.ns)  # type: ignore[no-any-return]

    def kubectl(self, *args: str) -> str:
        return self.plane.kubectl(*args, "-n", self.ns)

    def conditions(self) -> dict[str, dict[str, Any]]:
        status = self.get("orchestrationregistry").get("status", {})
        return {c["type"]: c for c in status.get("conditions", [])}

    def events(self, reason: str) -> list[dict[str, Any]]:
        items = self.plane.get_json(
            "events", "-n", self.ns, "--field-selector", f"reason={reason}"
        )["items"]
        return [e for e in items if e["involvedObject"]["kind"] == "OrchestrationRegistry"]

    def wait(self, what: str, check: Any, timeout: float = 90) -> None:
        try:
            wait_for(what, check, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{tail(self.log, 60)}") from None

    def ready(self, generation: int, workers: int = 2) -> bool:
        body = self.get("orchestrationregistry")
        status = body.get("status", {})
        conds = {c["type"]: c for c in status.get("conditions", [])}
        return (
            status.get("observedGeneration") == generation
            and conds.get("Ready", {}).get("status") == "True"
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


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_hand_edits_of_the_children_are_undone_within_seconds(cluster: Cluster) -> None:
    cluster.plane.apply(_registry(), "-n", cluster.ns)
    cluster.wait("the registry to become Ready", lambda: cluster.ready(1))
    planned = cluster.get("deployment")
    planned_file = cluster.get("configmap")["data"]["worker.yaml"]

    cluster.kubectl("scale", "deployment", "orders", "--replicas=1")
    cluster.wait(
        "the replicas to be restored",
        lambda: cluster.get("deployment")["spec"]["replicas"] == 2,
        PROMPTLY,
    )
    cluster.kubectl("set", "image", "deployment/orders", "worker=example.invalid/evil:6.6.6")
    cluster.wait(
        "the image to be restored",
        lambda: _container(cluster.get("deployment"))["image"] == "example.invalid/orders:1.0.0",
        PROMPTLY,
    )
    cluster.kubectl("set", "env", "deployment/orders", "DUROX_LOG_FORMAT=text")
    cluster.wait(
        "the environment to be restored",
        lambda: _container(cluster.get("deployment"))["env"] == _container(planned)["env"],
        PROMPTLY,
    )
    cluster.kubectl(
        "patch", "configmap", "orders", "--type=merge",
        "-p", json.dumps({"data": {"worker.yaml": "pool: tampered\n"}}),
    )  # fmt: skip
    cluster.wait(
        "the worker file to be restored",
        lambda: cluster.get("configmap")["data"]["worker.yaml"] == planned_file,
        PROMPTLY,
    )

    cluster.wait(
        "Events naming what was restored",
        lambda: (
            len(cluster.events("RestoredDeployment")) >= 3 and cluster.events("RestoredConfigMap")
        ),
        PROMPTLY,
    )
    messages = " | ".join(e["message"] for e in cluster.events("RestoredDeployment"))
    assert "spec.replicas (was 1)" in messages
    assert (
        "spec.template.spec.containers[worker].image (was example.invalid/evil:6.6.6)" in messages
    )
    assert (
        "spec.template.spec.containers[worker].env[DUROX_LOG_FORMAT].value (was text)" in messages
    )
    [restored_file] = cluster.events("RestoredConfigMap")
    assert "data.worker.yaml" in restored_file["message"]
    assert all(e["type"] == "Normal" for e in cluster.events("RestoredDeployment"))

    # and then it rests: no write fights the apiserver's defaults
    cluster.wait("the registry to settle", lambda: cluster.ready(1))
    kinds = ("orchestrationregistry", "configmap", "deployment")
    before = {k: cluster.get(k)["metadata"]["resourceVersion"] for k in kinds}
    restored = len(cluster.events("RestoredDeployment"))
    time.sleep(3)
    assert before == {k: cluster.get(k)["metadata"]["resourceVersion"] for k in kinds}
    assert len(cluster.events("RestoredDeployment")) == restored


def test_unset_replicas_belong_to_whoever_scales_the_deployment(cluster: Cluster) -> None:
    body = _registry()
    del body["spec"]["replicas"]
    cluster.plane.apply(body, "-n", cluster.ns)
    cluster.wait("one worker", lambda: cluster.ready(1, workers=1))
    cluster.kubectl("scale", "deployment", "orders", "--replicas=3")
    cluster.wait("3/3 workers", lambda: cluster.ready(1, workers=3), PROMPTLY)
    time.sleep(2)
    assert cluster.get("deployment")["spec"]["replicas"] == 3
    assert not cluster.events("RestoredDeployment")


def _apply_as(cluster: Cluster, manager: str, body: dict[str, Any]) -> None:
    """`kubectl apply --server-side` as field manager `manager` (a GitOps tool's own name)."""
    cluster.plane.kubectl(
        "apply", "--server-side", f"--field-manager={manager}", "-f", "-", "-n", cluster.ns,
        input=json.dumps(body),
    )  # fmt: skip


def _replicas_owners(cluster: Cluster) -> set[str]:
    dep = cluster.plane.get_json("deployment", "orders", "-n", cluster.ns, "--show-managed-fields")
    return {
        m["manager"]
        for m in dep["metadata"]["managedFields"]
        if "f:replicas" in m.get("fieldsV1", {}).get("f:spec", {})
    }


def test_replicas_from_a_number_to_unset_stay_where_they_are_for_an_autoscaler(
    cluster: Cluster,
) -> None:
    """A registry whose `replicas` the user drops (server-side apply, so the field is gone,
    not null) keeps its workers: the Deployment is not reset to the default of 1, which is
    what server-side apply does to a field its only manager stops applying. From then on
    whoever scales the Deployment (an HPA, KEDA, `kubectl scale`) owns the count."""
    _apply_as(cluster, "gitops", _registry(replicas=3))
    cluster.wait("3/3 workers", lambda: cluster.ready(1, workers=3))
    assert _replicas_owners(cluster) == {"durox-operator"}

    body = _registry()
    del body["spec"]["replicas"]
    _apply_as(cluster, "gitops", body)
    assert "replicas" not in cluster.get("orchestrationregistry")["spec"]
    cluster.wait(
        "generation 2 observed",
        lambda: cluster.get("orchestrationregistry")["status"].get("observedGeneration") == 2,
        PROMPTLY,
    )
    seen = []
    for _ in range(10):  # a reset to 1 would show within these seconds, and stay
        seen.append(cluster.get("deployment")["spec"]["replicas"])
        time.sleep(0.5)
    assert set(seen) == {3}, seen
    assert _replicas_owners(cluster) == {"durox-operator-handover"}
    cluster.wait("3/3 workers at generation 2", lambda: cluster.ready(2, workers=3), PROMPTLY)

    # an autoscaler's write (the /scale subresource of the Deployment, like an HPA's) holds
    cluster.kubectl("scale", "deployment", "orders", "--replicas=5")
    cluster.wait("5/5 workers", lambda: cluster.ready(2, workers=5), PROMPTLY)
    cluster.kubectl("annotate", "orchestrationregistry", "orders", "touch=1")  # another pass
    time.sleep(3)
    assert cluster.get("deployment")["spec"]["replicas"] == 5
    assert not cluster.events("RestoredDeployment")


def test_workers_spread_over_nodes_unless_the_user_says_otherwise(cluster: Cluster) -> None:
    """The default preferred anti-affinity, as the real scheduler reads it: three workers on
    the three kwok nodes. A user's `pod.affinity` replaces it whole."""
    cluster.plane.apply(_registry(replicas=3), "-n", cluster.ns)
    cluster.wait("3/3 workers", lambda: cluster.ready(1, workers=3))
    pods = cluster.plane.get_json(
        "pods", "-n", cluster.ns, "-l", "app.kubernetes.io/instance=orders"
    )["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    anti = pods[0]["spec"]["affinity"]["podAntiAffinity"]
    assert list(anti) == ["preferredDuringSchedulingIgnoredDuringExecution"]

    mine = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [
            {"key": "type", "operator": "In", "values": ["kwok"]}]}}]}}  # fmt: skip
    cluster.plane.apply(_registry(replicas=3, pod={"affinity": mine}), "-n", cluster.ns)
    cluster.wait("3/3 workers at generation 2", lambda: cluster.ready(2, workers=3))
    template = cluster.get("deployment")["spec"]["template"]["spec"]
    assert template["affinity"] == mine
    time.sleep(2)  # what the apiserver stored is what was planned: no repair loop
    assert not cluster.events("RestoredDeployment")


def test_the_scale_subresource_scales_the_workers(cluster: Cluster) -> None:
    cluster.plane.apply(_registry(), "-n", cluster.ns)
    cluster.wait("the registry to become Ready", lambda: cluster.ready(1))
    scale = cluster.plane.get_json(
        "orchestrationregistry", "orders", "-n", cluster.ns, "--subresource=scale"
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["replicas"] == 2
    selector = scale["status"]["selector"]
    pods = cluster.plane.get_json("pods", "-n", cluster.ns, "-l", selector)["items"]
    assert len(pods) == 2

    cluster.kubectl("scale", "orchestrationregistry", "orders", "--replicas=4")
    assert cluster.get("orchestrationregistry")["spec"]["replicas"] == 4
    cluster.wait("4/4 workers", lambda: cluster.ready(2, workers=4))
    assert cluster.get("deployment")["spec"]["replicas"] == 4


def _kstatus(cluster: Cluster, check: Path) -> tuple[str, str]:
    return kstatus(check, cluster.get("orchestrationregistry"))


def test_kstatus_reads_healthy_and_held_registries(cluster: Cluster, kstatus_check: Path) -> None:
    results: dict[str, tuple[str, str]] = {}

    # healthy -> Current
    cluster.plane.apply(_registry(), "-n", cluster.ns)
    cluster.wait("the registry to become Ready", lambda: cluster.ready(1))
    results["healthy"] = _kstatus(cluster, kstatus_check)

    # held: a new image registers checkout 1.2.0, but its pods cannot be scheduled yet
    # (no node matches), so the old workers keep serving and 1.2.0 waits -> InProgress
    upgrade = _registry(
        image="example.invalid/orders:1.2.0", pod={"nodeSelector": {"pool": "later"}}
    )
    upgrade["spec"]["orchestrations"][0]["versions"].append("1.2.0")
    cluster.plane.apply(upgrade, "-n", cluster.ns)
    cluster.wait(
        "checkout to be held at 1.1.0",
        lambda: (
            cluster.conditions().get("Progressing", {}).get("reason") == "HoldingVersions"
            and cluster.get("orchestrationregistry")["status"]["observedGeneration"] == 2
        ),
    )
    conds = cluster.conditions()
    assert (conds["Reconciling"]["status"], conds["Reconciling"]["reason"]) == (
        "True",
        "HoldingVersions",
    )
    assert conds["Stalled"]["status"] == "False"
    assert conds["Ready"]["status"] == "False"
    results["held"] = _kstatus(cluster, kstatus_check)
    print(json.dumps(results))
    # stalled is its own registry (below): no pod can be created for it
    assert results["healthy"][0] == "Current", results
    assert results["held"][0] == "InProgress", results


def test_a_missing_service_account_is_reported_within_seconds(
    cluster: Cluster, kstatus_check: Path
) -> None:
    cluster.plane.apply(_registry(pod={"serviceAccountName": "missing"}), "-n", cluster.ns)

    def stalled() -> bool:
        conds = cluster.conditions()
        return conds.get("Stalled", {}).get("status") == "True"

    cluster.wait("the registry to report Stalled", stalled, PROMPTLY)
    conds = cluster.conditions()
    degraded = conds["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ReplicaFailure")
    assert 'serviceaccount "missing" not found' in degraded["message"]
    assert conds["Stalled"]["reason"] == "ReplicaFailure"
    assert conds["Reconciling"]["status"] == "False"
    assert conds["Ready"]["status"] == "False"
    assert all(c["observedGeneration"] == 1 for c in conds.values())
    warnings = [e for e in cluster.events("ReplicaFailure") if e["type"] == "Warning"]
    assert warnings
    status, message = _kstatus(cluster, kstatus_check)
    print(json.dumps({"stalled": [status, message]}))
    assert status == "Failed", message

    # the cause fixed, the registry recovers without an edit of its own
    cluster.kubectl("create", "serviceaccount", "missing")
    cluster.wait("the registry to become Ready", lambda: cluster.ready(1), 120)
    assert _kstatus(cluster, kstatus_check)[0] == "Current"


def test_a_pod_that_cannot_pull_its_image_is_reported(cluster: Cluster) -> None:
    cluster.plane.apply(_registry(replicas=1), "-n", cluster.ns)
    cluster.wait("the registry to become Ready", lambda: cluster.ready(1, workers=1))
    [pod] = cluster.plane.get_json(
        "pods", "-n", cluster.ns, "-l", "app.kubernetes.io/instance=orders"
    )["items"]
    # kwok runs no kubelet that could fail a pull: write the status one would
    waiting = {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "example.invalid/orders:1.0.0"',
    }
    patch = {"status": {"containerStatuses": [{
        "name": "worker", "image": "example.invalid/orders:1.0.0", "imageID": "",
        "ready": False, "restartCount": 0, "started": False, "state": {"waiting": waiting},
    }]}}  # fmt: skip
    cluster.kubectl(
        "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    cluster.wait(
        "PodsFailing",
        lambda: cluster.conditions().get("Degraded", {}).get("reason") == "PodsFailing",
        PROMPTLY,
    )
    message = cluster.conditions()["Degraded"]["message"]
    assert f"pod {pod['metadata']['name']}: container worker: ImagePullBackOff" in message
    assert cluster.conditions()["Stalled"]["status"] == "True"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("registry.example.com/orders", "image must name a tag or a digest"),
        ("not an image", "image must be an image reference"),
        ("Registry.Example.com/Orders:1", "image must be an image reference"),
    ],
)
def test_images_without_a_tag_or_digest_are_refused(
    control_plane: ControlPlane, registry_crd: str, namespace: str, image: str, message: str
) -> None:
    proc = control_plane.run(
        "kubectl", "apply", "-n", namespace, "-f", "-", check=False,
        input=json.dumps(_registry(image=image)),
    )  # fmt: skip
    assert proc.returncode != 0
    assert "spec.image" in proc.stderr and message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "image",
    [
        "example.invalid/orders:1.0.0",
        "localhost:5000/team/orders:2024.01",
        "orders@sha256:" + "a" * 64,
        "registry.example.com/orders:1.4.0@sha256:" + "b" * 64,
    ],
)
def test_images_with_a_tag_or_digest_are_accepted(
    control_plane: ControlPlane, registry_crd: str, namespace: str, image: str
) -> None:
    control_plane.apply(_registry(image=image), "-n", namespace, "--dry-run=server")


def test_the_name_length_error_names_its_field(
    control_plane: ControlPlane, registry_crd: str, namespace: str
) -> None:
    proc = control_plane.run(
        "kubectl", "apply", "-n", namespace, "-f", "-", check=False,
        input=json.dumps(_registry(name="n" * 53)),
    )  # fmt: skip
    assert proc.returncode != 0
    assert "metadata.name: Invalid value" in proc.stderr, proc.stderr
    assert "at most 52 characters" in proc.stderr
