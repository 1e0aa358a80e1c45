"""Safe rollouts on real pods: a gate that fails holds a bad version, and a ramp rolls it back.

tests/integration/test_operator_rollout.py proves the gate, the ramp and the analysis with real
`durox worker` processes, but it plays the kubelet: it copies the worker file to the workers
itself. Here the operator runs as the Helm chart installs it, the workers are pods of a real
image, and the ramp reaches them only through the ConfigMap the kubelet swaps. So what is
asserted is what a user would see: new starts split by the instance id's hash while the ramp
runs, and all on the old version once the workers have read the rollback.

One registry lifecycle covers both, to keep the tier short: the bad image first meets the gate
(which holds it), then the gate is removed and the same image meets the ramp. That second half
is also the gate's negative control: without the gate, the bad version does take new starts,
and they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s import test_k8s_real_pods as real_pods
from tests.k8s.k8s_node import PodStore, RealNode
from tests.k8s.k8s_pods import APPS, Pods, app_image, config_revision, registry, run

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(600)]

pods = real_pods.pods
"""The registry `loop` in a fresh namespace and database, with the chart's operator."""

PAY = "e2e::orchestration::pay"
EVERY = 0.2
"""Seconds between two starts of the driver."""
MIN_SAMPLES = 20
STATUS_OUT = os.environ.get("DUROX_ROLLOUT_STATUS_OUT")
"""Where to write the registry's status and Events after the rollback, if set."""


@pytest.fixture(scope="module")
def images(real_node: RealNode, node_images: dict[str, Path]) -> dict[str, str]:
    """ramp-v1 registers PAY@1.0.0; ramp-v2 adds a PAY@2.0.0 whose every instance fails."""
    return {
        v: app_image(real_node, f"localhost/durox-e2e-ramp:{v}", APPS / f"ramp-{v}" / "")
        for v in ("v1", "v2")
    }


def _registry(image: str, versions: list[str], **spec: Any) -> dict[str, Any]:
    return registry(
        "loop",
        image,
        versions,
        replicas=2,
        app="rampapp.worker:app",
        orchestrations=[{"name": PAY, "versions": versions}],
        **spec,
    )


def _rollout(cluster: Pods) -> dict[str, Any]:
    return dict(cluster.status().get("rollout") or {})


def _ramp(cluster: Pods) -> dict[str, Any]:
    return dict((_rollout(cluster).get("ramps") or [{}])[0])


def _condition(cluster: Pods, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        (c for c in cluster.status().get("conditions", []) if c["type"] == kind), {}
    )
    return found


def _events(cluster: Pods) -> list[tuple[str, str, str]]:
    """The registry's Events, oldest first: (type, reason, message)."""
    events = cluster.plane.get_json(
        "events", "-n", cluster.ns, "--field-selector", f"involvedObject.name={cluster.name}"
    )
    return [
        (e["type"], e["reason"], e["message"])
        for e in sorted(events["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["involvedObject"]["kind"] == "OrchestrationRegistry"
    ]


def _workers_read(cluster: Pods, image: str) -> bool:
    """Both workers are pods of `image` and report the worker file the status names."""
    revision = cluster.status().get("configRevision")
    running = cluster.ready_pods()
    return (
        len(running) == 2
        and {p["spec"]["containers"][0]["image"] for p in running} == {image}
        and all(config_revision(p) == revision for p in running)
    )


async def _start(dsn: str, ids: list[str]) -> None:
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        client = Client(provider)
        for i in ids:
            await client.start_orchestration(i, PAY, {"order": i})
    finally:
        await provider.close()


async def _instances(dsn: str) -> dict[str, Any]:
    """Instance id -> InstanceInfo of every PAY instance (the gate's too)."""
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        infos = await Client(provider).list_instances(name=PAY, limit=10_000)
        return {i.instance_id: i for i in infos}
    finally:
        await provider.close()


class Driver:
    """Starts a PAY instance every EVERY seconds from the host, as an application would, and
    records when each start was sent and when the store had it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.starts: list[tuple[str, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: run(self._drive()), daemon=True)

    async def _drive(self) -> None:
        from durox import Client
        from durox.providers import PostgresProvider

        provider = await PostgresProvider.connect(self.dsn, listen=False)
        try:
            client = Client(provider)
            k = 0
            while not self._stop.is_set():
                iid = f"d-{k:04d}"
                sent = time.time()
                await client.start_orchestration(iid, PAY, {"order": k})
                self.starts.append((iid, sent, time.time()))
                k += 1
                await asyncio.sleep(EVERY)
        finally:
            await provider.close()

    def __enter__(self) -> Driver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_failing_gate_holds_a_bad_version_and_a_ramp_rolls_it_back(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    from durox.core.versions import Ramp

    cluster, db = pods
    plane, ns = cluster.plane, cluster.ns
    began = time.monotonic()
    plane.apply(_registry(images["v1"], ["1.0.0"]), "-n", ns)
    cluster.wait("2 real ramp-v1 workers", lambda: cluster.settled(2))
    cluster.wait(
        "the operator reading the store",
        lambda: _condition(cluster, "StoreObserved").get("status") == "True",
    )

    # -- the gate: the bad image's PAY@2.0.0 fails its gate, 1.0.0 stays active ----------------
    rollout = {
        "gate": {"orchestration": PAY, "input": {"order": "gate"}, "timeoutSeconds": 120},
        # A long pause: the analysis decides within a step, so the ramp never reaches step 2
        # here and the test does not depend on how fast the failures come in.
        "steps": [{"percent": 50, "pauseSeconds": 600}, {"percent": 100, "pauseSeconds": 600}],
        "analysis": {"thresholdPercent": 10, "minSamples": MIN_SAMPLES},
    }
    plane.apply(_registry(images["v2"], ["1.0.0", "2.0.0"], rollout=rollout), "-n", ns)
    cluster.wait(
        "the gate to fail", lambda: _rollout(cluster).get("gate", {}).get("phase") == "Failed"
    )
    gate = _rollout(cluster)["gate"]
    assert (gate["orchestration"], gate["version"]) == (PAY, "2.0.0"), gate
    degraded = _condition(cluster, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "GateFailed"), degraded
    assert "the old versions stay active" in degraded["message"]
    assert "v2 cannot charge order" in degraded["message"], degraded
    warnings = [(t, r) for t, r, _ in _events(cluster) if t == "Warning"]
    assert ("Warning", "GateFailed") in warnings, _events(cluster)
    # The gate ran for real, on a new pod, on the new version, and failed there.
    found = run(_instances(db.host_dsn))[gate["instance"]]
    assert (found.orchestration_version, found.status) == ("2.0.0", "Failed"), found
    # The new pods run (the gate needed them) while 1.0.0 keeps every new start.
    cluster.wait(
        "the ramp-v2 workers to read the held file", lambda: _workers_read(cluster, images["v2"])
    )
    assert cluster.active_versions() == f"{PAY}@1.0.0"
    held = [f"held-{k:02d}" for k in range(10)]
    run(_start(db.host_dsn, held))
    gate_failed_at = time.monotonic() - began

    # -- the ramp: without the gate the same image ramps, fails more, and is rolled back -------
    plane.kubectl(
        "patch", "orchestrationregistry", "loop", "-n", ns, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/rollout/gate"}]),
    )  # fmt: skip
    cluster.wait("the ramp's first step", lambda: _ramp(cluster).get("phase") == "Ramping")
    ramp = _ramp(cluster)
    assert (ramp["from"], ramp["to"], ramp["step"], ramp["percent"]) == ("1.0.0", "2.0.0", 1, 50)
    cluster.wait("the workers to read the ramp", lambda: _workers_read(cluster, images["v2"]))
    ramp_read = time.time()
    with Driver(db.host_dsn) as driver:
        cluster.wait(
            "the ramp to be rolled back",
            lambda: _ramp(cluster).get("phase") == "RolledBack",
            timeout=180,
        )
        rolled_back = time.time()
        cluster.wait(
            "the workers to read the rollback", lambda: _workers_read(cluster, images["v2"])
        )
        back_read = time.time()
        time.sleep(5)  # new starts after the workers read the rollback
    rolled_back_after = rolled_back - ramp_read

    # Every instance ends as its version dictates: none lost, none stuck.
    ids = [i for i, _, _ in driver.starts] + held

    def all_ended() -> bool:
        seen = run(_instances(db.host_dsn))
        return all(i in seen and seen[i].status in ("Completed", "Failed") for i in ids)

    cluster.wait("every instance to end", all_ended, timeout=120)
    seen = run(_instances(db.host_dsn))
    for i in ids:
        info = seen[i]
        if info.orchestration_version == "1.0.0":
            assert (info.status, info.output) == ("Completed", "v1"), info
        else:
            assert info.orchestration_version == "2.0.0", info
            assert info.status == "Failed" and "v2 cannot charge" in str(info.error), info
    assert {seen[i].orchestration_version for i in held} == {"1.0.0"}

    # While the ramp ran, each start went where its id's hash sends it. (Starts close to the
    # rollback may meet workers that read it already; they are only held to "never on 2.0.0
    # unless the hash says so".)
    share = Ramp("2.0.0", 50)
    chosen = {i: "2.0.0" if share.takes(i) else "1.0.0" for i, _, _ in driver.starts}
    during = [i for i, sent, _ in driver.starts if ramp_read <= sent and sent < rolled_back - 3]
    after = [i for i, sent, _ in driver.starts if sent > back_read]
    assert {i: seen[i].orchestration_version for i in during} == {i: chosen[i] for i in during}
    on_new = [i for i in during if chosen[i] == "2.0.0"]
    assert len(during) >= 10 and 0 < len(on_new) < len(during), (len(on_new), len(during))
    assert all(seen[i].orchestration_version == "1.0.0" for i, v in chosen.items() if v == "1.0.0")
    # After the workers read the rollback, every new start is on 1.0.0, whatever its hash.
    assert len(after) >= 10 and {seen[i].orchestration_version for i in after} == {"1.0.0"}
    assert any(chosen[i] == "2.0.0" for i in after), "no start the ramp would have sent to 2.0.0"

    # The rollback as the status and the Events show it.
    ramp = _ramp(cluster)
    figures = ramp["analysis"]
    assert ramp["phase"] == "RolledBack" and ramp["percent"] == 0, ramp
    assert figures["newFailed"] == figures["newEnded"] >= MIN_SAMPLES, figures
    assert figures["previousFailed"] == 0 and figures["previousEnded"] > 0, figures
    degraded = _condition(cluster, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolledBack"), degraded
    assert (
        f"{PAY}@2.0.0 failed {figures['newFailed']} of {figures['newEnded']} ended"
        in (degraded["message"])
    ), degraded
    assert "new starts of" in degraded["message"] and "returned to 1.0.0" in degraded["message"]
    reasons = [r for _, r, _ in _events(cluster)]
    assert reasons.count("RampStep") == 1 and "RampRolledBack" in reasons, reasons
    assert "RampCompleted" not in reasons, reasons
    assert cluster.active_versions() == f"{PAY}@1.0.0"
    policy = next(
        o
        for o in yaml.safe_load(cluster.get("configmap")["data"]["worker.yaml"])["orchestrations"]
        if o["name"] == PAY
    )
    assert policy == {"name": PAY, "policy": "exact", "version": "1.0.0"}, policy
    if STATUS_OUT:
        Path(STATUS_OUT).write_text(_as_a_user_sees_it(cluster))
    print(
        f"\nsafe rollout on real pods: gate failed {gate_failed_at:.1f}s into the test; "
        f"{len(driver.starts)} driven starts, {len(during)} during the ramp "
        f"({len(on_new)} on 2.0.0); rolled back {rolled_back_after:.1f}s after the workers "
        f"read the ramp, read back {back_read - rolled_back:.1f}s later; "
        f"{len(after)} starts after, all on 1.0.0; analysis {figures}"
    )


def _as_a_user_sees_it(cluster: Pods) -> str:
    """The upgrade test's view (get -o wide, conditions, Events) and `status.rollout`."""
    rollout = yaml.safe_dump({"rollout": _rollout(cluster)}, sort_keys=False, width=100)
    return (
        real_pods._as_a_user_sees_it(cluster)
        + "\n$ kubectl get oreg loop -o jsonpath='{.status.rollout}'  (as YAML)\n"
        + rollout
    )
