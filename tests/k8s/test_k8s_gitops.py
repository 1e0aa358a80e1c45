"""The Argo CD health check and actions and the Flux health expressions (docs/gitops/), run
on registries read from the real control plane in each state they can be in.

The Lua runs in Lua 5.1 (what Argo CD embeds) through lupa, the CEL through cel-python; the
actions' results are written back to the cluster, as Argo CD does, and the operator acts on
them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.gitops_checks import (
    argocd_action,
    argocd_available_actions,
    argocd_health,
    flux_status,
    kstatus,
)
from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for
from tests.k8s.k8s_operator_fixtures import kstatus_fixture, operator_fixture

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


kstatus_check = kstatus_fixture()
operator = operator_fixture("gitops", resync=600)


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
            # kwok runs no container: a replay check here would wait on a Job that replays
            # nothing (tests/k8s/test_k8s_real_replay_check.py runs it on real pods).
            "rollout": {"replayCheck": {"mode": "Skip"}},
        },
    }
    body["spec"].update(spec)
    return body


class Registry:
    def __init__(
        self, plane: ControlPlane, namespace: str, log: Path, name: str, kstatus: Path
    ) -> None:
        self.plane, self.ns, self.log, self.name = plane, namespace, log, name
        self.kstatus = kstatus

    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = self.plane.get_json("oreg", self.name, "-n", self.ns)
        return found

    def condition(self, kind: str) -> dict[str, Any]:
        return next(
            (c for c in self.body().get("status", {}).get("conditions", []) if c["type"] == kind),
            {},
        )

    def wait(self, what: str, check: Any, timeout: float = 90) -> None:
        try:
            wait_for(what, check, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{tail(self.log, 60)}") from None

    def settled(self, generation: int) -> bool:
        body = self.body()
        status = body.get("status", {})
        return status.get("observedGeneration") == generation and any(
            c["type"] == "Ready" and c["status"] == "True" and c["observedGeneration"] == generation
            for c in status.get("conditions", [])
        )

    def act(self, action: str) -> None:
        """Run an Argo CD action on the live object and write its result back."""
        changed = argocd_action(action, self.body())
        self.plane.kubectl(
            "patch", "oreg", self.name, "-n", self.ns, "--type=merge",
            "-p", json.dumps({"spec": changed["spec"]}),
        )  # fmt: skip

    def verdicts(self) -> tuple[str, str, str]:
        """What Argo CD (our Lua), Flux (our CEL) and kstatus (Flux's default) conclude."""
        body = self.body()
        return argocd_health(body)["status"], flux_status(body), kstatus(self.kstatus, body)[0]


@pytest.fixture
def make(control_plane: ControlPlane, namespace: str, operator: Path, kstatus_check: Path) -> Any:
    control_plane.kubectl(
        "create", "secret", "generic", "store", "-n", namespace,
        "--from-literal=url=postgresql://durox@db/durox",
    )  # fmt: skip

    def create(body: dict[str, Any]) -> Registry:
        control_plane.apply(body, "-n", namespace)
        name = body["metadata"]["name"]
        return Registry(control_plane, namespace, operator, name, kstatus_check)

    return create


def test_health_and_actions_through_a_registry_s_life(make: Any) -> None:
    seen: dict[str, tuple[str, ...]] = {}
    reg: Registry = make(_registry())
    reg.wait("Ready", lambda: reg.settled(1))
    seen["healthy"] = reg.verdicts()
    assert argocd_available_actions(reg.body()) == {"enable-drain", "pause"}

    # a spec the operator has not observed yet: Progressing for both, whatever the conditions
    ahead = reg.body()
    ahead["metadata"]["generation"] += 1
    seen["unobserved"] = (
        argocd_health(ahead)["status"],
        flux_status(ahead),
        kstatus(reg.kstatus, ahead)[0],
    )

    reg.act("enable-drain")
    reg.wait(
        "the drain pool",
        lambda: reg.settled(2) and reg.body()["status"]["drain"]["workers"] == "1/1",
    )
    assert reg.plane.exists("deployment", "orders-drain", "-n", reg.ns)
    assert argocd_available_actions(reg.body()) == {"disable-drain", "pause"}
    reg.act("disable-drain")
    reg.wait(
        "the drain pool to go",
        lambda: reg.settled(3) and not reg.plane.exists("deployment", "orders-drain", "-n", reg.ns),
    )

    reg.act("pause")
    reg.wait("paused", lambda: reg.settled(4))
    assert argocd_available_actions(reg.body()) == {"enable-drain", "resume"}
    reg.plane.kubectl(
        "patch", "oreg", "orders", "-n", reg.ns, "--type=merge",
        "-p", json.dumps({"spec": {"image": "example.invalid/orders:1.1.0"}}),
    )  # fmt: skip
    reg.wait(
        "the paused rollout",
        lambda: (
            reg.condition("Progressing").get("reason") == "RolloutPaused"
            and reg.body()["status"]["observedGeneration"] == 5
        ),
    )
    dep = reg.plane.get_json("deployment", "orders", "-n", reg.ns)
    assert dep["spec"]["paused"] is True
    seen["paused"] = reg.verdicts()
    reg.act("resume")
    reg.wait("the rollout to finish", lambda: reg.settled(6))
    assert "paused" not in reg.plane.get_json("deployment", "orders", "-n", reg.ns)["spec"]
    seen["resumed"] = reg.verdicts()

    # a version held while the new pods cannot be scheduled
    upgrade = _registry(
        image="example.invalid/orders:1.2.0", pod={"nodeSelector": {"pool": "later"}}
    )
    upgrade["spec"]["orchestrations"][0]["versions"].append("1.2.0")
    reg.plane.apply(upgrade, "-n", reg.ns)
    reg.wait(
        "held",
        lambda: (
            reg.condition("Progressing").get("reason") == "HoldingVersions"
            and reg.body()["status"]["observedGeneration"] == 7
        ),
    )
    seen["held"] = reg.verdicts()

    stalled: Registry = make(_registry("stuck", pod={"serviceAccountName": "missing"}))
    stalled.wait("Stalled", lambda: stalled.condition("Stalled").get("status") == "True")
    seen["stalled"] = stalled.verdicts()
    print(json.dumps(seen))
    assert seen == {  # Argo CD, Flux healthCheckExprs, kstatus
        "healthy": ("Healthy", "Current", "Current"),
        "unobserved": ("Progressing", "InProgress", "InProgress"),
        "paused": ("Suspended", "InProgress", "InProgress"),
        "resumed": ("Healthy", "Current", "Current"),
        "held": ("Progressing", "InProgress", "InProgress"),
        "stalled": ("Degraded", "Failed", "Failed"),
    }
    assert "ReplicaFailure" in argocd_health(stalled.body())["message"]
