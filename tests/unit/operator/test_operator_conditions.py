"""Conditions users and tools understand: kstatus' Ready, Reconciling and Stalled beside
Available, Progressing and Degraded; the causes a Deployment hides (pods it cannot create,
pods that cannot run) named within seconds; Ready workers counted, not created pods."""

from __future__ import annotations

from typing import Any

import pytest

from durox_operator import planner
from durox_operator.model import REASONS, Condition
from durox_operator.planner import Versions
from tests.unit.operator.support import deployment, registry

NOW = "2026-01-02T03:04:05Z"

QUOTA = {
    "type": "ReplicaFailure",
    "status": "True",
    "reason": "FailedCreate",
    "message": 'pods "orders-7d4b9-x" is forbidden: error looking up service account '
    'shop/orders-worker: serviceaccount "orders-worker" not found',
}
DEADLINE = {
    "type": "Progressing",
    "status": "False",
    "reason": "ProgressDeadlineExceeded",
    "message": "ReplicaSet orders-7d4b9 has timed out progressing.",
}


def _pod(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    waiting = {"reason": reason} | ({"message": message} if message else {})
    return {"containerStatuses": [{"name": "worker", "state": {"waiting": waiting}}]}


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def _kstatus(status: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    c = _conds(status)
    return (c["Ready"], c["Reconciling"], c["Stalled"])


HELD = Versions(
    desired={"checkout": "1.10.0"},
    active={"checkout": "1.9.0"},
    held=("checkout",),
    waiting_for="the pod template is changing",
)


@pytest.mark.parametrize(
    ("deployment_", "kwargs", "expected"),
    [
        (deployment(), {}, (("True", "WorkersAvailable"), ("False", "RolloutComplete"),
                            ("False", "AsExpected"))),
        (None, {}, (("False", "Creating"), ("True", "Creating"), ("False", "AsExpected"))),
        (deployment(generation=2, observed=1), {},
         (("False", "RollingOut"), ("True", "RollingOut"), ("False", "AsExpected"))),
        (deployment(updated=1), {"versions": HELD},
         (("False", "HoldingVersions"), ("True", "HoldingVersions"), ("False", "AsExpected"))),
        (deployment(available=1, ready=1), {},
         (("False", "RollingOut"), ("True", "RollingOut"), ("False", "AsExpected"))),
        (deployment(available=0, ready=0, conditions=[QUOTA]), {},
         (("False", "ReplicaFailure"), ("False", "Stalled"), ("True", "ReplicaFailure"))),
        (deployment(conditions=[DEADLINE]), {},
         (("False", "RolloutStalled"), ("False", "Stalled"), ("True", "RolloutStalled"))),
        (deployment(), {"apply_error": "HTTP 403"},
         (("False", "ApplyFailed"), ("False", "Stalled"), ("True", "ApplyFailed"))),
        (None, {"error": planner.InvalidSpec("bad")},
         (("False", "InvalidSpec"), ("False", "Stalled"), ("True", "InvalidSpec"))),
        (deployment(), {"pods": [_pod("orders-a", **_waiting("CrashLoopBackOff"))]},
         (("False", "PodsFailing"), ("False", "Stalled"), ("True", "PodsFailing"))),
    ],
    ids=["healthy", "creating", "rolling", "holding", "not-ready", "replica-failure",
         "deadline", "apply-failed", "invalid", "crash-loop"],
)  # fmt: skip
def test_kstatus_conditions_follow_the_others(
    deployment_: dict[str, Any] | None, kwargs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    status = planner.plan_status(registry(), deployment_, NOW, **kwargs)
    assert _kstatus(status) == expected
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    # kstatus reads Reconciling=True before Stalled=True: both at once would hide a failure
    conds = _conds(status)
    assert not (conds["Reconciling"][0] == conds["Stalled"][0] == "True")
    assert (conds["Stalled"][0] == "True") == (conds["Degraded"][0] == "True")


def test_every_derived_reason_is_in_the_vocabulary() -> None:
    for cond in planner.with_kstatus(
        [
            Condition("Available", "False", "WorkersUnavailable", "1 of 2 workers available"),
            Condition("Progressing", "False", "RolloutComplete", "done"),
            Condition("Degraded", "False", "AsExpected", "no problems seen"),
        ]
    ):
        assert cond.reason in REASONS[cond.type]
    with pytest.raises(ValueError, match="vocabulary"):
        Condition("Stalled", "True", "Bored", "nothing")


def test_workers_lost_after_a_rollout_are_reconciling_not_ready() -> None:
    status = planner.plan_status(registry(), deployment(available=1, ready=1, updated=2), NOW)
    assert _conds(status)["Available"] == ("False", "WorkersUnavailable")
    assert _kstatus(status)[1][0] == "True"


def test_a_replica_failure_names_its_cause_before_the_deadline_message() -> None:
    dep = deployment(available=0, ready=0, conditions=[DEADLINE, QUOTA])
    status = planner.plan_status(registry(), dep, NOW)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ReplicaFailure"
    assert degraded["message"] == f"FailedCreate: {QUOTA['message']}"
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["message"] == degraded["message"]


def test_a_resolved_replica_failure_is_not_reported() -> None:
    resolved = dict(QUOTA, status="False")
    assert planner.replica_failure(deployment(conditions=[resolved])) is None
    assert planner.replica_failure(None) is None


@pytest.mark.parametrize(
    ("pod", "found"),
    [
        (_pod("p", **_waiting("ImagePullBackOff", 'Back-off pulling image "x:1"')),
         'pod p: container worker: ImagePullBackOff: Back-off pulling image "x:1"'),
        (_pod("p", **_waiting("ErrImagePull")), "pod p: container worker: ErrImagePull"),
        (_pod("p", **_waiting("CreateContainerConfigError", 'secret "s" not found')),
         'pod p: container worker: CreateContainerConfigError: secret "s" not found'),
        (_pod("p", initContainerStatuses=[
            {"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
         "pod p: container init: CrashLoopBackOff"),
        (_pod("p", phase="Failed", reason="Evicted", message="low on memory"),
         "pod p failed: Evicted: low on memory"),
        (_pod("p", **_waiting("ContainerCreating")), None),
        (_pod("p", phase="Pending", conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]), None),
        (_pod("p", phase="Running"), None),
    ],
    ids=["pull-backoff", "pull-error", "config-error", "init-crash", "evicted", "creating",
         "unschedulable", "running"],
)  # fmt: skip
def test_pod_failures(pod: dict[str, Any], found: str | None) -> None:
    assert planner.pod_failure(pod) == found


def test_pod_failures_count_the_failing_and_name_the_first() -> None:
    pods = [
        _pod("orders-c", **_waiting("CrashLoopBackOff")),
        _pod("orders-a", phase="Running"),
        _pod("orders-b", **_waiting("ImagePullBackOff")),
        {"metadata": {"name": "orders-0", "deletionTimestamp": NOW}, "status": {"phase": "Failed"}},
    ]
    assert planner.pod_failures(pods) == (
        "2 of 3 pods failing; pod orders-b: container worker: ImagePullBackOff"
    )
    assert planner.pod_failures([_pod("orders-a", phase="Running")]) is None


def test_a_failing_drain_pool_is_degraded_and_named() -> None:
    body = registry(drain={"enabled": True})
    drain = deployment(replicas=1, updated=1, ready=0, available=0)
    status = planner.plan_status(
        body,
        deployment(),
        NOW,
        drain=drain,
        drain_pods=[_pod("orders-drain-x", **_waiting("ErrImagePull"))],
    )
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["reason"], degraded["message"]) == (
        "PodsFailing",
        "drain pool: 1 of 1 pods failing; pod orders-drain-x: container worker: ErrImagePull",
    )


def test_messages_count_ready_workers_not_created_pods() -> None:
    # three pods exist, one of them Pending: two workers, not three
    dep = deployment(replicas=3, updated=1, ready=2, available=2, total=3)
    status = planner.plan_status(registry(replicas=3), dep, NOW)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["message"] == "1 of 3 workers updated, 2 ready"
    assert status["workers"] == "2/3"


def test_kstatus_flips_post_no_events_of_their_own() -> None:
    body = registry()
    body["status"] = planner.plan_status(body, deployment(), NOW)
    after = planner.plan_status(body, deployment(available=0, ready=0, conditions=[QUOTA]), NOW)
    flipped = {(c.type, c.status) for c in planner.condition_events(body, after)}
    assert flipped == {("Available", "False"), ("Progressing", "True"), ("Degraded", "True")}


def test_a_paused_registry_pauses_its_deployments_and_says_so() -> None:
    body = registry(paused=True, drain={"enabled": True})
    config = planner.worker_config(body)
    assert planner.plan_deployment(body, config)["spec"]["paused"] is True
    assert planner.plan_deployment(body, config, drain=True)["spec"]["paused"] is True
    resumed = registry()
    assert "paused" not in planner.plan_deployment(resumed, planner.worker_config(resumed))["spec"]

    rolling = deployment(generation=2, observed=2, updated=0)
    status = planner.plan_status(registry(paused=True), rolling, NOW, versions=HELD)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["reason"], progressing["message"]) == (
        "RolloutPaused",
        "rollout paused (spec.paused): holding checkout@1.9.0 (wants 1.10.0) until every worker "
        "runs the new pod template; 0 of 2 workers updated, 2 ready",
    )
    assert _kstatus(status)[1] == ("True", "RolloutPaused")  # kstatus: InProgress
    # nothing to roll: pausing changes nothing
    status = planner.plan_status(registry(paused=True), deployment(), NOW)
    assert _conds(status)["Progressing"] == ("False", "RolloutComplete")


def test_a_resumed_deployment_is_drift_while_the_registry_is_paused() -> None:
    body = registry(paused=True)
    planned = planner.plan_deployment(body, planner.worker_config(body))
    observed = dict(planned, spec=dict(planned["spec"], paused=False))  # kubectl rollout resume
    assert planner.drift(planned, observed) == ["spec.paused (was False)"]
