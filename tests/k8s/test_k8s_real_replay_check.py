"""The replay check before a rollout, with real pods: a broken image is held, a fixed one rolls.

Real v1 workers run looping instances in a real store. A "broken" image keeps LOOP@1.0.0's
version but swaps its two activities, so every history of a running instance replays wrongly
with it. The operator must run the candidate in a Job (the chart's RBAC, the workers' Secret and
pod settings), read its verdict from the pod's termination message, and leave the Deployment as
it was: the v1 workers keep serving and no instance breaks. A fixed image (v2, whose 1.0.0 code
is v1's) then passes its own check and rolls out.

The negative control rolls the same broken image with the check skipped: instances fail, which
is the harm the check prevents.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane
from tests.k8s.k8s_node import PodStore, RealNode
from tests.k8s.k8s_pods import (
    APPS,
    Pods,
    app_image,
    chart_operator,
    fresh_database,
    registry,
    run,
    store_secret,
)

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]

LOOP = "e2e::orchestration::loop"
INSTANCES = 20
CYCLE_SECONDS = 5
CAPTURE = os.environ.get("DUROX_REPLAY_CHECK_CAPTURE")
"""A file to write what a user sees (status and Events) into, when set."""


@pytest.fixture(scope="module")
def images(real_node: RealNode, node_images: dict[str, Path]) -> dict[str, str]:
    return {
        v: app_image(real_node, f"localhost/durox-e2e:{v}", APPS / v / "")
        for v in ("v1", "v2", "broken")
    }


@pytest.fixture
def pods(
    control_plane: ControlPlane, namespace: str, pod_store: PodStore, tmp_path: Path
) -> Iterator[tuple[Pods, PodStore]]:
    db = fresh_database(pod_store)
    store_secret(control_plane, namespace, db)
    with chart_operator(control_plane, namespace, tmp_path) as log:
        yield Pods(control_plane, namespace, "loop", log), db


def _loop(image: str, mode: str = "Enabled") -> dict[str, Any]:
    body = registry(
        "loop",
        image,
        ["1.0.0"],
        replicas=2,
        rollout={"replayCheck": {"mode": mode, "deadlineSeconds": 240, "maxHistories": 10}},
    )
    body["spec"]["pod"] = {
        **body["spec"]["pod"],
        "env": [{"name": "E2E_CYCLE_SECONDS", "value": str(CYCLE_SECONDS)}],
        "resources": {"limits": {"cpu": "500m", "memory": "384Mi"}},
    }
    return body


async def _start_instances(dsn: str) -> None:
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        client = Client(provider)
        for k in range(INSTANCES):
            await client.start_orchestration(f"i-{k:03d}", LOOP, 0)
    finally:
        await provider.close()


async def _statuses(dsn: str) -> dict[str, tuple[str, Any]]:
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        infos = await Client(provider).list_instances(name=LOOP, limit=10_000)
        return {i.instance_id: (i.status, i.error) for i in infos}
    finally:
        await provider.close()


async def _activity_runs(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(DISTINCT instance_id) FROM e2e_activity_runs"))
    finally:
        await conn.close()


def _cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _events(cluster: Pods) -> list[dict[str, Any]]:
    items = cluster.plane.get_json(
        "events", "-n", cluster.ns,
        "--field-selector", "involvedObject.kind=OrchestrationRegistry,involvedObject.name=loop",
    )["items"]  # fmt: skip
    return sorted(items, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))


def _broken_instances(dsn: str) -> dict[str, tuple[str, Any]]:
    return {
        i: (s, e)
        for i, (s, e) in run(_statuses(dsn)).items()
        if s not in ("Running", "ContinuedAsNew")
    }


def test_a_broken_image_is_held_by_its_replay_check_and_a_fixed_one_rolls_out(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    cluster, db = pods
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_loop(images["v1"]), "-n", ns)
    cluster.wait("2 real v1 workers", lambda: cluster.settled(2), timeout=180)
    run(_start_instances(db.host_dsn))
    cluster.wait(
        f"all {INSTANCES} instances to run activities",
        lambda: run(_activity_runs(db.host_dsn)) == INSTANCES,
        timeout=120,
    )
    before = cluster.get("deployment")
    old_pods = sorted(p["metadata"]["name"] for p in cluster.pods())

    # -- the broken image: checked, held ------------------------------------------------------
    applied = time.monotonic()
    plane.apply(_loop(images["broken"]), "-n", ns)
    cluster.wait(
        "the replay check to fail",
        lambda: cluster.status().get("replayCheck", {}).get("phase") == "Failed",
        timeout=300,
    )
    verdict_seconds = time.monotonic() - applied
    status = cluster.status()
    record = status["replayCheck"]
    degraded = _cond(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReplayCheckFailed"), degraded
    assert f"{LOOP}@1.0.0 instance i-" in degraded["message"], degraded["message"]
    assert "code scheduled activity 'Note'" in degraded["message"], degraded["message"]
    assert "history has activity 'Touch'" in degraded["message"], degraded["message"]
    assert record["image"] == images["broken"] and record["divergences"] >= 1
    assert _cond(status, "Ready")["status"] == "False"
    assert _cond(status, "Stalled")["status"] == "True"

    # the Job ran the candidate as a worker would, and said so in its termination message
    job = cluster.get("job", record["job"])
    assert job["spec"]["activeDeadlineSeconds"] == 240
    [check_pod] = plane.get_json(
        "pods", "-n", ns, "-l", f"durox.dev/replay-check-job={record['job']}"
    )["items"]
    container = check_pod["spec"]["containers"][0]
    assert container["image"] == images["broken"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "384Mi"}
    assert check_pod["spec"]["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    terminated = check_pod["status"]["containerStatuses"][0]["state"]["terminated"]
    summary = json.loads(terminated["message"])
    assert (terminated["exitCode"], summary["exit_code"]) == (1, 1)
    assert summary["first_divergence"]["history"] == "activity 'Touch'"

    # the Deployment untouched, the old workers still serving, no instance broken
    time.sleep(2 * CYCLE_SECONDS)  # several resyncs (2 s) and a loop cycle or two later
    after = cluster.get("deployment")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert sorted(p["metadata"]["name"] for p in cluster.pods()) == old_pods
    assert {p["spec"]["containers"][0]["image"] for p in cluster.pods()} == {images["v1"]}
    assert cluster.status()["replayCheck"]["job"] == record["job"]  # checked once
    assert _broken_instances(db.host_dsn) == {}
    warnings = [(e["type"], e["reason"]) for e in _events(cluster)]
    assert ("Warning", "ReplayCheckFailed") in warnings, warnings
    assert ("Normal", "ReplayCheckStarted") in warnings, warnings
    held = _capture(cluster, "a replay check caught a broken image (the rollout is held)")

    # -- the fixed image: checked, passed, rolled out -----------------------------------------
    plane.apply(_loop(images["v2"]), "-n", ns)
    cluster.wait(
        "the fixed image's check to pass",
        lambda: cluster.status().get("replayCheck", {}).get("phase") == "Passed",
        timeout=300,
    )
    status = cluster.status()
    assert status["replayCheck"]["image"] == images["v2"]
    assert status["replayCheck"]["job"] != record["job"]
    cluster.wait(
        "2 workers of the fixed image",
        lambda: (
            cluster.settled(2)
            and {p["spec"]["containers"][0]["image"] for p in cluster.pods()} == {images["v2"]}
        ),
        timeout=240,
    )
    assert _cond(cluster.status(), "Degraded")["status"] == "False"
    reasons = [e["reason"] for e in _events(cluster)]
    assert "ReplayCheckPassed" in reasons, reasons
    time.sleep(2 * CYCLE_SECONDS + 5)
    assert _broken_instances(db.host_dsn) == {}
    released = _capture(cluster, "the fixed image passed its check and rolled out")
    if CAPTURE:
        Path(CAPTURE).write_text(held + "\n\n" + released)
    print(
        f"\nreplay check: broken image held {verdict_seconds:.1f}s after its apply "
        f"({record['historiesChecked']} histories, {record['divergences']} divergences); "
        f"fixed image rolled out; 0 of {INSTANCES} instances broken"
    )


def test_negative_control_the_broken_image_without_the_check_breaks_instances(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    """What the check prevents: skipped, the broken image rolls and running instances fail."""
    cluster, db = pods
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_loop(images["v1"], mode="Skip"), "-n", ns)
    cluster.wait("2 real v1 workers", lambda: cluster.settled(2), timeout=180)
    run(_start_instances(db.host_dsn))
    cluster.wait(
        f"all {INSTANCES} instances to run activities",
        lambda: run(_activity_runs(db.host_dsn)) == INSTANCES,
        timeout=120,
    )
    plane.apply(_loop(images["broken"], mode="Skip"), "-n", ns)
    cluster.wait(
        "the broken image to roll out unchecked",
        lambda: (
            {p["spec"]["containers"][0]["image"] for p in cluster.ready_pods()}
            == {images["broken"]}
        ),
        timeout=240,
    )
    cluster.wait("instances to break", lambda: bool(_broken_instances(db.host_dsn)), timeout=120)
    broken = _broken_instances(db.host_dsn)
    reasons = [e["reason"] for e in _events(cluster)]
    assert "ReplayCheckSkipped" in reasons, reasons
    assert cluster.status()["replayCheck"]["phase"] == "Skipped"
    status, error = next(iter(broken.values()))
    print(
        f"\nnegative control: without the check {len(broken)} of {INSTANCES} instances broke "
        f"({status}: {error})"
    )


def _capture(cluster: Pods, title: str) -> str:
    """The registry's status and Events as `kubectl` shows them to a user."""
    plane, ns = cluster.plane, cluster.ns
    table = plane.kubectl("get", "orchestrationregistry", "loop", "-n", ns)
    status = cluster.status()
    keys = ("replayCheck", "activeVersions", "workers")
    shown: dict[str, Any] = {k: status[k] for k in keys if k in status}
    shown["conditions"] = [
        {k: c[k] for k in ("type", "status", "reason", "message")}
        for c in status.get("conditions", [])
    ]
    events = plane.kubectl(
        "get", "events", "-n", ns, "--sort-by=.lastTimestamp",
        "--field-selector", "involvedObject.kind=OrchestrationRegistry,involvedObject.name=loop",
        "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
    )  # fmt: skip
    jobs = plane.kubectl("get", "jobs", "-n", ns, "-o", "wide")
    deployment = plane.kubectl("get", "deployment", "loop", "-n", ns, "-o", "wide")
    return (
        f"== {title}\n$ kubectl get oreg loop\n{table}\n$ kubectl get oreg loop -o yaml "
        f"(status, abridged)\n{json.dumps(shown, indent=2)}\n$ kubectl get events\n{events}\n"
        f"$ kubectl get jobs\n{jobs}\n$ kubectl get deployment loop\n{deployment}"
    )
