"""The planner deciding from the store (issue 12): activation on the workers' own word, the
removal guard, stranded instances and the status a person reads, from constructed
`StoreObservation` records shaped as `ProviderAdmin.observe` returns them."""

from __future__ import annotations

import copy
import dataclasses
from datetime import timedelta
from typing import Any

from durox.providers import StoreObservation
from durox_operator import planner
from durox_operator.model import TEMPLATE_ANNOTATION
from durox_operator.planner import Observed, Plan
from tests.unit.operator.support import T0, registry, store, usage, worker
from tests.unit.operator.test_operator_plan import (
    NOW,
    _converge,
    _new_image_and_version,
    _rolled_out,
    _rolling,
    _stored,
    _with_status,
)

NEW = {"checkout": ["1.0.0", "1.9.0", "1.10.0", "1.11.0"], "refund": ["2.0.0"]}
"""What a worker of the new image (`_new_image_and_version`) registers."""


def _rolled_out_upgrade() -> tuple[dict[str, Any], Observed]:
    """checkout@1.10.0 active, the spec now wants 1.11.0 from a new image, and Kubernetes says
    every worker runs the new template: only the workers' word is left to wait for."""
    body = registry()
    observed = _converge(body)
    body = _new_image_and_version(body)
    first = planner.plan(body, observed)
    done = observed.with_child("configmap", _stored(first.applies[0].obj))
    done = done.with_child("deployment", _rolled_out(_stored(first.applies[1].obj)))
    return body, done


def _condition(status: Any, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def _held(result: Plan) -> tuple[str, ...]:
    assert result.versions is not None
    return result.versions.held


# -- activation on the workers' own word -------------------------------------------------------


def test_a_rolled_out_version_is_activated_once_every_live_worker_registers_it() -> None:
    body, done = _rolled_out_upgrade()
    result = planner.plan(body, done.with_store(store(worker("w1", NEW), worker("w2", NEW))))
    assert _held(result) == ()
    assert ("event", "ActivatedVersions") in [("event", s.reason) for s in result.events]


def test_a_live_worker_without_the_version_holds_it_after_the_rollout() -> None:
    body, done = _rolled_out_upgrade()
    result = planner.plan(body, done.with_store(store(worker("w1", NEW), worker("w2"))))
    assert _held(result) == ("checkout",)
    assert result.versions is not None and result.versions.workers_say is not None
    assert "do not register checkout@1.11.0 (w2)" in result.versions.workers_say
    status = result.report(done, NOW).status
    assert status is not None
    progressing = _condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "HoldingVersions")
    assert "until every live worker registers it" in progressing["message"]


def test_no_live_worker_is_no_word() -> None:
    body, done = _rolled_out_upgrade()
    assert _held(planner.plan(body, done.with_store(store()))) == ("checkout",)
    stale_only = store(worker("w1", NEW, live=False))
    assert _held(planner.plan(body, done.with_store(stale_only))) == ("checkout",)


def test_activation_waits_for_the_same_activity_handlers_on_every_worker() -> None:
    body, done = _rolled_out_upgrade()
    newer = worker("w1", NEW, activities=("Charge", "Refund", "SendReceipt"))
    result = planner.plan(body, done.with_store(store(newer, worker("w2", NEW))))
    assert _held(result) == ("checkout",)
    assert result.versions is not None
    assert "different activity or session handlers (SendReceipt)" in str(
        result.versions.workers_say
    )


def test_activation_waits_for_the_same_session_handlers_on_every_worker() -> None:
    body, done = _rolled_out_upgrade()
    newer = worker("w1", NEW, sessions=("Upload",))
    result = planner.plan(body, done.with_store(store(newer, worker("w2", NEW))))
    assert _held(result) == ("checkout",)
    assert "session:Upload" in str(result.versions.workers_say)  # type: ignore[union-attr]


def test_a_terminating_pod_counts_until_its_record_goes() -> None:
    body, done = _rolled_out_upgrade()
    old = worker("w-old", node="orders-5d8-old", live=False)
    seen = store(worker("w1", NEW), old)
    terminating = {"metadata": {"name": "orders-5d8-old", "deletionTimestamp": NOW}}
    assert _held(planner.plan(body, done.with_pods([terminating]).with_store(seen))) == (
        "checkout",
    )
    # The pod is gone: its stale record no longer counts.
    assert _held(planner.plan(body, done.with_store(seen))) == ()


def test_the_drain_pools_workers_must_register_it_too() -> None:
    body = registry(drain={"enabled": True, "supportedVersions": {"max": "0.9.0"}})
    observed = _converge(body)
    body = _new_image_and_version(body)
    first = planner.plan(body, observed)
    done = observed
    for step in first.applies:
        stored = _stored(step.obj)
        done = done.with_child(
            step.slot, _rolled_out(stored) if stored["kind"] == "Deployment" else stored
        )
    drain_worker = worker("d1", node="orders-drain-x", replay=("0.0.0", "0.9.0"))
    result = planner.plan(body, done.with_store(store(worker("w1", NEW), drain_worker)))
    assert _held(result) == ("checkout",)
    drain_upgraded = worker("d1", NEW, node="orders-drain-x", replay=("0.0.0", "0.9.0"))
    result = planner.plan(body, done.with_store(store(worker("w1", NEW), drain_upgraded)))
    assert _held(result) == ()


def test_kubernetes_rollout_stays_a_precondition() -> None:
    """Workers that already register the version do not release it while pods still roll."""
    body = registry()
    observed = _converge(body)
    body = _new_image_and_version(body)
    first = planner.plan(body, observed)
    rolling = observed.with_child("configmap", _stored(first.applies[0].obj))
    rolling = rolling.with_child("deployment", _rolling(_stored(first.applies[1].obj)))
    seen = store(worker("w1", NEW), worker("w2", NEW))
    assert _held(planner.plan(body, rolling.with_store(seen))) == ("checkout",)


def test_an_unobservable_store_leaves_kubernetes_alone_to_decide() -> None:
    body, done = _rolled_out_upgrade()
    why = ("StoreNotObservable", "the store is a SQLite file inside the workers' pods")
    result = planner.plan(body, done.with_store(None, why))
    assert _held(result) == ()  # as before the store was read: the rollout alone
    report = result.report(done, NOW)
    assert report.status is not None
    seen = _condition(report.status, "StoreObserved")
    assert (seen["status"], seen["reason"]) == ("False", "StoreNotObservable")
    assert _condition(report.status, "Stranded")["status"] == "Unknown"
    assert [(e.type, e.reason) for e in report.events] == [("Warning", "StoreNotObservable")]


def test_a_store_read_without_news_adds_observed_conditions() -> None:
    body, done = _rolled_out_upgrade()
    result = planner.plan(body, done.with_store(store(worker("w1", NEW))))
    status = result.report(done, NOW).status
    assert status is not None
    assert _condition(status, "StoreObserved")["status"] == "True"
    assert _condition(status, "Stranded")["reason"] == "NoneStranded"


# -- stranded instances --------------------------------------------------------------------------


def test_instances_of_a_version_no_live_worker_registers_are_stranded() -> None:
    seen = store(
        worker("w1", {"checkout": ["1.10.0"], "refund": ["2.0.0"]}),
        versions=(
            usage("checkout", "1.0.0", {"0.2.0": 4}),
            usage("checkout", "1.10.0", {"0.2.0": 9}),
        ),
    )
    left = planner.stranded(seen)
    assert dict(left.counts) == {("checkout@1.0.0", "0.2.0"): 4}
    assert left.message() == (
        "4 instances no live worker can run: 4 of checkout@1.0.0 pinned to engine 0.2.0"
    )


def test_instances_pinned_outside_every_replay_range_are_stranded_per_pin() -> None:
    seen = store(
        worker("w1", replay=("0.2.0", "0.3.0")),
        versions=(usage("checkout", "1.0.0", {"0.1.0": 2, "0.2.0": 5, None: 1}),),
    )
    assert dict(planner.stranded(seen).counts) == {("checkout@1.0.0", "0.1.0"): 2}
    # A drain worker whose range holds the old pin serves them.
    drain = worker("d1", replay=("0.0.0", "0.1.9"))
    assert planner.stranded(store(*seen.workers, drain, versions=seen.versions)).total == 0


def test_stranded_is_a_condition_with_a_warning_event_when_it_appears() -> None:
    body = registry()
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    seen = store(
        worker("w1", {"checkout": ["1.10.0"], "refund": ["2.0.0"]}),
        versions=(usage("checkout", "1.0.0", {"0.2.0": 3}),),
    )
    report = planner.plan(body, observed.with_store(seen)).report(observed, NOW)
    assert report.status is not None
    cond = _condition(report.status, "Stranded")
    assert (cond["status"], cond["reason"]) == ("True", "InstancesStranded")
    assert "3 of checkout@1.0.0 pinned to engine 0.2.0" in cond["message"]
    assert ("Warning", "InstancesStranded") in [(e.type, e.reason) for e in report.events]


# -- status a person reads ---------------------------------------------------------------------


def test_the_status_counts_instances_per_version_and_the_workers() -> None:
    body = registry()
    observed = _converge(body)
    seen = store(
        worker("w1"),
        worker("w2", {"checkout": ["1.0.0"], "refund": ["2.0.0"]}),
        worker("w3", live=False),
        versions=(
            usage("checkout", "1.0.0", {"0.2.0": 4}, oldest="i-old"),
            usage("checkout", "1.10.0", {"0.2.0": 9}),
        ),
    )
    status = planner.plan(body, observed.with_store(seen)).report(observed, NOW).status
    assert status is not None
    assert status["instances"] == 13
    assert status["oldestVersions"] == "checkout@1.0.0"
    assert status["workerRecords"] == {"live": 2, "ready": 1, "stale": 1}
    checkout = next(v for v in status["versions"] if v["name"] == "checkout")
    assert checkout["running"] == 13 and checkout["registered"] is True
    assert checkout["inUse"][0] == {
        "version": "1.0.0",
        "running": 4,
        "oldestRunning": "2025-12-30T03:00:00Z",
        "oldestInstance": "i-old",
        "registered": True,
    }
    assert [u["version"] for u in checkout["inUse"]] == ["1.0.0", "1.10.0"]
    refund = next(v for v in status["versions"] if v["name"] == "refund")
    assert refund["running"] == 0 and refund["inUse"] == []


# -- the removal guard ---------------------------------------------------------------------------


def _new_image_without(body: dict[str, Any], version: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["spec"]["image"] = "example.invalid/orders:2.0.0"
    body["spec"]["orchestrations"][0]["versions"].remove(version)
    return body


def _first_new_worker_reports(body: dict[str, Any]) -> tuple[dict[str, Any], Observed]:
    """The new template applied, one worker of it up and reporting no checkout@1.0.0, while
    4 instances still run on 1.0.0."""
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    upgraded = _new_image_without(body, "1.0.0")
    first = planner.plan(upgraded, observed)
    (dep,) = [a for a in first.applies if a.slot == "deployment"]
    rolling = observed.with_child("deployment", _rolling(_stored(dep.obj)))
    seen = store(
        worker("old-1"),
        worker("old-2"),
        worker("new-1", {"checkout": ["1.9.0", "1.10.0"], "refund": ["2.0.0"]}),
        versions=(usage("checkout", "1.0.0", {"0.2.0": 4}),),
    )
    return upgraded, rolling.with_store(seen)


def test_a_new_worker_lacking_a_version_in_use_pauses_the_rollout() -> None:
    body, rolling = _first_new_worker_reports(registry())
    result = planner.plan(body, rolling)
    assert result.guard == {"checkout@1.0.0": 4}
    (dep,) = [a for a in result.applies if a.slot == "deployment"]
    assert dep.obj["spec"]["paused"] is True
    report = result.report(rolling.with_child("deployment", dep.obj), NOW)
    assert report.status is not None
    degraded = _condition(report.status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "VersionInUse")
    assert "lack checkout@1.0.0 (4 not ended)" in degraded["message"]
    assert ("Warning", "VersionInUse") in [(e.type, e.reason) for e in report.events]


def test_the_guard_lifts_once_the_version_has_no_instances_left() -> None:
    body, rolling = _first_new_worker_reports(registry())
    assert isinstance(rolling.store, StoreObservation)
    finished = store(*rolling.store.workers)
    result = planner.plan(body, rolling.with_store(finished))
    assert result.guard is None
    assert all("paused" not in a.obj["spec"] for a in result.applies if a.slot == "deployment")


def test_allow_version_removal_overrides_the_guard() -> None:
    body, rolling = _first_new_worker_reports(registry())
    body["spec"]["rollout"] = {**body["spec"]["rollout"], "allowVersionRemoval": True}
    result = planner.plan(body, rolling)
    assert result.guard is None
    assert all("paused" not in a.obj["spec"] for a in result.applies)


def test_no_guard_outside_a_rollout() -> None:
    """After a finished rollout a missing version is stranded work, not a rollout to stop."""
    body = registry()
    observed = _converge(body)
    seen = store(
        worker("w1", {"checkout": ["1.10.0"], "refund": ["2.0.0"]}),
        versions=(usage("checkout", "1.0.0", {"0.2.0": 4}),),
    )
    assert planner.plan(body, observed.with_store(seen)).guard is None


# -- the new template's workers, matched, not inferred -------------------------------------------


def _pod(name: str, deployment: Any, **meta: Any) -> dict[str, Any]:
    """A pod of `deployment`'s template (its digest annotation), named `name`."""
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    digest = template[TEMPLATE_ANNOTATION]
    return {"metadata": {"name": name, "annotations": {TEMPLATE_ANNOTATION: digest}, **meta}}


def test_every_pod_carries_the_digest_of_the_template_it_runs() -> None:
    (dep,) = [a.obj for a in planner.plan(registry(), Observed()).applies if a.slot == "deployment"]
    pod_digest = dep["spec"]["template"]["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    assert pod_digest == dep["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    new = planner.plan(_new_image_and_version(registry()), Observed())
    (moved,) = [a.obj for a in new.applies if a.slot == "deployment"]
    assert moved["spec"]["template"]["metadata"]["annotations"][TEMPLATE_ANNOTATION] != pod_digest


def test_the_guard_judges_the_new_templates_workers_not_an_old_worker_lacking_a_version() -> None:
    """An old pod's worker lacks checkout@1.0.0, whose 4 instances are stranded already; the
    new template's worker registers it again. Inferred ("whoever lacks one is new") the guard
    would pause the very rollout that brings the code back; matched by pod, it does not."""
    body = registry()
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    upgraded = _new_image_and_version(body)
    (old_dep,) = [a.obj for a in planner.plan(body, Observed()).applies if a.slot == "deployment"]
    (dep,) = [a for a in planner.plan(upgraded, observed).applies if a.slot == "deployment"]
    rolling = observed.with_child("deployment", _rolling(_stored(dep.obj)))
    pods = [_pod("orders-old-1", old_dep), _pod("orders-new-1", dep.obj)]
    seen = store(
        worker(
            "w-old", {"checkout": ["1.9.0", "1.10.0"], "refund": ["2.0.0"]}, node="orders-old-1"
        ),
        worker("w-new", NEW, node="orders-new-1"),
        versions=(usage("checkout", "1.0.0", {"0.2.0": 4}),),
    )
    result = planner.plan(upgraded, rolling.with_pods(pods).with_store(seen))
    assert result.guard is None
    assert all("paused" not in a.obj["spec"] for a in result.applies if a.slot == "deployment")
    # The negative control: the same records on pods of the new template pause the rollout.
    both_new = [_pod("orders-old-1", dep.obj), _pod("orders-new-1", dep.obj)]
    paused = planner.plan(upgraded, rolling.with_pods(both_new).with_store(seen))
    assert paused.guard == {"checkout@1.0.0": 4}


def test_activation_waits_for_every_pod_of_the_new_template_to_report() -> None:
    """Kubernetes says both new pods are ready, but only one has written its record: the one
    that reports registers 1.11.0, and that is not every worker's word."""
    body, done = _rolled_out_upgrade()
    assert done.deployment is not None
    pods = [_pod("orders-new-1", done.deployment), _pod("orders-new-2", done.deployment)]
    one = store(worker("w1", NEW, node="orders-new-1"))
    result = planner.plan(body, done.with_pods(pods).with_store(one))
    assert _held(result) == ("checkout",)
    assert "1 of 2 pods of the new template have no live worker record yet (orders-new-2)" in str(
        result.versions.workers_say  # type: ignore[union-attr]
    )
    both = store(worker("w1", NEW, node="orders-new-1"), worker("w2", NEW, node="orders-new-2"))
    assert _held(planner.plan(body, done.with_pods(pods).with_store(both))) == ()


def test_the_handlers_every_worker_must_register_are_the_new_templates() -> None:
    """Both new pods report 1.11.0 with SendReceipt; a live worker the pods do not claim (run
    beside the pool) registers the version but not the handler the new code calls."""
    body, done = _rolled_out_upgrade()
    assert done.deployment is not None
    pods = [_pod("orders-new-1", done.deployment), _pod("orders-new-2", done.deployment)]
    acts = ("Charge", "Refund", "SendReceipt")
    seen = store(
        worker("w1", NEW, node="orders-new-1", activities=acts),
        worker("w2", NEW, node="orders-new-2", activities=acts),
        worker("w-beside", NEW, node="laptop"),
    )
    result = planner.plan(body, done.with_pods(pods).with_store(seen))
    assert _held(result) == ("checkout",)
    assert "(SendReceipt) than the new template's: w-beside" in str(
        result.versions.workers_say  # type: ignore[union-attr]
    )


# -- what the image really registers -------------------------------------------------------------


def _unlisted() -> dict[str, Any]:
    body = registry()
    body["spec"]["orchestrations"] = [{"name": "checkout"}]
    return body


def test_a_spec_without_versions_learns_them_from_the_workers() -> None:
    body = _unlisted()
    observed = _converge(body)
    seen = store(worker("w1", {"checkout": ["1.0.0", "1.1.0"]}))
    result = planner.plan(body, observed.with_store(seen))
    assert result.versions is not None and result.versions.desired == {"checkout": "1.1.0"}
    status = result.report(observed, NOW).status
    assert status is not None
    match = _condition(status, "VersionsMatch")
    assert (match["status"], match["reason"]) == ("True", "Learned")
    assert "checkout@1.0.0,1.1.0" in match["message"]
    assert status["activeVersions"] == "checkout@1.1.0"


def test_a_learned_new_version_is_held_until_every_worker_registers_it() -> None:
    body = _unlisted()
    old = store(worker("w1", {"checkout": ["1.0.0"]}))
    observed = _converge(body)
    observed = _converge(body, observed.with_store(old))  # publishes checkout@1.0.0
    assert planner.published_versions(observed.configmap) == {"checkout": "1.0.0"}
    new = worker("w2", {"checkout": ["1.0.0", "1.1.0"]})
    both = store(worker("w1", {"checkout": ["1.0.0"]}), new)
    result = planner.plan(body, observed.with_store(both))
    assert _held(result) == ("checkout",)
    assert result.versions is not None and result.versions.desired == {"checkout": "1.1.0"}
    assert _held(planner.plan(body, observed.with_store(store(new)))) == ()


def test_a_listed_version_no_live_worker_registers_is_a_mismatch() -> None:
    body = registry()
    observed = _converge(body)
    body = _with_status(body, planner.plan(body, observed), observed)
    seen = store(worker("w1", {"checkout": ["1.0.0", "1.10.0", "1.11.0"], "refund": ["2.0.0"]}))
    report = planner.plan(body, observed.with_store(seen)).report(observed, NOW)
    assert report.status is not None
    match = _condition(report.status, "VersionsMatch")
    assert (match["status"], match["reason"]) == ("False", "VersionsMismatch")
    assert match["message"] == (
        "checkout: the spec lists 1.9.0 that no live worker registers; "
        "checkout: live workers register 1.11.0 that the spec does not list"
    )
    assert ("Warning", "VersionsMismatch") in [(e.type, e.reason) for e in report.events]


def test_versions_are_not_judged_during_a_rollout() -> None:
    body = registry()
    observed = _converge(body)
    body = _new_image_and_version(body)
    seen = store(worker("w1"))
    result = planner.plan(body, observed.with_store(seen))
    status = result.report(observed, NOW).status
    assert status is not None
    assert _condition(status, "VersionsMatch")["reason"] == "RollingOut"
    done = planner.plan(registry(), observed.with_store(seen)).report(observed, NOW).status
    assert done is not None and _condition(done, "VersionsMatch")["reason"] == "AsListed"


# -- drains that finish themselves ---------------------------------------------------------------


def _auto(**drain: Any) -> dict[str, Any]:
    return registry(drain={"mode": "Auto", "supportedVersions": {"max": "0.9.0"}, **drain})


def _pinned(pin: str, n: int) -> StoreObservation:
    return store(worker("w1"), versions=(usage("checkout", "1.0.0", {pin: n, "0.2.0": 5}),))


def _steps(result: Plan) -> list[tuple[str, str]]:
    out = []
    for s in result.steps:
        if isinstance(s, planner.Event):
            out.append(("event", s.reason))
        elif isinstance(s, planner.Apply | planner.Delete):
            out.append((s.slot, s.event.reason))
        elif isinstance(s, planner.HandOver):
            out.append((s.slot, "handover"))
        elif isinstance(s, planner.StartGate):
            out.append(("start gate", s.instance_id))
        else:
            out.append(("job", type(s).__name__))
    return out


def test_auto_drain_starts_the_pool_when_work_is_pinned_outside_the_main_range() -> None:
    body = _auto()
    observed = _converge(body).with_store(store(worker("w1")))
    assert observed.drain_deployment is None  # nothing pinned outside: no pool
    result = planner.plan(body, observed.with_store(_pinned("0.0.5", 3)))
    assert _steps(result) == [
        ("event", "DrainStarted"),
        ("drain_configmap", "CreatedConfigMap"),
        ("drain_deployment", "CreatedDeployment"),
    ]
    assert "3 pinned to 0.0.5" in next(s.message for s in result.events)
    status = result.report(observed, NOW).status
    assert status is not None
    assert status["drain"] == {
        "enabled": True,
        "workers": "0/1",
        "mode": "Auto",
        "pinned": {"0.0.5": 3},
    }


def test_auto_drain_waits_its_delay_once_nothing_is_left_then_removes_the_pool() -> None:
    body = _auto(removeAfterSeconds=60)
    running = _converge(body, _converge(body).with_store(_pinned("0.0.5", 3)))
    assert running.drain_deployment is not None
    empty = running.with_store(store(worker("w1")))
    result = planner.plan(body, empty)
    assert _steps(result) == [("event", "DrainEmpty")]
    status = result.report(empty, NOW).status
    assert status is not None and status["drain"]["emptySince"] == "2026-01-02T03:00:00Z"
    body["status"] = status

    later = dataclasses.replace(store(worker("w1")), observed_at=T0 + timedelta(seconds=59))
    assert _steps(planner.plan(body, running.with_store(later))) == []
    done = dataclasses.replace(later, observed_at=T0 + timedelta(seconds=60))
    assert _steps(planner.plan(body, running.with_store(done))) == [
        ("event", "DrainFinished"),
        ("drain_deployment", "DeletedDeployment"),
        ("drain_configmap", "DeletedConfigMap"),
    ]


def test_work_returning_during_the_delay_keeps_the_pool_and_clears_the_clock() -> None:
    body = _auto()
    running = _converge(body, _converge(body).with_store(_pinned("0.0.5", 3)))
    body["status"] = {"drain": {"enabled": True, "emptySince": "2026-01-02T02:00:00Z"}}
    result = planner.plan(body, running.with_store(_pinned("0.0.4", 1)))
    assert _steps(result) == []
    status = result.report(running, NOW).status
    assert status is not None and "emptySince" not in status["drain"]


def test_auto_drain_without_the_store_leaves_the_pool_as_it_is() -> None:
    body = _auto()
    running = _converge(body, _converge(body).with_store(_pinned("0.0.5", 3)))
    unknown = running.with_store(None, ("StoreUnreachable", "down"))
    assert _steps(planner.plan(body, unknown)) == []
    assert _steps(planner.plan(body, _converge(body).with_store(None, ("X", "y")))) == []


def test_manual_drain_reports_the_pins_but_is_not_started_by_them() -> None:
    body = registry(drain={"enabled": False, "supportedVersions": {"max": "0.9.0"}})
    observed = _converge(body)
    result = planner.plan(body, observed.with_store(_pinned("0.0.5", 3)))
    assert result.drain is False and _steps(result) == []
    status = result.report(observed, NOW).status
    assert status is not None
    assert status["drain"] == {
        "enabled": False,
        "workers": "0/0",
        "mode": "Manual",
        "pinned": {"0.0.5": 3},
    }


def test_versions_are_not_judged_while_a_version_waits_for_the_workers_word() -> None:
    body, done = _rolled_out_upgrade()
    result = planner.plan(body, done.with_store(store(worker("w1", NEW), worker("w2"))))
    assert _held(result) == ("checkout",)
    status = result.report(done, NOW).status
    assert status is not None and _condition(status, "VersionsMatch")["reason"] == "RollingOut"


def test_a_store_condition_turning_unknown_posts_no_event() -> None:
    body = registry()
    observed = _converge(body)
    seen = observed.with_store(store(worker("w1", {"checkout": ["1.0.0"], "refund": ["2.0.0"]})))
    body = _with_status(body, planner.plan(body, seen), seen)
    assert _condition(body["status"], "VersionsMatch")["status"] == "False"
    gone = observed.with_store(None, ("StoreUnreachable", "down"))
    report = planner.plan(body, gone).report(gone, NOW)
    assert [(e.type, e.reason) for e in report.events] == [("Warning", "StoreUnreachable")]


def test_waiting_for_the_workers_word_is_an_event_once_per_reason() -> None:
    body, done = _rolled_out_upgrade()
    seen = done.with_store(store(worker("w1", NEW), worker("w2")))
    result = planner.plan(body, seen)
    [event] = [s for s in result.events if s.reason == "WaitingForWorkers"]
    assert "do not register checkout@1.11.0 (w2)" in event.message
    body = _with_status(body, result, seen)
    assert [s.reason for s in planner.plan(body, seen).events] == []
    other = done.with_store(store(worker("w1", NEW), worker("w3")))
    assert [s.reason for s in planner.plan(body, other).events] == ["WaitingForWorkers"]
