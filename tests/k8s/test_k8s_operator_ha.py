"""Two operator processes, one Lease: only the leader writes, and a SIGKILLed leader is
replaced within the lease time. A control without the Lease shows what the election prevents.

Writes are counted three ways: Events per reason about the registry, the ConfigMap's versions
as a `kubectl get --watch` sees them, and what each process's log says it applied.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane, operator_process, tail, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(300)]

LEASE_SECONDS = 6.0  # a short lease keeps the test short; the chart's default is 15


def _registry(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "durox.dev/v1alpha1",
        "kind": "OrchestrationRegistry",
        "metadata": {"name": name},
        "spec": {
            "image": "example.invalid/orders:1.0.0",
            "replicas": 1,
            "app": "orders.app:app",
            "store": {"secretRef": {"name": "store"}},
            "orchestrations": [{"name": "checkout", "versions": ["1.0.0", "1.1.0"]}],
        },
    }


class Watch:
    """`kubectl get --watch` of one object in the background: every version it goes through."""

    def __init__(self, plane: ControlPlane, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(plane.bin_dir / "kubectl"), "get", *args, "--watch", "-o", "json"],
                env=plane.env(),
                stdout=out,
                stderr=subprocess.DEVNULL,
            )

    def versions(self) -> list[str]:
        text, decoder, at = self.log.read_text(), json.JSONDecoder(), 0
        seen: list[str] = []
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                return seen
            try:
                obj, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                return seen  # a document still being written
            version = obj["metadata"]["resourceVersion"]
            if version not in seen:
                seen.append(version)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)


def _event_counts(plane: ControlPlane, ns: str, name: str) -> dict[str, int]:
    items = plane.get_json("events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    counts: dict[str, int] = {}
    for event in items["items"]:
        if event["involvedObject"]["kind"] == "OrchestrationRegistry":
            counts[event["reason"]] = counts.get(event["reason"], 0) + event.get("count", 1)
    return counts


def _holder(plane: ControlPlane, ns: str) -> str | None:
    if not plane.exists("lease", "durox", "-n", ns):
        return None
    spec = plane.get_json("lease", "durox", "-n", ns)["spec"]
    holder = spec.get("holderIdentity")
    return holder if isinstance(holder, str) else None


def _available(plane: ControlPlane, ns: str, name: str, generation: int) -> bool:
    status = plane.get_json("orchestrationregistry", name, "-n", ns).get("status", {})
    conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
    return status.get("observedGeneration") == generation and conds.get("Available") == "True"


def _pin(plane: ControlPlane, ns: str, name: str, version: str) -> None:
    plane.kubectl(
        "patch", "orchestrationregistry", name, "-n", ns, "--type=json", "-p",
        json.dumps([
            {"op": "add", "path": "/spec/orchestrations/0/policy", "value": "exact"},
            {"op": "add", "path": "/spec/orchestrations/0/version", "value": version},
        ]),
    )  # fmt: skip


@contextlib.contextmanager
def _operators(
    plane: ControlPlane, ns: str, logs: Path, *extra: str, lease: bool = True
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with contextlib.ExitStack() as stack:
        for identity in ("op-a", "op-b"):
            args = ["--namespace", ns, "--resync-seconds", "2", *extra]
            if lease:
                args += ["--lease", "durox", "--lease-namespace", ns, "--identity", identity]
                args += ["--lease-seconds", str(LEASE_SECONDS)]
            procs[identity] = stack.enter_context(
                operator_process(plane, logs / f"{identity}.log", *args)
            )
        yield procs


def _applied(log: Path) -> int:
    return sum("applied ConfigMap" in line for line in log.read_text().splitlines())


def test_only_the_leader_writes_and_a_killed_leader_is_replaced_within_the_lease(
    control_plane: ControlPlane, registry_crd: str, namespace: str, tmp_path: Path
) -> None:
    plane, ns = control_plane, namespace
    plane.kubectl("create", "secret", "generic", "store", "-n", ns, "--from-literal=url=x")
    with _operators(plane, ns, tmp_path) as procs, contextlib.ExitStack() as stack:

        def wait(what: str, check: Any, timeout: float = 60) -> None:
            try:
                wait_for(what, check, timeout)
            except TimeoutError as exc:
                logs = "\n".join(f"{i}:\n{tail(tmp_path / f'{i}.log', 40)}" for i in procs)
                raise AssertionError(f"{exc}\n{logs}") from None

        wait("a leader", lambda: _holder(plane, ns) in procs)
        leader = _holder(plane, ns)
        assert leader is not None
        standby = next(i for i in procs if i != leader)

        plane.apply(_registry("orders"), "-n", ns)
        wait("the registry to become Available", lambda: _available(plane, ns, "orders", 1))
        time.sleep(3)  # a resync of each process: the standby must still write nothing
        counts = _event_counts(plane, ns, "orders")
        assert counts.get("CreatedConfigMap") == 1, counts
        assert counts.get("CreatedDeployment") == 1, counts
        assert _applied(tmp_path / f"{standby}.log") == 0
        cm = plane.get_json("configmap", "orders", "-n", ns, "--show-managed-fields")
        assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["durox-operator"]

        # one change, one write: one new ConfigMap version, one UpdatedConfigMap Event
        cm_watch = Watch(plane, tmp_path / "cm-watch.json", "configmap", "orders", "-n", ns)
        stack.callback(cm_watch.stop)
        wait("the watch to start", lambda: len(cm_watch.versions()) == 1, 10)
        before = len(cm_watch.versions())
        _pin(plane, ns, "orders", "1.0.0")
        wait("the pinned version", lambda: _available(plane, ns, "orders", 2))
        time.sleep(3)
        assert len(cm_watch.versions()) == before + 1, cm_watch.versions()
        assert _event_counts(plane, ns, "orders").get("UpdatedConfigMap") == 1

        # SIGKILL the leader: no release, the standby must wait the lease out, then lead
        procs[leader].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait("the standby to take the Lease", lambda: _holder(plane, ns) == standby, 30)
        takeover = time.monotonic() - killed
        print(f"takeover after SIGKILL: {takeover:.2f}s (lease {LEASE_SECONDS}s)")
        assert takeover <= LEASE_SECONDS + 2 * (LEASE_SECONDS / 7.5) + 1.0
        lease = plane.get_json("lease", "durox", "-n", ns)["spec"]
        assert lease["leaseTransitions"] >= 1

        # the new leader acts, once
        before = len(cm_watch.versions())
        _pin(plane, ns, "orders", "1.1.0")
        wait("the new leader to apply the change", lambda: _available(plane, ns, "orders", 3))
        time.sleep(3)
        assert len(cm_watch.versions()) == before + 1, cm_watch.versions()
        assert _event_counts(plane, ns, "orders").get("UpdatedConfigMap") == 2
        assert _applied(tmp_path / f"{standby}.log") >= 1

    # SIGTERM of a leader releases the Lease (checked here on the survivor's way out)
    assert _holder(plane, ns) is None


def test_control_without_the_lease_both_processes_write(
    control_plane: ControlPlane, registry_crd: str, namespace: str, tmp_path: Path
) -> None:
    """What the election prevents: two operators without it both act on the same registries
    (both apply children, and the Events they post are doubled whenever their passes meet)."""
    plane, ns = control_plane, namespace
    plane.kubectl("create", "secret", "generic", "store", "-n", ns, "--from-literal=url=x")
    names = [f"orders-{i}" for i in range(4)]
    with _operators(plane, ns, tmp_path, lease=False):
        time.sleep(3)  # both running and listing
        for name in names:
            plane.apply(_registry(name), "-n", ns)
        wait_for(
            "every registry Available",
            lambda: all(_available(plane, ns, n, 1) for n in names),
            90,
        )
        for i, name in enumerate(names):
            _pin(plane, ns, name, "1.0.0" if i % 2 else "1.1.0")
        wait_for(
            "every change applied", lambda: all(_available(plane, ns, n, 2) for n in names), 90
        )
        time.sleep(3)
    applied = {i: _applied(tmp_path / f"{i}.log") for i in ("op-a", "op-b")}
    created = sum(_event_counts(plane, ns, n).get("CreatedConfigMap", 0) for n in names)
    updated = sum(_event_counts(plane, ns, n).get("UpdatedConfigMap", 0) for n in names)
    print(f"without a lease: applies per process {applied}, CreatedConfigMap Events {created}, "
          f"UpdatedConfigMap Events {updated} for {len(names)} registries")  # fmt: skip
    assert all(n >= 1 for n in applied.values()), applied
    assert created + updated > 2 * len(names)  # more than one Event per change
