"""One real node for the k8s tier: containerd, runc, a CNI bridge and a kubelet on this host.

kwok's nodes turn pods Ready without running anything; this node runs them. The kubelet is
built by the toolchain script from the same Kubernetes module as the control plane, containerd
and runc are Debian's, and images come from tarballs (`node/images.sh`), never from a
registry, so pods use `imagePullPolicy: Never`.

Everything of the node lives under one folder of this machine (`NODE_ROOT`): containerd's
root, state and socket (its own, so a system containerd is never touched), the kubelet's root
and the CNI files. A machine runs at most one such node (the kubelet's device-plugin socket and
the `cni0` bridge are fixed), so a lock guards the folder, and a start first clears what a
killed earlier run left behind (mounts, shims, IPAM reservations). The node is tainted and
labelled, so only pods that ask for it land on it; kwok manages only its own fake nodes.

Facts behind the settings are in the module's notes (`restrict_oom_score_adj`: root here lacks
CAP_SYS_RESOURCE, and runc fails with "can't get final child's PID from pipe" without it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.k8s.k8s_control_plane import ControlPlane, _die_with_parent, free_port, tail, wait_for

NODE_ROOT = Path(os.environ.get("DUROX_K8S_NODE_ROOT", "/var/lib/durox-k8s-node"))
NODE_NAME = "real-node"
NODE_LABEL = "durox.dev/real-node"
BRIDGE = "cni0"
NETWORK = "durox-pods"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
PAUSE_IMAGE = "registry.k8s.io/pause:durox"
IMAGES_SCRIPT = Path(__file__).resolve().parent / "node" / "images.sh"

# What a pod spec needs to land on the real node (and only there).
PLACEMENT: dict[str, Any] = {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


class NodeError(RuntimeError):
    """The node did not come up; the message names the log to read."""


def sh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def pause_image_tar(pause_binary: Path, out: Path) -> Path:
    """A one-file image (docker-archive layout) holding the static pause binary."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("pause")
        data = pause_binary.read_bytes()
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer/layer.tar"]}]
    ).encode()
    with tarfile.open(out, mode="w") as tar:
        for name, blob in (
            (config_name, config),
            ("layer/layer.tar", layer_bytes),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out


def build_images() -> dict[str, Path]:
    """Run node/images.sh (cached: seconds when nothing changed); NAME -> image tarball."""
    proc = subprocess.run(
        ["bash", str(IMAGES_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if proc.returncode != 0:
        raise NodeError(f"{IMAGES_SCRIPT} failed:\n{proc.stderr[-4000:]}")
    return {k: Path(v) for k, _, v in (line.partition("=") for line in proc.stdout.split()) if v}


@dataclass
class RealNode:
    """A running node; `ip` is its InternalIP, `gateway` the pod bridge's address on the host."""

    plane: ControlPlane
    bin_dir: Path
    ip: str = ""
    gateway: str = GATEWAY
    run_dir: Path = field(init=False)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: IO[str] | None = None

    @property
    def socket(self) -> Path:
        return NODE_ROOT / "containerd" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ctr", "--address", str(self.socket), "-n", "k8s.io", *args, check=check)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        NODE_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock = (NODE_ROOT / ".lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError(
                f"another test run owns the real node ({NODE_ROOT}); one per machine"
            ) from None
        self.clear_leftovers()
        self.run_dir = NODE_ROOT / f"run-{os.getpid()}"
        self.run_dir.mkdir(parents=True)
        NODE_ROOT.chmod(0o755)
        self.run_dir.chmod(0o755)  # the pods' store runs as user postgres in here
        (self.run_dir / "logs").mkdir()
        self.ip = sh("ip", "-4", "route", "get", "1.1.1.1").stdout.split(" src ")[1].split()[0]
        self._bridge()
        self._containerd()
        self.ctr("images", "import", str(pause_image_tar(self.bin_dir / "pause",
                                                         self.run_dir / "pause.tar")))  # fmt: skip
        self._kubelet()

    def import_image(self, tarball: Path) -> None:
        self.ctr("images", "import", str(tarball))

    def _bridge(self) -> None:
        """The pod bridge, made before the first pod so the host (and a store listening on the
        gateway address) is reachable at once; the CNI bridge plugin adopts it."""
        if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            sh("ip", "link", "add", BRIDGE, "type", "bridge")
        addrs = sh("ip", "-4", "addr", "show", "dev", BRIDGE).stdout
        if f"{GATEWAY}/24" not in addrs:
            sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        conf = self.run_dir / "cni"
        conf.mkdir()
        (conf / "10-durox.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": NETWORK,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "hairpinMode": True,
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        }
                    ],
                },
                indent=2,
            )
        )

    def _containerd(self) -> None:
        base = NODE_ROOT / "containerd"
        config = self.run_dir / "containerd.toml"
        config.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.run_dir / "cni"}"
"""
        )
        self._spawn("containerd", "containerd", "--config", str(config))
        wait_for(
            "containerd to answer",
            lambda: self._alive() and self.ctr("version", check=False).returncode == 0,
            30,
        )

    def _kubelet(self) -> None:
        root = self.run_dir / "kubelet"
        root.mkdir()
        config = self.run_dir / "kubelet.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    # bounds how late a ConfigMap edit reaches the pods' volumes
                    "syncFrequency": "10s",
                    # imported images cannot be pulled again: never collect them
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%"},
                    "podLogsDir": str(self.run_dir / "pod-logs"),
                    "address": self.ip,
                    "port": free_port(),
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": free_port(),
                    # a test node: the apiserver (and only it, on this host) reads logs and execs
                    "authentication": {
                        "anonymous": {"enabled": True},
                        "webhook": {"enabled": False},
                    },
                    "authorization": {"mode": "AlwaysAllow"},
                    "serializeImagePulls": False,
                    "registerWithTaints": [
                        {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}
                    ],
                    "nodeStatusUpdateFrequency": "5s",
                    # answered only while a test runs k8s_services.ServiceDNS (the quickstart)
                    "clusterDNS": [GATEWAY],
                    "clusterDomain": "cluster.local",
                    "shutdownGracePeriod": "0s",
                }
            )
        )
        kubeconfig = self.plane.write_kubeconfig("kubelet", self.plane.kubelet_token)
        self._spawn(
            "kubelet",
            str(self.bin_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.ip}",
            f"--node-labels={NODE_LABEL}=true",
            "--v=1",
        )

        def ready() -> bool:
            self._alive()
            node = self.plane.get_json("node", NODE_NAME)
            return any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )

        try:
            wait_for("the real node to become Ready", ready, 90)
        except TimeoutError as exc:
            raise NodeError(f"{exc}\nkubelet log:\n{tail(self._log('kubelet'))}") from None

    def stop(self) -> None:
        """Workloads first (so their SIGTERM paths run), then the kubelet, the sandboxes left,
        the kubelet's self-bind-mounts, containerd last. The control plane stops after."""
        with contextlib.suppress(Exception):
            pods = self.plane.get_json(
                "pods", "-A", "--field-selector", f"spec.nodeName={NODE_NAME}"
            )["items"]
            for ns in {p["metadata"]["namespace"] for p in pods}:
                self.plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
            wait_for(
                "the real node's pods to go",
                lambda: (
                    not self.plane.get_json(
                        "pods", "-A", "--field-selector", f"spec.nodeName={NODE_NAME}"
                    )["items"]
                ),
                90,
            )
        self._terminate("kubelet")
        with contextlib.suppress(Exception):
            self._remove_containers()
        self._terminate("containerd")
        self.clear_leftovers(keep=self.run_dir)  # its logs stay until the next run
        if self._lock is not None:
            self._lock.close()

    def _remove_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        time.sleep(0.5)
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "rm", "-f", task, check=False)
        for c in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "rm", c, check=False)

    def clear_leftovers(self, keep: Path | None = None) -> None:
        """What a run (this one, or one killed before its teardown) leaves on the host: shims of
        our containerd, its and the kubelet's mounts, the IPAM reservations, the run folders.
        Only processes started against our socket path are killed, by pid."""
        ours = str(self.socket)
        for pid in _pids_with_arg(ours) + _pids_with_arg(str(NODE_ROOT)):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for mount in sorted(_mounts_under(NODE_ROOT), key=len, reverse=True):
            sh("umount", "-l", mount, check=False)
        for netns in _netns_of_ours():
            sh("ip", "netns", "delete", netns, check=False)
        shutil.rmtree(Path("/var/lib/cni/networks") / NETWORK, ignore_errors=True)
        for old in NODE_ROOT.glob("run-*"):
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(NODE_ROOT / "containerd", ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def _spawn(self, name: str, *argv: str) -> None:
        with self._log(name).open("wb") as out:
            self._procs[name] = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _alive(self) -> bool:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise NodeError(
                    f"{name} exited with {proc.returncode}; log {self._log(name)}:\n"
                    f"{tail(self._log(name))}"
                )
        return True

    def check_alive(self) -> None:
        self._alive()

    def _terminate(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _pids_with_arg(arg: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    return [p for p in points if p.startswith(prefix)]


def _netns_of_ours() -> list[str]:
    """containerd's CRI names pod network namespaces cni-<uuid> under /var/run/netns; only
    ours exist on a machine whose one real node is ours."""
    netns = Path("/var/run/netns")
    return [p.name for p in netns.glob("cni-*")] if netns.is_dir() else []


@contextlib.contextmanager
def running_node(plane: ControlPlane, bin_dir: Path) -> Iterator[RealNode]:
    node = RealNode(plane=plane, bin_dir=bin_dir)
    try:
        node.start()
        yield node
    finally:
        node.stop()


@dataclass(frozen=True)
class PodStore:
    """A PostgreSQL database that both the host (`host_dsn`) and pods (`pod_dsn`) reach."""

    host_dsn: str
    pod_dsn: str


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise NodeError("no PostgreSQL server binaries (scripts/pg.sh installs Debian's)")
    return found[-1].parent


@contextlib.contextmanager
def running_pod_store(workdir: Path, listen: str) -> Iterator[PodStore]:
    """A throw-away PostgreSQL cluster on loopback and on `listen` (the pod bridge's gateway),
    password-authenticated; pods of the bridge's subnet may connect, nobody else."""
    pg = _pg_bin()
    data = workdir / "data"
    workdir.mkdir(parents=True, exist_ok=True)
    password = os.urandom(12).hex()
    (workdir / "pw").write_text(password)
    sh("useradd", "-r", "-M", "postgres", check=False)
    shutil.chown(workdir, "postgres")
    shutil.chown(workdir / "pw", "postgres")
    runas = ["runuser", "-u", "postgres", "--"]
    sh(*runas, str(pg / "initdb"), "-D", str(data), "-U", "durox", "--auth=scram-sha-256",
       f"--pwfile={workdir / 'pw'}", "-E", "UTF8")  # fmt: skip
    (data / "pg_hba.conf").write_text(
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        f"host all all {POD_SUBNET} scram-sha-256\n"
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1,{listen} -p {port} -k {workdir} "
        "-c max_connections=300 -c fsync=off -c synchronous_commit=off"
    )
    sh(*runas, str(pg / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-w",
       "-o", options, "start")  # fmt: skip
    try:
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "durox", "durox"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        yield PodStore(
            host_dsn=f"postgresql://durox:{password}@127.0.0.1:{port}/durox",
            pod_dsn=f"postgresql://durox:{password}@{listen}:{port}/durox",
        )
    finally:
        sh(*runas, str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "stop", check=False)
