"""The quickstart as a user runs it: the chart's operator as a real pod, then `examples/`.

Every command the README's and docs/operator.md's quickstart shows after the image builds is
run here verbatim, from the repository's root, on the real node: `helm install` of the chart
with its default values (so the operator pods run the image the repository builds, found in
the node's containerd, IfNotPresent), `kubectl apply -f examples/` (the files as they are), a
wait for the registry's Ready condition, and a greeting started in a worker pod. Nothing the
operator or the workers do is simulated: they run in real pods, the operator reaches the
apiserver through the `kubernetes` Service IP with its ServiceAccount, and the workers reach
the example's PostgreSQL pod by its Service name.

Three things differ from a kind cluster, each outside the files the user applies:

- Images. No registry can be reached here, so `docker build` + `kind load` become
  `node/images.sh` (the same Dockerfile targets, built offline by buildah) and an import into
  the node's containerd. The example's `postgres:15` cannot be pulled either: the tier builds a
  stand-in under that very name from Debian's postgresql-15 (the official 15 image is Debian
  based too), whose entry point honours the official image's environment contract
  (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA). So the manifest runs unchanged; we
  chose that over swapping the image name in the test because a swap would leave the example's
  own line untested. What is not checked is the official image itself.
- kube-proxy and cluster DNS: `k8s_services` stands in for the two things the example uses.
- Scheduling: the session's kwok nodes are cordoned and the real node's taint lifted for the
  test, so the chart's and the example's pods (which carry no placement of ours) land where a
  one-node kind cluster would put them. Both are restored afterwards.

The transcript (commands and output) is printed, and written to $DUROX_QUICKSTART_TRANSCRIPT
when set.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.k8s_control_plane import ControlPlane, tail, wait_for
from tests.k8s.k8s_node import IMAGES_SCRIPT, NODE_LABEL, NODE_NAME, NodeError, RealNode
from tests.k8s.k8s_services import ServiceDNS, cluster_services

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

STORE_RETRY = 30.0
"""StoreObserver's retry_after: a failed store is dialled again after this many seconds."""

QUICKSTART = [
    "helm install durox helm/durox --namespace durox-system --create-namespace",
    "kubectl -n durox-system rollout status deployment/durox --timeout=300s",
    "kubectl apply -f examples/",
    "kubectl -n durox-quickstart wait --for=condition=Ready orchestrationregistry/hello"
    " --timeout=300s",
    "kubectl -n durox-quickstart get orchestrationregistries",
    "kubectl -n durox-quickstart get pods -o wide",
    "kubectl -n durox-quickstart exec deploy/hello -- python -m hello.start world",
]
"""The quickstart's commands after the images are built and loaded, as the docs print them."""


def _image(node: RealNode, *args: str) -> None:
    """Build (or find cached) one image with node/images.sh and import it into the node."""
    proc = subprocess.run(
        ["bash", str(IMAGES_SCRIPT), *args],
        capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    if proc.returncode != 0:
        raise NodeError(f"images.sh {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.split() if x.startswith(f"{args[0]}="))
    node.import_image(Path(line.partition("=")[2]))


@pytest.fixture(scope="module")
def images(real_node: RealNode, node_images: dict[str, Path]) -> None:
    """What `docker build` and `kind load docker-image` give a kind cluster's node."""
    real_node.import_image(node_images["operator"])  # durox-operator:<appVersion>
    _image(real_node, "recipe", "docker.io/library/durox-hello:1.0.0", str(EXAMPLES / "worker"))
    _image(real_node, "postgres")  # docker.io/library/postgres:15, the stand-in


@contextlib.contextmanager
def _one_schedulable_node(plane: ControlPlane) -> Iterator[None]:
    fake = [n["metadata"]["name"] for n in plane.get_json("nodes", "-l", "type=kwok")["items"]]
    for name in fake:
        plane.kubectl("cordon", name)
    plane.kubectl("taint", "node", NODE_NAME, f"{NODE_LABEL}-")
    try:
        yield
    finally:
        plane.kubectl(
            "taint", "node", NODE_NAME, f"{NODE_LABEL}=true:NoSchedule", "--overwrite",
            check=False,
        )  # fmt: skip
        for name in fake:
            plane.kubectl("uncordon", name, check=False)


class Transcript:
    """Runs the quickstart's commands as a shell would, from the repository's root, and keeps
    each with its output (stdout and stderr, as a terminal shows them)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.lines: list[str] = []

    def run(self, command: str, timeout: float = 360) -> str:
        tool, *args = shlex.split(command)
        started = time.monotonic()
        proc = subprocess.run(
            [str(self.plane.bin_dir / tool), *args],
            cwd=REPO, env=self.plane.env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        took = time.monotonic() - started
        out = proc.stdout + proc.stderr
        self.lines += [f"$ {command}", *out.rstrip("\n").splitlines(), f"# {took:.1f}s"]
        assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{out}"
        return proc.stdout


@pytest.fixture
def transcript(
    control_plane: ControlPlane, real_node: RealNode, images: None, registry_crd: str
) -> Iterator[Transcript]:
    plane = control_plane
    record = Transcript(plane)
    with cluster_services(plane) as dns, _one_schedulable_node(plane):
        try:
            yield record
        finally:
            _report(plane, record, dns, real_node)
            plane.kubectl("delete", "-f", str(EXAMPLES), "--wait=false", check=False)
            plane.run("helm", "uninstall", "durox", "-n", "durox-system", "--wait", check=False)
            plane.kubectl("delete", "namespace", "durox-system", "--wait=false", check=False)
            for ns in ("durox-quickstart", "durox-system"):
                plane.kubectl("wait", "--for=delete", f"namespace/{ns}", "--timeout=120s",
                              check=False)  # fmt: skip


def _report(plane: ControlPlane, record: Transcript, dns: ServiceDNS, node: RealNode) -> None:
    """The transcript; then what a failure needs (pytest shows it only for a failed test)."""
    text = "\n".join(record.lines) + "\n"
    print("\n" + text)
    out = os.environ.get("DUROX_QUICKSTART_TRANSCRIPT")
    if out:
        Path(out).write_text(text)
    for ns in ("durox-system", "durox-quickstart"):
        print(plane.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False))
        print(plane.kubectl("get", "events", "-n", ns, check=False)[-3000:])
    logs = plane.kubectl("logs", "-n", "durox-system", "deploy/durox", "--tail=40", check=False)
    print("operator log:\n" + logs)
    print("DNS names asked:", sorted(set(dns.asked))[:40])
    print("kubelet log:\n" + tail(node.run_dir / "logs" / "kubelet.log", 20))


def _condition(plane: ControlPlane, kind: str) -> dict[str, Any]:
    registry = plane.get_json("orchestrationregistry", "hello", "-n", "durox-quickstart")
    return next(c for c in registry["status"]["conditions"] if c["type"] == kind)


def test_the_quickstart_runs_as_written(
    transcript: Transcript, control_plane: ControlPlane
) -> None:
    plane = control_plane
    # the registry applied is the file's, untouched
    assert (EXAMPLES / "30-registry.yaml").is_file()
    for command in QUICKSTART[:3]:
        transcript.run(command)

    # the operator runs as real pods of the chart, with the image the repository builds
    pods = plane.get_json(
        "pods", "-n", "durox-system", "-l", "app.kubernetes.io/name=durox-operator"
    )["items"]
    assert len(pods) == 2  # the chart's default: a leader and a standby
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        [container] = pod["spec"]["containers"]
        assert container["image"] == "durox-operator:0.1.0"
        assert container["imagePullPolicy"] == "IfNotPresent"
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0
        assert status["image"] == "docker.io/library/durox-operator:0.1.0"

    transcript.run(QUICKSTART[3])
    table = transcript.run(QUICKSTART[4])
    assert table.split("\n")[1].split()[:5] == ["hello", "True", "True", "False", "2/2"]
    transcript.run(QUICKSTART[5])
    workers = plane.get_json(
        "pods", "-n", "durox-quickstart", "-l", "app.kubernetes.io/instance=hello"
    )["items"]
    assert len(workers) == 2
    assert {p["spec"]["nodeName"] for p in workers} == {NODE_NAME}
    assert all(p["status"]["containerStatuses"][0]["ready"] for p in workers)
    registry = plane.get_json("orchestrationregistry", "hello", "-n", "durox-quickstart")
    conditions = {c["type"]: c for c in registry["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == registry["metadata"]["generation"]
    # The operator pod reads the example's store too (by the Service name, from a pod). Its
    # first look may come before PostgreSQL is up; it looks again by itself (no event would
    # tell it the store is up), within the store's retry time, not at the next resync.
    wait_for(
        "StoreObserved=True",
        lambda: _condition(plane, "StoreObserved")["status"] == "True",
        STORE_RETRY + 15,
    )

    greeting = transcript.run(QUICKSTART[6])
    assert "Completed on hello::greet@1.0.0: hello, world" in greeting


# -- the docs print what the test runs (no cluster needed) -----------------------------------

DOCS = (REPO / "README.md", REPO / "docs" / "operator.md")


def _shell_lines(path: Path) -> list[str]:
    """The commands of a file's ```bash blocks, comments and padding dropped."""
    lines, inside = [], False
    for raw in path.read_text().splitlines():
        if raw.startswith("```"):
            inside = raw.strip() == "```bash"
            continue
        if inside:
            command = raw.split("  #")[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_docs_print_the_commands_this_test_runs(doc: Path) -> None:
    lines = _shell_lines(doc)
    start = lines.index("kind create cluster --config kind-config.yaml")
    quickstart = lines[start:]
    for command in QUICKSTART:
        assert command in quickstart, f"{doc.name} lacks: {command}"
    # and, before them, the images the test builds: the chart's default, the registry's
    chart = yaml.safe_load((REPO / "helm" / "durox" / "Chart.yaml").read_text())
    operator = f"durox-operator:{chart['appVersion']}"
    hello = yaml.safe_load((EXAMPLES / "30-registry.yaml").read_text())["spec"]["image"]
    assert f"docker build --target operator -t {operator} ." in quickstart
    assert f"docker build -t {hello} examples/worker" in quickstart
    load = next(c for c in quickstart if c.startswith("kind load docker-image"))
    assert {operator, hello} <= set(load.split()) and load.endswith("--name durox")
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert kind["name"] == "durox"


def test_one_release_name_everywhere() -> None:
    """`helm install durox` in every file that shows an install; the NOTES name none."""
    files = [*DOCS, REPO / "kind-config.yaml", EXAMPLES / "README.md"]
    installs = [
        (path.name, line.split("helm install", 1)[1].split()[0])
        for path in files
        for line in path.read_text().splitlines()
        if "helm install" in line
    ]
    assert installs and {name for _, name in installs} == {"durox"}, installs
    notes = (REPO / "helm" / "durox" / "templates" / "NOTES.txt").read_text()
    assert "{{ .Release.Name }}" in notes and "helm install" not in notes
