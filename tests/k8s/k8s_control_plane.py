"""A real Kubernetes control plane from local binaries, for the k8s test tier.

Mocks of the Kubernetes API agree with whatever the operator believes; the apiserver does not. So
the tier runs the real processes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
plus kwok, whose simulated nodes turn scheduled pods Running and Ready without a container
runtime. Everything binds to loopback on free ports, keeps its state in one temporary folder and
authenticates with static tokens, so several clusters (CI next to a developer's run) never meet.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
TOOLCHAIN_BUILD = "bash tests/k8s/toolchain/build.sh"


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become healthy; the message names its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    """Poll `check` until it is true; `what` is the failure message's subject."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # a probe that raises is a probe that says "not yet"
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """A running cluster: `kubeconfig` is an admin kubeconfig file for kubectl and clients."""

    bin_dir: Path
    workdir: Path
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    admin_token: str = field(init=False)
    kubelet_token: str = field(init=False)
    ca: Path = field(init=False)
    nodes: list[str] = field(default_factory=list)
    _procs: list[_Process] = field(default_factory=list)

    # -- running commands against it ---------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The process environment for a client of this cluster, tools on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["HELM_CACHE_HOME"] = str(self.workdir / "helm" / "cache")
        env["HELM_CONFIG_HOME"] = str(self.workdir / "helm" / "config")
        env["HELM_DATA_HOME"] = str(self.workdir / "helm" / "data")
        return env

    def run(
        self, tool: str, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin_dir / tool), *args],
            env=self.env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        return self.run("kubectl", *args, check=check, input=input).stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def exists(self, *args: str) -> bool:
        out = self.kubectl("get", *args, "--ignore-not-found", "-o", "name")
        return bool(out.strip())

    def apply(self, manifest: dict[str, Any] | str, *args: str) -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.kubectl("apply", "-f", "-", *args, input=text)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, nodes: int = 3) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        sa_key = pki / "sa.key"
        sa_pub = pki / "sa.pub"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
            check=True,
            capture_output=True,
        )

        tokens = {
            "admin": ("admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", ""),
            "scheduler": ("system:kube-scheduler", ""),
            # the real node's kubelet (k8s_node.py); RBAC has no Node authorizer here
            "kubelet": ("system:node:real-node", "system:nodes,system:masters"),
        }
        secrets = {who: os.urandom(16).hex() for who in tokens}
        token_file = pki / "tokens.csv"
        token_file.write_text(
            "".join(
                f'{secrets[who]},{user},{user},"{groups}"\n'
                for who, (user, groups) in tokens.items()
            )
        )
        self.admin_token = secrets["admin"]
        self.kubelet_token = secrets["kubelet"]

        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        )
        self._wait_healthy("etcd", lambda: http_ok(f"{etcd_url}/health"), 30)

        cert_dir = pki / "apiserver"
        self.server = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={cert_dir}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={token_file}",
            "--anonymous-auth=true",
            "--enable-priority-and-fairness=false",
            # logs and exec reach a real node by its IP: there is no DNS for node names
            "--kubelet-preferred-address-types=InternalIP",
            "--v=1",
        )
        ca = cert_dir / "apiserver.crt"
        self._wait_healthy(
            "kube-apiserver",
            lambda: ca.exists() and http_ok(f"{self.server}/readyz", token=self.admin_token, ca=ca),
            90,
        )

        self.ca = ca
        self.kubeconfig = self.write_kubeconfig("admin", secrets["admin"])
        kcm_kubeconfig = self.write_kubeconfig("controller-manager", secrets["controller-manager"])
        sched_kubeconfig = self.write_kubeconfig("scheduler", secrets["scheduler"])
        kwok_kubeconfig = self.write_kubeconfig("kwok", secrets["admin"])

        self._spawn(
            "kube-controller-manager",
            f"--kubeconfig={kcm_kubeconfig}",
            f"--authentication-kubeconfig={kcm_kubeconfig}",
            f"--authorization-kubeconfig={kcm_kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={ca}",
            "--use-service-account-credentials=true",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--node-monitor-grace-period=60s",
            "--v=1",
        )
        self._spawn(
            "kube-scheduler",
            f"--kubeconfig={sched_kubeconfig}",
            f"--authentication-kubeconfig={sched_kubeconfig}",
            f"--authorization-kubeconfig={sched_kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--v=1",
        )
        self._spawn(
            "kwok",
            f"--kubeconfig={kwok_kubeconfig}",
            f"--config={self.bin_dir / 'kwok-stages.yaml'}",
            # only the fake nodes: a real kubelet's node is its own
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{free_port()}",
        )

        for i in range(nodes):
            self._create_node(f"kwok-node-{i}")
        wait_for("kwok nodes to become Ready", self._nodes_ready, 60)
        wait_for(
            "the default ServiceAccount in namespace default",
            lambda: self.exists("serviceaccount", "default", "-n", "default"),
            60,
        )

    def stop(self) -> None:
        # Clients first, etcd last: an apiserver whose etcd is gone waits out its timeouts.
        clients = [p for p in self._procs if p.name not in ("kube-apiserver", "etcd")]
        servers = [p for p in reversed(self._procs) if p not in clients]
        for group in (clients, *([p] for p in servers)):
            for proc in group:
                if proc.popen.poll() is None:
                    proc.popen.terminate()
            for proc in group:
                try:
                    proc.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait(timeout=15)
        self._procs.clear()

    def check_alive(self) -> None:
        """Fail with the component's log tail when one of the processes has died."""
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {code}; log {proc.log}:\n{tail(proc.log)}"
                )

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(_Process(name, popen, log))

    def _wait_healthy(self, name: str, check: Callable[[], bool], timeout: float) -> None:
        def alive_and(check: Callable[[], bool]) -> bool:
            self.check_alive()
            return check()

        try:
            wait_for(f"{name} to become healthy", lambda: alive_and(check), timeout)
        except TimeoutError as exc:
            log = self.workdir / "logs" / f"{name}.log"
            raise ControlPlaneError(f"{exc}; log {log}:\n{tail(log)}") from None

    def write_kubeconfig(self, who: str, token: str) -> Path:
        """A kubeconfig file for this cluster that authenticates with a bearer token."""
        ca = self.ca
        path = self.workdir / f"{who}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "durox-test",
                    "cluster": {"server": self.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": who, "user": {"token": token}}],
            "contexts": [{"name": "durox-test", "context": {"cluster": "durox-test", "user": who}}],
            "current-context": "durox-test",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _create_node(self, name: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {"providerID": f"kwok://{name}"},
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        self.apply(node)
        self.nodes.append(name)

    def _nodes_ready(self) -> bool:
        self.check_alive()
        items = self.get_json("nodes")["items"]
        ready = [
            n
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == len(self.nodes)


@contextlib.contextmanager
def operator_process(
    plane: ControlPlane, log: Path, *args: str, kubeconfig: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`durox-operator run ARGS` as a host process against the cluster, stopped afterwards."""
    exe = Path(sys.executable).with_name("durox-operator")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "durox_operator.cli"]
    env = plane.env()
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "run", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:
    """Linux: kill the component if pytest dies without running its finalizers (a CI
    timeout's SIGKILL), so no orphaned apiserver keeps a core busy."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def http_ok(url: str, token: str | None = None, ca: Path | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def find_bin_dir() -> Path:
    """The toolchain's bin folder: DUROX_K8S_BIN, or an existing build found by build.sh."""
    configured = os.environ.get("DUROX_K8S_BIN")
    if configured:
        path = Path(configured)
    else:
        repo = Path(__file__).resolve().parents[2]
        proc = subprocess.run(
            ["bash", str(repo / "tests/k8s/toolchain/build.sh"), "--check"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FileNotFoundError(
                "the Kubernetes test binaries are not built. Build them once (about 7 minutes "
                f"cold, cached outside the clone afterwards) with:\n    {TOOLCHAIN_BUILD}\n"
                "or run everything with: bash scripts/test.sh"
            )
        path = Path(proc.stdout.strip())
    missing = [b for b in BINARIES if not (path / b).is_file()]
    if missing:
        raise FileNotFoundError(
            f"DUROX_K8S_BIN={path} lacks {', '.join(missing)}; rebuild with: {TOOLCHAIN_BUILD}"
        )
    return path


@contextlib.contextmanager
def running_control_plane(bin_dir: Path, workdir: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(bin_dir=bin_dir, workdir=workdir)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        if os.environ.get("DUROX_K8S_KEEP") != "1":
            shutil.rmtree(workdir / "etcd", ignore_errors=True)
