"""Fixtures of the k8s tier: one real control plane per session, one namespace per test.

Starting etcd, the apiserver and controllers takes seconds, so the cluster is shared by the
session and tests isolate themselves by namespace. A missing toolchain is a failure, never a
skip: CI must not pass by testing less, and a developer is told the one command that fixes it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.k8s_control_plane import (
    ControlPlane,
    find_bin_dir,
    running_control_plane,
    wait_for,
)
from tests.k8s.k8s_node import PodStore, RealNode, build_images, running_node, running_pod_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    try:
        return find_bin_dir()
    except FileNotFoundError as exc:
        hint = " (in CI, scripts/test.sh builds it before pytest)" if os.environ.get("CI") else ""
        pytest.fail(f"Kubernetes toolchain missing{hint}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane(
    k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    with running_control_plane(k8s_bin, tmp_path_factory.mktemp("k8s")) as plane:
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
    control_plane.check_alive()


@pytest.fixture(scope="session")
def registry_crd(control_plane: ControlPlane) -> str:
    """The OrchestrationRegistry CRD from crds/, applied with kubectl and Established."""
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    name = "orchestrationregistries.durox.dev"

    # Not `kubectl wait`: it fails at once, rather than waits, while the new CRD has no
    # conditions yet (seen on a loaded machine).
    def established() -> bool:
        crd = control_plane.get_json("crd", name)
        conditions = crd.get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for("the CRD to be Established", established, 60)
    return name


# -- the real node (k8s_node.py): real pods, images without a registry, a store pods reach --


@pytest.fixture(scope="session")
def real_node(control_plane: ControlPlane, k8s_bin: Path) -> Iterator[RealNode]:
    with running_node(control_plane, k8s_bin) as node:
        yield node


@pytest.fixture(scope="session")
def node_images(real_node: RealNode) -> dict[str, Path]:
    """The base and worker images, built (or found cached) and imported into the node."""
    images = build_images()
    real_node.import_image(images["worker"])
    return images


@pytest.fixture(scope="session")
def pod_store(real_node: RealNode) -> Iterator[PodStore]:
    with running_pod_store(real_node.run_dir / "store", real_node.gateway) as store:
        yield store
