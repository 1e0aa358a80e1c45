"""Real pods: the worker image in a real kubelet, the Helm chart's operator, a shared store.

These tests prove what kwok cannot: the image starts as the operator's pod spec asks (non-root,
read-only root file system, probes), a ConfigMap edit reaches running workers through the
kubelet's volume swap, and the operator's promise for a live upgrade: a new version goes live
only when every worker can run it, and no running instance is lost or broken. The upgrade test
has a negative control: the same upgrade applied in the wrong order (the new version's policy
before its image) must hand work to workers that lack its handlers.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.k8s_control_plane import ControlPlane
from tests.k8s.k8s_node import NODE_NAME, PodStore, RealNode
from tests.k8s.k8s_pods import (
    APPS,
    Pods,
    app_image,
    chart_operator,
    config_revision,
    fresh_database,
    json_lines,
    metrics,
    ready,
    registry,
    restarts,
    run,
    store_secret,
)

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]

LOOP = "e2e::orchestration::loop"
INSTANCES = 200
CYCLE_SECONDS = 10


@pytest.fixture(scope="module")
def images(real_node: RealNode, node_images: dict[str, Path]) -> dict[str, str]:
    """The test app at v1 and v2, each an image FROM the worker image."""
    return {
        v: app_image(real_node, f"localhost/durox-e2e:{v}", APPS / v / "") for v in ("v1", "v2")
    }


@pytest.fixture
def pods(
    control_plane: ControlPlane, namespace: str, pod_store: PodStore, tmp_path: Path
) -> Iterator[tuple[Pods, PodStore]]:
    db = fresh_database(pod_store)
    store_secret(control_plane, namespace, db)
    with chart_operator(control_plane, namespace, tmp_path) as log:
        yield Pods(control_plane, namespace, "loop", log), db


def _env(cycle: int = CYCLE_SECONDS) -> dict[str, Any]:
    return {"env": [{"name": "E2E_CYCLE_SECONDS", "value": str(cycle)}]}


def _with_env(body: dict[str, Any], cycle: int = CYCLE_SECONDS) -> dict[str, Any]:
    body["spec"]["pod"] = {**body["spec"]["pod"], **_env(cycle)}
    return body


def test_workers_run_in_real_pods_and_reload_their_config_live(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    cluster, _ = pods
    plane, ns = cluster.plane, cluster.ns
    plane.apply(_with_env(registry("loop", images["v1"], ["1.0.0"], replicas=2)), "-n", ns)
    cluster.wait("2 real workers Ready and the registry Available", lambda: cluster.settled(2))
    running = cluster.pods()
    assert {p["spec"]["nodeName"] for p in running} == {NODE_NAME}
    [name, *_] = [p["metadata"]["name"] for p in running]
    # the operator's pod spec, for real: non-root UID, read-only root file system
    assert plane.kubectl("exec", name, "-n", ns, "--", "id", "-u").strip() == "65532"
    denied = plane.run("kubectl", "exec", name, "-n", ns, "--", "touch", "/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert "serving /healthz" in plane.kubectl("logs", name, "-n", ns)

    revision = cluster.status()["configRevision"]
    assert {config_revision(p) for p in running} == {revision}

    # a policy change: the ConfigMap changes, the kubelet swaps the volume, workers reload
    started = time.monotonic()
    plane.kubectl(
        "patch", "orchestrationregistry", "loop", "-n", ns, "--type=json", "-p",
        json.dumps([
            {"op": "add", "path": "/spec/orchestrations/0/policy", "value": "exact"},
            {"op": "add", "path": "/spec/orchestrations/0/version", "value": "1.0.0"},
        ]),
    )  # fmt: skip
    cluster.wait(
        "a new revision in the status",
        lambda: cluster.status().get("configRevision") not in (None, revision),
    )
    new = cluster.status()["configRevision"]
    cluster.wait(
        "every worker to report the new revision",
        lambda: {config_revision(p) for p in cluster.pods()} == {new},
        timeout=90,
    )
    reload_seconds = time.monotonic() - started
    after = cluster.pods()
    assert {p["metadata"]["name"] for p in after} == {p["metadata"]["name"] for p in running}
    assert [restarts(p) for p in after] == [0, 0]
    assert cluster.settled(2)
    print(f"\nconfig reload reached every worker in {reload_seconds:.1f}s, 0 restarts")


# -- the live upgrade -------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    active: str
    reason: str
    images: dict[str, str]
    """pod -> image, terminating pods marked so."""
    store: str = ""
    """The StoreObserved condition's status (and reason when not True)."""


@dataclass
class Upgrade:
    applied_at: float = 0.0
    activated_after: float = 0.0
    """Seconds from the image's apply to the first poll that saw NAME@1.0.1 active."""
    last_held_at: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    old_pods: list[str] = field(default_factory=list)
    new_pods: list[str] = field(default_factory=list)


def _activation(report: Upgrade) -> str:
    """When the held version went live, and what still ran then (for failure messages)."""
    first = next((s for s in report.samples if s.active.endswith("@1.0.1")), None)
    if first is None:
        return "never activated"
    stamp = time.strftime("%H:%M:%S", time.gmtime(first.at))
    return f"1.0.1 seen active at {stamp}.{int(first.at % 1 * 1000):03d}, pods {first.images}"


def _unregistered(lines: list[str]) -> list[dict[str, Any]]:
    """Log records of a worker handed work it has no handler for."""
    return [
        r
        for r in json_lines(lines)
        if "is registered on this worker" in r.get("message", "")
        or "not registered" in r.get("message", "")
    ]


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


async def _query(dsn: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _workers(dsn: str) -> list[Any]:
    """The pool's live capability records, read as the operator reads them (nothing reaped)."""
    from datetime import UTC, datetime

    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        seen = await provider.observe(
            pool="loop", failed_since=datetime.now(UTC), stale_after_ms=30_000
        )
        return [w.record for w in seen.workers if w.live]
    finally:
        await provider.close()


STATUS_OUT = os.environ.get("DUROX_STATUS_OUT")
"""Where to write the registry's status and Events after the upgrade, if set."""


def _as_a_user_sees_it(cluster: Pods) -> str:
    """`kubectl get oreg -o wide`, the conditions and the registry's Events, as text."""
    plane, ns = cluster.plane, cluster.ns
    out = ["$ kubectl get oreg -o wide", plane.kubectl("get", "oreg", "-n", ns, "-o", "wide")]
    out.append("$ kubectl get oreg loop -o jsonpath='{.status.conditions}'  (as a table)")
    for c in cluster.status().get("conditions", []):
        out.append(f"{c['type']:14} {c['status']:7} {c['reason']:18} {c['message']}")
    out.append("\n$ kubectl get oreg loop -o jsonpath='{.status.workerRecords}{.status.versions}'")
    status = cluster.status()
    out.append(json.dumps({k: status.get(k) for k in ("workerRecords", "versions", "drain")}))
    events = plane.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=loop")
    out.append("\n$ kubectl describe oreg loop   (Events, oldest first)")
    out += [
        f"{e['type']:8} {e['reason']:20} x{e.get('count', 1)} {e['message']}"
        for e in sorted(events["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))
        if e["involvedObject"]["kind"] == "OrchestrationRegistry"
    ]
    return "\n".join(out) + "\n"


async def _instances(dsn: str) -> list[Any]:
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        client = Client(provider)
        infos = await client.list_instances(name=LOOP, limit=10_000)
        return [(i, await client.list_executions(i.instance_id)) for i in infos]
    finally:
        await provider.close()


BLIND = {"store": {"secretRef": {"name": "store"}, "operatorSecretRef": {"name": "absent"}}}
"""A registry whose operator Secret does not exist: the operator cannot read the store
(StoreObserved=False, SecretUnreadable) and decides from Kubernetes alone."""


def _run_upgrade(
    cluster: Pods,
    db: PodStore,
    images: dict[str, str],
    wrong_order: bool,
    spec: dict[str, Any] | None = None,
) -> Upgrade:
    """Image v1 with 1.0.0, 200 instances, then image v2 with 1.0.1 in one apply (or, with
    `wrong_order`, 1.0.1 with the old image first); `spec` adds to each registry applied."""
    plane, ns = cluster.plane, cluster.ns
    extra = spec or {}
    v1 = _with_env(registry("loop", images["v1"], ["1.0.0"], **extra))
    plane.apply(v1, "-n", ns)
    cluster.wait("3 real v1 workers", lambda: cluster.settled(3))
    run(_start_instances(db.host_dsn))

    def all_running() -> bool:
        rows = run(_query(db.host_dsn, "SELECT count(DISTINCT instance_id) FROM e2e_activity_runs"))
        return bool(rows[0][0] == INSTANCES)

    cluster.wait(f"all {INSTANCES} instances to run activities", all_running, timeout=180)
    report = Upgrade(old_pods=[p["metadata"]["name"] for p in cluster.pods()])
    for pod in report.old_pods:
        cluster.follow_logs(pod)

    if wrong_order:  # the new version's policy first, with the old image still everywhere
        plane.apply(
            _with_env(registry("loop", images["v1"], ["1.0.0", "1.0.1"], **extra)), "-n", ns
        )
        if extra == BLIND:  # Kubernetes alone sees no rollout, so nothing holds 1.0.1 back
            cluster.wait(
                "1.0.1 to be activated at once (no rollout)",
                lambda: cluster.active_versions() == f"{LOOP}@1.0.1",
            )
        else:  # the workers' records say none of them registers 1.0.1: it is held
            cluster.wait("1.0.1 held on the workers' word", lambda: _held_by_workers(cluster))
            time.sleep(3)  # a few more passes: still held
            assert _held_by_workers(cluster), cluster.status()
    report.applied_at = time.time()
    plane.apply(_with_env(registry("loop", images["v2"], ["1.0.0", "1.0.1"], **extra)), "-n", ns)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.time()
        active = cluster.active_versions()
        conditions = {c["type"]: c for c in cluster.status().get("conditions", [])}
        progressing: dict[str, Any] = conditions.get("Progressing", {})
        seen: dict[str, Any] = conditions.get("StoreObserved", {})
        sample = Sample(
            at=now,
            active=active,
            reason=progressing.get("reason", ""),
            store=str(seen.get("status"))
            + ("" if seen.get("status") == "True" else f" {seen.get('reason')}"),
            images={
                p["metadata"]["name"]
                + (" (terminating)" if "deletionTimestamp" in p["metadata"] else ""): p["spec"][
                    "containers"
                ][0]["image"]
                for p in cluster.pods(terminating=True)
            },
        )
        report.samples.append(sample)
        if active.endswith("@1.0.0"):
            report.last_held_at = now
        elif not report.activated_after:
            report.activated_after = now - report.applied_at
        if report.activated_after and cluster.settled(3):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the upgrade did not settle; last sample {report.samples[-1]}")
    report.new_pods = [p["metadata"]["name"] for p in cluster.pods()]
    cluster.join_logs()
    return report


def _held_by_workers(cluster: Pods) -> bool:
    conditions = {c["type"]: c for c in cluster.status().get("conditions", [])}
    progressing = conditions.get("Progressing", {})
    return bool(
        cluster.active_versions() == f"{LOOP}@1.0.0"
        and progressing.get("reason") == "HoldingVersions"
        and f"do not register {LOOP}@1.0.1" in progressing.get("message", "")
    )


def test_live_upgrade_holds_the_new_version_until_every_worker_runs_it(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    cluster, db = pods
    report = _run_upgrade(cluster, db, images, wrong_order=False)

    # The operator read this store all along, so the activation waited for the workers' own
    # capability records (every live worker registering 1.0.1 with the same handlers), not
    # only for Kubernetes. (It once decided from Kubernetes alone here: the store's first
    # answer, "no schema yet", was held for a 30 s back-off that outlasted the upgrade.)
    assert report.samples and all(s.store == "True" for s in report.samples), [
        (s.at, s.store) for s in report.samples if s.store != "True"
    ][:3]
    status = cluster.status()
    records = status.get("workerRecords", {})
    assert records.get("live", 0) >= 3 and records.get("ready", 0) >= 3, records
    workers = run(_workers(db.host_dsn))
    assert sorted(w.node_id or "" for w in workers) == sorted(report.new_pods)
    # ... and each record is matched to its pod's template: the pods carry the digest the
    # Deployment names, so the operator knew these were the new template's workers
    digest = cluster.get("deployment")["metadata"]["annotations"]["durox.dev/template-hash"]
    assert {
        p["metadata"]["annotations"].get("durox.dev/template-hash") for p in cluster.pods()
    } == {digest}
    assert all(w.has_version(LOOP, "1.0.1") for w in workers), workers
    if STATUS_OUT:
        Path(STATUS_OUT).write_text(_as_a_user_sees_it(cluster))

    # the hold: 1.0.1 was never active while a worker of image v1 was serving
    assert any(s.reason == "HoldingVersions" for s in report.samples)
    for s in report.samples:
        if s.active.endswith("@1.0.1"):
            serving = {img for pod, img in s.images.items() if "(terminating)" not in pod}
            assert serving == {images["v2"]}, s
    # every old pod got SIGTERM, stopped fetching, finished or released its work, exited 0
    assert not set(report.old_pods) & set(report.new_pods)
    for pod in report.old_pods:
        messages = [r.get("message", "") for r in json_lines(cluster.streams[pod])]
        assert "received SIGTERM" in messages, (pod, messages[-5:])
        assert "worker exiting with status 0" in messages, (pod, messages[-5:])
        sigterm = next(r["time"] for r in json_lines(cluster.streams[pod])
                       if r.get("message") == "received SIGTERM")  # fmt: skip
        stray = [(r["time"], r["message"]) for r in _unregistered(cluster.streams[pod])]
        assert not stray, (pod, f"SIGTERM at {sigterm}", stray[:5], _activation(report))

    # let every instance run a cycle or two on 1.0.1
    time.sleep(2 * CYCLE_SECONDS + 5)

    def on_new_version() -> bool:
        rows = run(_query(db.host_dsn, "SELECT count(DISTINCT instance_id) FROM "
                          "e2e_activity_runs WHERE activity = 'TouchV2'"))  # fmt: skip
        return bool(rows[0][0] == INSTANCES)

    cluster.wait("every instance to run the new handler", on_new_version, timeout=120)

    instances = run(_instances(db.host_dsn))
    assert len(instances) == INSTANCES
    # a looping instance is Running, or between two executions for a moment (ContinuedAsNew)
    failed = [
        (i.instance_id, i.status, i.error)
        for i, _ in instances
        if i.status not in ("Running", "ContinuedAsNew")
    ]
    assert failed == [], _activation(report)
    versions: dict[tuple[str, int], str] = {}
    for info, executions in instances:
        seq = [e.orchestration_version for e in executions]
        assert seq == sorted(seq), (info.instance_id, seq)  # 1.0.0 ... then 1.0.1 ... only
        assert seq[-1] == "1.0.1"
        for e in executions:
            versions[(info.instance_id, e.execution_id)] = e.orchestration_version
    rows = run(_query(db.host_dsn, "SELECT instance_id, execution_id, activity, "
                      "orchestration_version, image, at FROM e2e_activity_runs"))  # fmt: skip
    # an execution never changed version: every activity it ran was of its one version
    mixed = [r for r in rows if versions.get((r[0], r[1]), r[3]) != r[3]]
    assert mixed == []
    # the new handler never ran before the activation, and only ever on image v2
    touch_v2 = [r for r in rows if r[2] == "TouchV2"]
    assert min(r[5].timestamp() for r in touch_v2) > report.last_held_at
    assert {r[4] for r in touch_v2} == {"v2"}
    assert {r[2] for r in rows if r[3] == "1.0.0"} == {"Touch", "Note"}
    print(
        f"\nlive upgrade: {INSTANCES} instances, {len(rows)} activity executions "
        f"({len(touch_v2)} of TouchV2), apply->activation {report.activated_after:.1f}s, "
        f"{len(report.old_pods)} pods replaced, {len(failed)} failed"
    )


def test_the_same_upgrade_in_the_wrong_order_hands_work_to_workers_without_its_handlers(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    """Negative control: a test that cannot fail proves nothing. The operator is kept from
    the store here (it decides from Kubernetes alone, as before it read the store), so
    nothing holds the new version back when its policy comes before its image."""
    cluster, db = pods
    report = _run_upgrade(cluster, db, images, wrong_order=True, spec=BLIND)
    conditions = {c["type"]: c for c in cluster.status().get("conditions", [])}
    assert conditions["StoreObserved"]["reason"] == "SecretUnreadable", conditions
    hits = {pod: _unregistered(cluster.streams[pod]) for pod in report.old_pods}
    instances = {r.get("instance_id") for rs in hits.values() for r in rs}
    messages = {r["message"].split(";")[0] for rs in hits.values() for r in rs}
    print(
        f"\nnegative control: {sum(map(len, hits.values()))} fetches of work without a handler "
        f"on v1 workers, {len(instances)} instances affected: {sorted(messages)}"
    )
    assert instances, "without the hold, old workers must have been handed 1.0.1 work"


def test_the_wrong_order_is_held_by_the_workers_own_word(
    images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    """The same wrong order with the operator reading the store: no v1 worker registers
    1.0.1, so it stays held until the v2 workers have replaced them, and no old worker is
    handed work it has no handler for."""
    cluster, db = pods
    report = _run_upgrade(cluster, db, images, wrong_order=True)
    assert cluster.active_versions() == f"{LOOP}@1.0.1"
    for s in report.samples:
        if s.active.endswith("@1.0.1"):
            serving = {img for pod, img in s.images.items() if "(terminating)" not in pod}
            assert serving == {images["v2"]}, s
    hits = {pod: _unregistered(cluster.streams[pod]) for pod in report.old_pods}
    assert not any(hits.values()), {p: h[:3] for p, h in hits.items() if h}
    print(
        f"\nwrong order, store read: 1.0.1 held, then active {report.activated_after:.1f}s "
        f"after the image's apply; 0 fetches without a handler on {len(hits)} v1 workers"
    )


# -- faults -----------------------------------------------------------------------------------

STEPS = "e2e::orchestration::steps"


def _container_pid(node: RealNode, pod: dict[str, Any]) -> int:
    """The host PID of a pod's worker process (its container's init), from containerd."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    for line in node.ctr("tasks", "ls").stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == cid:
            return int(pid)
    raise AssertionError(f"no task for container {cid}")


async def _start_steps(dsn: str, count: int, steps: int) -> None:
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        client = Client(provider)
        for k in range(count):
            await client.start_orchestration(f"s-{k:03d}", STEPS, steps)
    finally:
        await provider.close()


async def _statuses(dsn: str, pins: bool = False) -> dict[str, str]:
    """instance -> status (`status@pinned engine` with `pins`) of the STEPS instances."""
    from durox import Client
    from durox.providers import PostgresProvider

    provider = await PostgresProvider.connect(dsn, listen=False)
    try:
        infos = await Client(provider).list_instances(name=STEPS, limit=10_000)
        return {
            i.instance_id: f"{i.status}@{i.pinned_engine_version}" if pins else i.status
            for i in infos
        }
    finally:
        await provider.close()


def test_killed_and_frozen_workers_lose_nothing(
    real_node: RealNode, images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    cluster, db = pods
    plane, ns = cluster.plane, cluster.ns
    count, steps = 100, 20
    plane.apply(_with_env(registry("loop", images["v1"], ["1.0.0"])), "-n", ns)
    cluster.wait("3 real workers", lambda: cluster.settled(3))
    run(_start_steps(db.host_dsn, count, steps))
    time.sleep(4)

    # 1. a pod deleted with no grace at all: its leases lapse, the others take its work over
    victim, killed, frozen = cluster.pods()
    plane.kubectl(
        "delete", "pod", victim["metadata"]["name"], "-n", ns, "--grace-period=0", "--force"
    )
    # 2. a worker process killed with SIGKILL inside its pod: the kubelet restarts the container
    os.kill(_container_pid(real_node, killed), signal.SIGKILL)
    cluster.wait(
        "the killed container to be restarted",
        lambda: restarts(cluster.get("pod", killed["metadata"]["name"])) == 1,
    )
    # 3. a frozen worker: the real readiness probe marks it NotReady, its work is taken over
    frozen_name = frozen["metadata"]["name"]
    os.kill(_container_pid(real_node, frozen), signal.SIGSTOP)
    try:
        started = time.monotonic()
        cluster.wait(
            "the frozen pod to become NotReady",
            lambda: not ready(cluster.get("pod", frozen_name)),
            timeout=60,
        )
        not_ready_after = time.monotonic() - started

        def done() -> bool:
            statuses = run(_statuses(db.host_dsn))
            return len(statuses) == count and set(statuses.values()) == {"Completed"}

        cluster.wait("every instance to complete while one worker is frozen", done, 300)
    finally:
        os.kill(_container_pid(real_node, cluster.get("pod", frozen_name)), signal.SIGCONT)
    rows = run(_query(db.host_dsn, "SELECT instance_id, count(*) FROM e2e_activity_runs "
                      "WHERE instance_id LIKE 's-%' GROUP BY instance_id"))  # fmt: skip
    assert len(rows) == count
    assert all(n >= steps for _, n in rows)  # every step ran at least once
    print(
        f"\nfaults: {count} instances completed, frozen pod NotReady after "
        f"{not_ready_after:.1f}s, {sum(n for _, n in rows) - count * steps} activity re-runs"
    )


# -- the drain pool ---------------------------------------------------------------------------


def _steps_turns(pod: dict[str, Any]) -> float:
    """Orchestration turns of STEPS this worker acknowledged, from its /metrics."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics(pod).splitlines()
        if line.startswith("durox_orchestration_turns_total{") and f'name="{STEPS}"' in line
    )


OLD_ENGINE = "0.0.9"


def test_drain_pool_completes_what_the_main_pool_leaves_alone(
    real_node: RealNode, images: dict[str, str], pods: tuple[Pods, PodStore]
) -> None:
    """Executions pinned to an older engine (started by an image whose durox calls itself
    0.0.9, built by images.sh) are outside a main pool that replays only 0.1.0; the drain pool,
    same image as the main pool but a widened range, completes them."""
    cluster, db = pods
    plane, ns = cluster.plane, cluster.ns
    old = app_image(real_node, f"localhost/durox-e2e:v1-engine-{OLD_ENGINE}", APPS / "v1",
                    engine=OLD_ENGINE)  # fmt: skip
    count, steps = 40, 30
    plane.apply(_with_env(registry("loop", old, ["1.0.0"], replicas=2)), "-n", ns)
    cluster.wait("2 workers of the old engine", lambda: cluster.settled(2))
    run(_start_steps(db.host_dsn, count, steps))

    def rows() -> int:
        return int(run(_query(db.host_dsn, "SELECT count(*) FROM e2e_activity_runs"))[0][0])

    cluster.wait("the old engine to run them", lambda: rows() >= count, timeout=60)

    # the main pool moves to the current engine and replays only executions pinned to it
    current = {"supportedVersions": {"min": "0.1.0", "max": "0.1.0"}}
    plane.apply(
        _with_env(registry("loop", images["v1"], ["1.0.0"], replicas=2, replay=current)), "-n", ns
    )
    cluster.wait(
        "the main pool to run only the current engine",
        lambda: (
            cluster.settled(2)
            and {p["spec"]["containers"][0]["image"] for p in cluster.pods(terminating=True)}
            == {images["v1"]}
        ),
        timeout=180,
    )
    time.sleep(3)
    before = rows()
    time.sleep(8)
    assert rows() == before, "the main pool must leave executions pinned to 0.0.9 alone"
    main_turns = [_steps_turns(p) for p in cluster.pods()]
    pins = run(_statuses(db.host_dsn, pins=True))
    assert set(pins.values()) == {f"Running@{OLD_ENGINE}"}

    # the drain pool: same image, a range that includes 0.0.9; it completes them
    plane.kubectl(
        "patch", "orchestrationregistry", "loop", "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": {"drain": {
            "enabled": True, "supportedVersions": {"min": "0.0.0", "max": "0.1.0"},
        }}}),
    )  # fmt: skip

    def done() -> bool:
        statuses = run(_statuses(db.host_dsn))
        return len(statuses) == count and set(statuses.values()) == {"Completed"}

    cluster.wait("the drain pool to complete every pinned execution", done, timeout=300)
    # turns (replays) of the pinned executions ran only in the drain pool; their activities,
    # which replay nothing, may run on any worker
    assert [_steps_turns(p) for p in cluster.pods()] == main_turns
    [drain_pod] = Pods(plane, ns, "loop-drain", cluster.log).pods()
    assert _steps_turns(drain_pod) > 0
    assert all(restarts(p) == 0 for p in cluster.pods())

    plane.kubectl(
        "patch", "orchestrationregistry", "loop", "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": {"drain": {"enabled": False}}}),
    )  # fmt: skip
    cluster.wait(
        "the drain pool to be removed",
        lambda: not plane.exists("deployment", "loop-drain", "-n", ns),
    )
