"""The apiserver itself rejects bad OrchestrationRegistries, with a message that says why.

These rules run in the apiserver (OpenAPI schema and CEL), so they protect every path in:
kubectl, Helm, GitOps and the operator's own users. Only a real apiserver can prove them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]


def valid_registry(name: str = "orders") -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 2,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "orders-store"}},
            "orchestrations": [
                {"name": "checkout", "versions": ["1.0.0", "1.1.0"]},
                {"name": "refund", "versions": ["2.0.0"], "policy": "exact", "version": "2.0.0"},
            ],
            "replay": {"supportedVersions": {"min": "0.1.0", "max": "0.3.0"}},
            "drain": {"enabled": False},
        },
    }


def _edit(path: list[str | int], value: Any) -> dict[str, Any]:
    body = valid_registry("bad")
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


_DELETE = object()


def test_valid_registry_is_accepted_with_defaults(
    control_plane: ControlPlane, registry_crd: str, namespace: str
) -> None:
    control_plane.apply(valid_registry(), "-n", namespace)
    stored = control_plane.get_json("orchestrationregistry", "orders", "-n", namespace)
    assert stored["spec"]["orchestrations"][0]["policy"] == "latest"
    assert stored["spec"]["store"]["secretRef"]["key"] == "url"


INVALID = [
    pytest.param(
        _edit(["spec", "orchestrations", 0, "versions"], ["1.0"]),
        "must be a semantic version",
        id="version-not-semver",
    ),
    pytest.param(
        _edit(
            ["spec", "orchestrations", 1],
            {"name": "refund", "versions": ["2.0.0"], "policy": "exact"},
        ),
        "policy 'exact' needs a version",
        id="exact-without-version",
    ),
    pytest.param(
        _edit(["spec", "orchestrations", 1, "version"], "9.9.9"),
        "must be one of the versions the image registers",
        id="exact-version-not-registered",
    ),
    pytest.param(
        _edit(["spec", "orchestrations", 0, "version"], "1.0.0"),
        "policy 'latest' takes no version",
        id="latest-with-version",
    ),
    pytest.param(
        _edit(
            ["spec", "orchestrations"],
            [
                {"name": "checkout", "versions": ["1.0.0"]},
                {"name": "checkout", "versions": ["2.0.0"]},
            ],
        ),
        "orchestration names must be unique",
        id="duplicate-names",
    ),
    pytest.param(
        _edit(["spec", "replay", "supportedVersions"], {"min": "0.5.0", "max": "0.3.0"}),
        "replay range min must not be above max",
        id="replay-min-above-max",
    ),
    pytest.param(
        _edit(["spec", "orchestrations", 0, "policy"], "newest"),
        'Unsupported value: "newest"',
        id="unknown-policy",
    ),
    pytest.param(
        _edit(["spec", "app"], "orders.app"),
        "app must be MODULE:ATTR",
        id="app-without-attr",
    ),
    pytest.param(
        _edit(["spec", "image"], _DELETE),
        "spec.image: Required value",
        id="missing-image",
    ),
    pytest.param(
        _edit(["spec", "replicas"], -1),
        "should be greater than or equal to 0",
        id="negative-replicas",
    ),
    pytest.param(
        _edit(["spec", "drain", "supportedVersions"], {"min": "2.0.0", "max": "1.0.0"}),
        "drain range min must not be above max",
        id="drain-min-above-max",
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_invalid_registry_is_rejected(
    control_plane: ControlPlane,
    registry_crd: str,
    namespace: str,
    body: dict[str, Any],
    message: str,
) -> None:
    proc = control_plane.run(
        "kubectl", "apply", "-n", namespace, "-f", "-", check=False, input=_json(body)
    )
    assert proc.returncode != 0, f"accepted: {body['spec']}"
    assert message in proc.stderr
    assert not control_plane.exists("orchestrationregistry", "bad", "-n", namespace)


def test_long_names_are_rejected(
    control_plane: ControlPlane, registry_crd: str, namespace: str
) -> None:
    body = copy.deepcopy(valid_registry("x" * 53))
    proc = control_plane.run(
        "kubectl", "apply", "-n", namespace, "-f", "-", check=False, input=_json(body)
    )
    assert proc.returncode != 0
    assert "name must be at most 52 characters" in proc.stderr


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body)


def test_safe_rollout_fields_are_accepted_with_defaults_and_their_status_kept(
    control_plane: ControlPlane, registry_crd: str, namespace: str
) -> None:
    """spec.rollout's gate, ramp, analysis and rollback through the real apiserver: defaults
    filled in, any JSON as the gate's input, and status.rollout as the operator writes it
    survives the schema's pruning (a field the schema lacked would vanish silently)."""
    body = valid_registry("safe")
    body["spec"]["rollout"] = {
        "gate": {
            "orchestration": "checkout",
            "input": {"order": [1, "two", None]},
            "everyStep": True,
        },
        "steps": [{"percent": 10, "pauseSeconds": 300}, {"percent": 50.5}],
        "analysis": {"minSamples": 50},
    }
    control_plane.apply(body, "-n", namespace)
    stored = control_plane.get_json("orchestrationregistry", "safe", "-n", namespace)
    rollout = stored["spec"]["rollout"]
    assert rollout["gate"] == {
        "orchestration": "checkout",
        "input": {"order": [1, "two", None]},
        "everyStep": True,
        "timeoutSeconds": 300,
    }
    assert rollout["steps"] == [
        {"percent": 10, "pauseSeconds": 300},
        {"percent": 50.5, "pauseSeconds": 0},
    ]
    assert rollout["analysis"] == {"minSamples": 50, "thresholdPercent": 5}
    assert rollout["rollback"] is False and rollout["allowVersionRemoval"] is False

    status = {
        "rollout": {
            "previous": {"checkout": "1.0.0"},
            "gate": {
                "orchestration": "checkout",
                "version": "1.1.0",
                "instance": "durox-gate-safe-0123456789",
                "phase": "Passed",
                "startedAt": "2026-01-02T03:00:00Z",
                "finishedAt": "2026-01-02T03:00:02Z",
            },
            "ramps": [
                {
                    "name": "checkout",
                    "from": "1.0.0",
                    "to": "1.1.0",
                    "step": 1,
                    "steps": 2,
                    "percent": 10.0,
                    "phase": "RolledBack",
                    "stepStartedAt": "2026-01-02T03:00:03Z",
                    "finishedAt": "2026-01-02T03:01:00Z",
                    "template": "0123456789abcdef",
                    "message": "checkout@1.1.0 failed 9 of 20 ended instances",
                    "analysis": {"newEnded": 20, "newFailed": 9, "newPoisoned": 1},
                    "gate": {
                        "orchestration": "checkout",
                        "version": "1.1.0",
                        "instance": "durox-gate-safe-0123456789-checkout-2",
                        "phase": "Failed",
                        "startedAt": "2026-01-02T03:00:50Z",
                        "message": "it ended Failed: ValueError: no price",
                    },
                }
            ],
        }
    }
    control_plane.kubectl(
        "patch", "orchestrationregistry", "safe", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", _json({"status": status}),
    )  # fmt: skip
    kept = control_plane.get_json("orchestrationregistry", "safe", "-n", namespace)
    assert kept["status"]["rollout"] == status["rollout"]


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"steps": [{"percent": 150}]}, "should be less than or equal to 100"),
        ({"steps": [{"pauseSeconds": 10}]}, "percent: Required value"),
        ({"gate": {"input": 1}}, "orchestration: Required value"),
        ({"gate": {"orchestration": "c", "timeoutSeconds": 0}}, "greater than or equal to 1"),
    ],
    ids=["percent-above-100", "step-without-percent", "gate-without-name", "zero-timeout"],
)
def test_bad_safe_rollout_fields_are_rejected(
    control_plane: ControlPlane,
    registry_crd: str,
    namespace: str,
    rollout: dict[str, Any],
    message: str,
) -> None:
    body = valid_registry("bad")
    body["spec"]["rollout"] = rollout
    proc = control_plane.run(
        "kubectl", "apply", "-n", namespace, "-f", "-", check=False, input=_json(body)
    )
    assert proc.returncode != 0, f"accepted: {rollout}"
    assert message in proc.stderr
