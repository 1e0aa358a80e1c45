"""The CRD file keeps its promises: documented fields, and defaults the worker model shares.

The apiserver proves the CEL rules (tests/k8s); these checks need only the file, so a field
added without a description, or a default that drifts from the worker's own, fails in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from durox.worker_config import WorkerConfig
from durox_operator import planner
from tests.unit.operator.support import deployment, registry

CRD = Path(__file__).resolve().parents[3] / "crds" / "durox.dev_orchestrationregistries.yaml"


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")
    if "items" in node:
        yield from _fields(node["items"], f"{path}[]")


def test_every_field_has_a_description() -> None:
    undocumented = [
        path for path, field in _fields(_schema(), "") if path != ".metadata" and not
        field.get("description")
    ]  # fmt: skip
    assert undocumented == []


def test_defaults_agree_with_the_worker_model() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["worker"]["properties"]["httpPort"]["default"] == WorkerConfig().http_port
    policy = spec["orchestrations"]["items"]["properties"]["policy"]
    assert policy["default"] == "latest"
    assert set(policy["enum"]) == {"latest", "exact"}


def test_every_status_key_the_planner_writes_is_in_the_schema() -> None:
    # The apiserver silently prunes unknown status fields, so a key missing here would vanish.
    body = registry()
    status = planner.plan_status(
        body, deployment(), "2026-01-01T00:00:00Z", config=planner.worker_config(body)
    )
    schema = _schema()["properties"]["status"]
    assert set(status) <= set(schema["properties"])
    condition_schema = schema["properties"]["conditions"]["items"]["properties"]
    for condition in status["conditions"]:
        assert set(condition) <= set(condition_schema)
    assert schema["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_every_spec_key_the_planner_reads_is_in_the_schema() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert set(registry(pod={}, imagePullPolicy="Always", pool="p")["spec"]) <= set(spec)


def test_printer_columns_answer_health_versions_and_workers() -> None:
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    paths = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert paths["Available"] == '.status.conditions[?(@.type=="Available")].status'
    assert paths["Versions"] == ".status.activeVersions"
    assert paths["Workers"] == ".status.workers"
    assert paths["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert version["subresources"]["status"] == {}


def test_the_scale_subresource_points_at_fields_the_planner_writes() -> None:
    # an HPA or KEDA scales through /scale: spec.replicas in, status.replicas and the pods'
    # selector out; a path to a field nobody writes would leave the autoscaler blind
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    body = registry()
    status = planner.plan_status(body, deployment(), "2026-01-01T00:00:00Z")
    assert status["replicas"] == body["spec"]["replicas"]
    assert status["selector"] == (
        "app.kubernetes.io/instance=orders,app.kubernetes.io/name=durox-worker"
    )
    assert {"replicas", "selector"} <= set(_schema()["properties"]["status"]["properties"])


def test_images_need_a_tag_or_a_digest() -> None:
    # The apiserver runs these rules (tests/k8s); here, that they say what they mean.
    import re

    rules = _schema()["properties"]["spec"]["properties"]["image"]["x-kubernetes-validations"]
    reference = re.fullmatch(r'self\.matches\(r"(.*)"\)', rules[0]["rule"])
    assert reference is not None
    valid = re.compile(reference.group(1))
    tagged = re.compile(r":[^/]+$")
    for image in ("example.invalid/orders:1.0.0", "localhost:5000/a/b:1", "o@sha256:" + "a" * 64):
        assert valid.match(image) and ("@" in image or tagged.search(image)), image
    assert valid.match("registry.example.com/orders") and not tagged.search(
        "registry.example.com/orders"
    )
    for image in ("not an image", "Orders:1", "a:b:c", "orders:"):
        assert not valid.match(image), image


def _view_matches(view: Any, node: dict[str, Any], path: str) -> list[str]:
    """Where a TypedDict view and a schema node disagree on keys or on which are required."""
    problems = []
    keys, required = set(view.__annotations__), set(view.__required_keys__)
    if keys != set(node.get("properties", {})):
        problems.append(f"{path}: keys {sorted(keys)} vs {sorted(node.get('properties', {}))}")
    if required != set(node.get("required", [])):
        problems.append(f"{path}: required {sorted(required)} vs {node.get('required', [])}")
    return problems


def test_the_planners_typed_views_match_the_crd_schema() -> None:
    """The planner reads the spec through TypedDict views; a field added to the CRD (or a
    view) without the other fails here, not in a cluster."""
    from durox_operator.planner import _spec

    spec = _schema()["properties"]["spec"]
    props = spec["properties"]
    pairs = [
        (_spec.RegistrySpec, spec, "spec"),
        (_spec.StoreSpec, props["store"], "spec.store"),
        (_spec.SecretRef, props["store"]["properties"]["secretRef"], "spec.store.secretRef"),
        (_spec.OrchestrationSpec, props["orchestrations"]["items"], "spec.orchestrations[]"),
        (_spec.ReplaySpec, props["replay"], "spec.replay"),
        (_spec.VersionRange, props["replay"]["properties"]["supportedVersions"], "replay range"),
        (_spec.DrainSpec, props["drain"], "spec.drain"),
        (_spec.VersionRange, props["drain"]["properties"]["supportedVersions"], "drain range"),
        (_spec.WorkerSpec, props["worker"], "spec.worker"),
        (_spec.PodSpec, props["pod"], "spec.pod"),
        (_spec.RolloutSpec, props["rollout"], "spec.rollout"),
        (
            _spec.ReplayCheckSpec,
            props["rollout"]["properties"]["replayCheck"],
            "spec.rollout.replayCheck",
        ),
        (_spec.GateSpec, props["rollout"]["properties"]["gate"], "spec.rollout.gate"),
        (_spec.RampStepSpec, props["rollout"]["properties"]["steps"]["items"], "steps[]"),
        (_spec.AnalysisSpec, props["rollout"]["properties"]["analysis"], "spec.rollout.analysis"),
    ]
    assert [p for view, node, path in pairs for p in _view_matches(view, node, path)] == []


def test_the_chart_carries_exactly_the_crds_in_crds() -> None:
    """`kubectl apply -f crds/` and `helm install` must install the same CRD. The chart holds
    regular copies, not symlinks: Helm warns about a symlink on every command."""
    chart = CRD.parents[1] / "helm" / "durox" / "crds"
    names = sorted(p.name for p in CRD.parent.iterdir())
    assert sorted(p.name for p in chart.iterdir()) == names
    for name in names:
        assert not (chart / name).is_symlink(), f"helm/durox/crds/{name}: copy it, do not link"
        assert (chart / name).read_bytes() == (CRD.parent / name).read_bytes(), (
            f"helm/durox/crds/{name} differs from crds/{name}: cp crds/{name} helm/durox/crds/"
        )
