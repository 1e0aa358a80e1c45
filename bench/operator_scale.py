"""The operator at scale: N registries on kwok nodes against the k8s tier's real control plane.

    python -m bench.operator_scale --registries 100 [--registries 500] [--operator-src DIR]

For each N it starts a fresh control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok; `tests/k8s/k8s_control_plane.py`), the operator as a host process through
`bench.operator_probe` (which counts the requests the operator sends), and reports:

- time from the first create to every registry Available;
- the operator's requests per registry for creation (until all Available and quiet) and for
  one resync with nothing changing (from just after one resync's LIST of the registries to
  just after the next one's: one whole pass, plus that LIST and at most the next pass's
  first requests within the probe's 0.5 s sampling);
- change-to-ConfigMap latency: a policy change on one registry at a time, from the patch
  request to the watch event of its ConfigMap with the new content (p50, p95);
- the operator's CPU seconds (user + system) and peak RSS, from /proc.

`--operator-src DIR` runs another copy of the operator package (e.g. an older commit
extracted with `git archive`) for a before/after comparison. Results go to
bench/results/operator-scale-<time>.json. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "k8s"))
# The k8s tier's helpers are not a package (and not type-checked): imported by name.
_k8s: Any = importlib.import_module("k8s_control_plane")
ControlPlane, find_bin_dir, wait_for = _k8s.ControlPlane, _k8s.find_bin_dir, _k8s.wait_for

NS = "bench"
PAGE = 4096


def _registry(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": f"r{i:04d}", "namespace": NS},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 1,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "checkout", "versions": ["1.0.0", "1.1.0"]}],
        },
    }


class Proc:
    """CPU and RSS of one process from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                self.peak_rss = max(self.peak_rss, rss)
                return rss
        return 0

    def hwm(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def _counts(path: Path) -> dict[str, int]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _requests(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    keys = set(after) | set(before)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in sorted(diff.items()) if v and not k.startswith("WATCH")}


def _settled_count(api: Any, n: int) -> int:
    items = api.list_namespaced_custom_object(
        "durox.dev", "v1alpha1", NS, "orchestrationregistries"
    )
    done = 0
    for item in items["items"]:
        status = item.get("status", {})
        conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
        gen = item["metadata"].get("generation")
        if status.get("observedGeneration") == gen and conds.get("Available") == "True":
            done += 1
    return done


def _quiet(path: Path, seconds: float, timeout: float) -> None:
    """Wait until the operator sent no request for `seconds` (outside its lease renewals)."""
    deadline = time.monotonic() + timeout
    last, since = _requests(_counts(path), {}), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _requests(_counts(path), {})
        if {k: v for k, v in now.items() if "leases" not in k} != {
            k: v for k, v in last.items() if "leases" not in k
        }:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return


class ConfigMapWatch:
    """Arrival time of each ConfigMap version, from a watch in a thread."""

    def __init__(self, core: Any) -> None:
        import kubernetes

        self.seen: dict[str, list[tuple[float, str]]] = {}
        self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        self._core = core
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stream = self._watch.stream(self._core.list_namespaced_config_map, NS)  # type: ignore[no-untyped-call]
        try:
            for event in stream:
                obj = event["object"]
                text = (obj.data or {}).get("worker.yaml", "")
                self.seen.setdefault(obj.metadata.name, []).append((time.monotonic(), text))
        except Exception:  # the control plane stopping under it ends the watch: that is all
            return

    def first_with(self, name: str, marker: str, after: float) -> float | None:
        for at, text in self.seen.get(name, []):
            if at >= after and marker in text:
                return at
        return None

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]


def run(n: int, bin_dir: Any, args: argparse.Namespace) -> dict[str, Any]:
    import kubernetes

    work = Path(tempfile.mkdtemp(prefix=f"durox-bench-{n}-"))
    plane: Any = ControlPlane(bin_dir=bin_dir, workdir=work)
    nodes = max(3, n // 100 + 2)
    plane.start(nodes=nodes)
    proc: subprocess.Popen[bytes] | None = None
    try:
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.kubectl(
            "wait", "--for=condition=Established",
            "crd/orchestrationregistries.durox.dev", "--timeout=60s",
        )  # fmt: skip
        plane.kubectl("create", "namespace", NS)
        plane.kubectl("create", "secret", "generic", "store", "-n", NS, "--from-literal=url=x")
        kubernetes.config.load_kube_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        custom = kubernetes.client.CustomObjectsApi()
        core = kubernetes.client.CoreV1Api()

        probe = work / "probe.json"
        env = plane.env()
        env["DUROX_PROBE_OUT"] = str(probe)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.operator_src, str(REPO), env.get("PYTHONPATH")) if p
        )
        log = work / "operator.log"
        cmd = [sys.executable, "-m", "bench.operator_probe", "run", "--namespace", NS,
               "--resync-seconds", str(args.resync_seconds)]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        meter = Proc(proc.pid)
        wait_for("the probe to count", lambda: probe.exists(), 60)
        time.sleep(3)  # kopf lists and starts its watches
        cpu0, base = meter.cpu(), _counts(probe)

        # creation
        started = time.monotonic()
        for i in range(n):
            custom.create_namespaced_custom_object(
                "durox.dev", "v1alpha1", NS, "orchestrationregistries", _registry(i)
            )
            meter.rss()
        wait_for(
            f"{n} registries Available",
            lambda: (meter.rss() >= 0) and _settled_count(custom, n) == n,
            args.timeout,
            interval=1.0,
        )
        available_s = time.monotonic() - started
        _quiet(probe, 3.0, 120)
        created = _requests(_counts(probe), base)
        cpu_create = meter.cpu() - cpu0

        # one whole resync with nothing changing: from just after one resync's LIST to just
        # after the next one's (the loop sleeps only once a pass is over, so the first is done)
        def lists() -> int:
            return _counts(probe).get("LIST orchestrationregistries", 0)

        first = lists()
        wait_for("a resync to start", lambda: lists() > first, args.resync_seconds * 3)
        before, cpu1, t1 = _counts(probe), meter.cpu(), time.monotonic()
        wait_for("the next resync", lambda: lists() > first + 1, args.resync_seconds * 4)
        resync = _requests(_counts(probe), before)
        resync_s, cpu_resync = time.monotonic() - t1, meter.cpu() - cpu1
        meter.rss()

        # change to ConfigMap, one registry at a time
        watch = ConfigMapWatch(core)
        time.sleep(2)
        latencies = []
        step = max(1, n // args.changes)
        for i in range(0, n, step)[: args.changes]:
            name = f"r{i:04d}"
            pinned = {"name": "checkout", "versions": ["1.0.0", "1.1.0"],
                      "policy": "exact", "version": "1.0.0"}  # fmt: skip
            t0 = time.monotonic()
            custom.patch_namespaced_custom_object(
                "durox.dev", "v1alpha1", NS, "orchestrationregistries", name,
                {"spec": {"orchestrations": [pinned]}},
            )  # fmt: skip
            deadline = t0 + 30
            while time.monotonic() < deadline:
                at = watch.first_with(name, "version: 1.0.0", t0)
                if at is not None:
                    latencies.append(at - t0)
                    break
                time.sleep(0.01)
            meter.rss()
            time.sleep(args.change_gap)
        watch.stop()
        latencies.sort()

        def pct(p: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

        total_created = sum(created.values())
        total_resync = sum(resync.values())
        return {
            "registries": n,
            "kwok_nodes": nodes,
            "time_to_all_available_s": round(available_s, 2),
            "requests_per_registry_creation": round(total_created / n, 2),
            "requests_per_registry_resync": round(total_resync / n, 2),
            "requests_creation": created,
            "requests_resync_window": resync,
            "resync_period_s": args.resync_seconds,
            "resync_window_s": round(resync_s, 2),
            "change_to_configmap_s": {
                "samples": len(latencies),
                "p50": pct(0.5) if latencies else None,
                "p95": pct(0.95) if latencies else None,
                "max": round(latencies[-1], 3) if latencies else None,
            },
            "operator_cpu_s": {"creation": round(cpu_create, 2), "resync": round(cpu_resync, 2)},
            "operator_rss_mib": {
                "end": round(meter.rss() / 2**20, 1),
                "peak": round(max(meter.peak_rss, meter.hwm()) / 2**20, 1),
            },
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        plane.stop()


def _machine() -> dict[str, Any]:
    cpus = os.cpu_count()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_scale")
    parser.add_argument("--registries", type=int, action="append", default=[])
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.add_argument("--changes", type=int, default=40, help="change-to-ConfigMap samples")
    parser.add_argument("--change-gap", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--operator-src", default=None, help="another operator/ folder to run")
    parser.add_argument("--label", default="current")
    parser.add_argument("--note", default="", help="what else the machine was doing")
    args = parser.parse_args(argv)
    bin_dir = find_bin_dir()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    results = []
    for n in args.registries or [100]:
        result = run(n, bin_dir, args)
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "bench" / "results" / f"operator-scale-{args.label}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "bench.operator_scale",
                "label": args.label,
                "commit": commit,
                "operator_src": args.operator_src or "this tree",
                "machine": {**_machine(), "note": args.note},
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
