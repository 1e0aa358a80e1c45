"""The replay check before a rollout: a new image's Job, its verdict, and the hold.

Every test starts from a registry whose workers run image 1.0.0 (converged and rolled out) and
gives it a new image. The hold is a safety net, so its negative control is here too: with the
check skipped, the same new image reaches the Deployment at once.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from durox_operator import planner
from durox_operator.model import TEMPLATE_ANNOTATION
from durox_operator.planner import Apply, DeleteJob, Event, Observed, Plan, RunJob
from durox_operator.planner._replaycheck import RETRY_BACKOFF_SECONDS, backoff
from durox_operator.planner._replayjob import JOB_TTL_SECONDS, job_name
from durox_operator.reconciler import Reconciler
from tests.unit.operator.support import registry
from tests.unit.operator.test_operator_reconciler import Events, FakeKube

NOW = "2026-01-02T03:00:00Z"
OLD, NEW, FIXED = (f"example.invalid/orders:{v}" for v in ("1.0.0", "2.0.0", "2.0.1"))


def _checked(**changes: Any) -> dict[str, Any]:
    """The support registry with the check on (support.registry skips it)."""
    body = registry(**changes)
    body["spec"]["rollout"] = {"replayCheck": {"mode": "Enabled"}}
    body["spec"]["pod"] = {
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        "nodeSelector": {"pool": "durox"},
        "env": [{"name": "APP_MODE", "value": "prod"}],
    }
    return body


def _stored(obj: Any) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    out["metadata"] |= {"uid": f"uid-{out['metadata']['name']}", "generation": 1}
    if out["kind"] == "Deployment":
        n = out["spec"].get("replicas", 1)
        out["status"] = {
            "observedGeneration": 1,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
    return out


def _converged(body: dict[str, Any]) -> Observed:
    """What a perfect cluster holds after the plan for `body` ran (and its status)."""
    result = planner.plan(body, Observed(now=NOW))
    observed = Observed(now=NOW)
    for step in result.applies:
        observed = observed.with_child(step.slot, _stored(step.obj))
    report = result.report(observed, NOW)
    assert report.status is not None
    body["status"] = report.status
    return observed


def _new_image(body: dict[str, Any], image: str = NEW) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["spec"]["image"] = image
    out["metadata"]["generation"] += 1
    return out


def _pass(body: dict[str, Any], observed: Observed) -> tuple[Plan, dict[str, Any]]:
    """Plan, then the status as the report writes it (the body keeps its previous status
    when nothing changed)."""
    result = planner.plan(body, observed)
    report = result.report(observed, observed.now or NOW)
    after = copy.deepcopy(body)
    if report.status is not None:
        after["status"] = report.status
    return result, after


def _jobs(result: Plan) -> list[dict[str, Any]]:
    return [dict(s.obj) for s in result.steps if isinstance(s, RunJob)]


def _deployment_applied(result: Plan) -> bool:
    return any(a.slot in ("deployment", "drain_deployment") for a in result.applies)


def _cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def _finished_job(
    job: dict[str, Any], *, exit_code: int, summary: dict[str, Any] | None, reason: str = ""
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    """The Job after its pod ended with `exit_code`, and that pod (with `summary` as its
    termination message)."""
    done = _stored(job)
    kind = "Complete" if exit_code == 0 else "Failed"
    done["status"] = {
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": reason or ("" if exit_code == 0 else "BackoffLimitExceeded"),
                "lastTransitionTime": "2026-01-02T03:01:00Z",
            }
        ],
        **({"completionTime": "2026-01-02T03:01:00Z"} if exit_code == 0 else {}),
    }
    terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
    if summary is not None:
        terminated["message"] = json.dumps(summary)
    pod = {
        "metadata": {"name": f"{job['metadata']['name']}-x", "labels": job["metadata"]["labels"]},
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": "replay-check", "state": {"terminated": terminated}}],
        },
    }
    return done, (pod,)


DIVERGED = {
    "format": "durox.replay-check-summary/v1",
    "ok": False,
    "exit_code": 1,
    "verdict": "DIVERGED: 3 divergence(s) (5 histories checked, 0 not); first: ...",
    "histories_checked": 5,
    "divergences": 3,
    "first_divergence": {
        "kind": "nondeterminism",
        "name": "checkout",
        "version": "1.0.0",
        "instance_id": "order-17",
        "execution_id": 1,
        "event_id": 2,
        "code": "scheduled activity 'Charge'",
        "history": "activity 'Reserve'",
        "message": "...",
    },
}
CLEAN = {**DIVERGED, "ok": True, "exit_code": 0, "divergences": 0, "first_divergence": None}
CANNOT = {**CLEAN, "ok": False, "exit_code": 2, "verdict": "cannot open the store: refused"}


def _held_by_running_check() -> tuple[dict[str, Any], Observed, dict[str, Any]]:
    """A new image, one pass: the registry (with the status written), what the cluster
    holds, and the Job the pass applied."""
    body = _checked()
    observed = _converged(body)
    result, body = _pass(_new_image(body), observed)
    (job,) = _jobs(result)
    return body, observed, job


# -- the Job -----------------------------------------------------------------------------------


def test_a_new_image_runs_a_check_job_and_leaves_the_deployment_alone() -> None:
    body = _checked()
    observed = _converged(body)
    result, after = _pass(_new_image(body), observed)
    assert not _deployment_applied(result)
    (job,) = _jobs(result)
    template = planner.plan_deployment(_new_image(body), result.config)["metadata"]  # type: ignore[arg-type]
    key = template["annotations"][TEMPLATE_ANNOTATION]
    assert job["metadata"]["name"] == job_name(body, key, 1)
    record = after["status"]["replayCheck"]
    assert record["phase"] == "Running" and record["image"] == NEW and record["attempts"] == 1
    assert record["templateHash"] == key and record["job"] == job["metadata"]["name"]
    assert record["startedAt"] == NOW
    progressing = _cond(after["status"], "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplayChecking")
    assert _cond(after["status"], "Ready")["reason"] == "ReplayChecking"
    assert _cond(after["status"], "Degraded")["status"] == "False"
    started = [s.event for s in result.steps if isinstance(s, RunJob)]
    assert [(e.type, e.reason) for e in started] == [("Normal", "ReplayCheckStarted")]
    assert NEW in started[0].message and job["metadata"]["name"] in started[0].message
    # the old workers keep the versions they serve: the new template is pending
    assert after["status"]["activeVersions"] == body["status"]["activeVersions"]


def test_the_job_runs_the_candidate_as_the_workers_would() -> None:
    body, _, job = _held_by_running_check()
    worker = planner.plan_deployment(body, planner.worker_config(body))["spec"]["template"]
    pod, spec = job["spec"]["template"]["spec"], job["spec"]
    (c,) = pod["containers"]
    (w,) = worker["spec"]["containers"]
    assert c["image"] == NEW and c["command"] == ["durox"]
    assert c["args"] == [
        "replay-check", "--app", "orders.app:app", "--json", "--max-histories", "50",
        "--timeout", "570", "--summary-file", "/dev/termination-log",
    ]  # fmt: skip
    assert c["env"] == w["env"]  # the store Secret among them, never a URL in the args
    assert {"name": "DUROX_STORE_URL", "valueFrom": {"secretKeyRef": {
        "name": "orders-store", "key": "url"}}} in c["env"]  # fmt: skip
    assert {"name": "APP_MODE", "value": "prod"} in c["env"]
    assert c["securityContext"] == w["securityContext"]
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert pod["securityContext"] == worker["spec"]["securityContext"]
    assert pod["nodeSelector"] == {"pool": "durox"}
    assert pod["automountServiceAccountToken"] is False
    assert (c["terminationMessagePath"], c["terminationMessagePolicy"]) == (
        "/dev/termination-log",
        "File",
    )
    assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == JOB_TTL_SECONDS
    assert job["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    # never counted as a worker: the workers' selector does not match its pod
    selector = planner.selector_labels(body)
    assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert job["spec"]["template"]["metadata"]["labels"]["durox.dev/registry"] == "orders"


def test_the_deadline_and_sample_size_come_from_the_spec() -> None:
    body = _checked()
    observed = _converged(body)
    new = _new_image(body)
    new["spec"]["rollout"]["replayCheck"] |= {"deadlineSeconds": 120, "maxHistories": 7}
    (job,) = _jobs(planner.plan(new, observed))
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-histories") + 1] == "7"
    assert args[args.index("--timeout") + 1] == "90"
    assert job["spec"]["activeDeadlineSeconds"] == 120


def test_job_names_fit_a_label_value() -> None:
    body = _checked()
    body["metadata"]["name"] = "x" * 52
    name = job_name(body, "0123456789abcdef", 12)
    assert len(name) <= 63 and name.endswith("-rc-0123456789-12")


# -- when a check is needed ------------------------------------------------------------------


def test_a_first_deployment_and_a_template_change_without_new_code_are_not_checked() -> None:
    body = _checked()
    first = planner.plan(body, Observed(now=NOW))
    assert _jobs(first) == [] and _deployment_applied(first)
    observed = _converged(body)
    resized = copy.deepcopy(body)
    resized["spec"]["pod"]["resources"] = {"limits": {"cpu": "1", "memory": "256Mi"}}
    result = planner.plan(resized, observed)
    assert _jobs(result) == [] and _deployment_applied(result)


def test_a_new_app_entry_is_checked_like_a_new_image() -> None:
    body = _checked()
    observed = _converged(body)
    body["spec"]["app"] = "orders.app:app_v2"
    result = planner.plan(body, observed)
    assert len(_jobs(result)) == 1 and not _deployment_applied(result)


def test_skipping_the_check_rolls_the_image_at_once_with_a_warning() -> None:
    """Negative control: without the check the unchecked image reaches the workers."""
    body = _checked()
    body["spec"]["rollout"]["replayCheck"]["mode"] = "Skip"
    observed = _converged(body)
    result, after = _pass(_new_image(body), observed)
    assert _jobs(result) == []
    (dep,) = [a for a in result.applies if a.slot == "deployment"]
    assert dep.obj["spec"]["template"]["spec"]["containers"][0]["image"] == NEW
    assert ("Warning", "ReplayCheckSkipped") in [(e.type, e.reason) for e in result.events]
    assert after["status"]["replayCheck"]["phase"] == "Skipped"
    again, _ = _pass(after, observed)
    assert ("Warning", "ReplayCheckSkipped") not in [(e.type, e.reason) for e in again.events]


# -- the verdict -------------------------------------------------------------------------------


def test_while_the_job_runs_nothing_more_is_applied() -> None:
    body, observed, job = _held_by_running_check()
    running = observed.with_replay_job(_stored(job), (), NOW)
    result, after = _pass(body, running)
    assert _jobs(result) == [] and not _deployment_applied(result)
    assert after["status"]["replayCheck"]["phase"] == "Running"
    assert planner.job_to_read(after) == job["metadata"]["name"]


def test_a_passed_check_rolls_out_and_is_not_run_again() -> None:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=0, summary=CLEAN)
    result, after = _pass(body, observed.with_replay_job(done, pods, NOW))
    (dep,) = [a for a in result.applies if a.slot == "deployment"]
    assert dep.obj["spec"]["template"]["spec"]["containers"][0]["image"] == NEW
    assert ("Normal", "ReplayCheckPassed") in [(e.type, e.reason) for e in result.events]
    record = after["status"]["replayCheck"]
    assert (record["phase"], record["historiesChecked"], record["finishedAt"]) == (
        "Passed",
        5,
        "2026-01-02T03:01:00Z",
    )
    assert planner.job_to_read(after) is None
    # the Deployment apply failed, say: the next pass rolls out on the recorded verdict
    again, _ = _pass(after, observed)
    assert _jobs(again) == [] and _deployment_applied(again)


def test_a_divergence_holds_the_rollout_and_names_the_instance() -> None:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    result, after = _pass(body, observed.with_replay_job(done, pods, NOW))
    assert not _deployment_applied(result) and _jobs(result) == []
    degraded = _cond(after["status"], "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReplayCheckFailed")
    for part in (NEW, "checkout@1.0.0 instance order-17 execution 1, event 2",
                 "code scheduled activity 'Charge'; history has activity 'Reserve'",
                 "old workers keep serving"):  # fmt: skip
        assert part in degraded["message"], (part, degraded["message"])
    assert _cond(after["status"], "Stalled")["status"] == "True"
    assert _cond(after["status"], "Ready")["reason"] == "ReplayCheckFailed"
    assert _cond(after["status"], "Progressing")["status"] == "False"
    report = result.report(observed, NOW)
    assert ("Warning", "ReplayCheckFailed") in [(e.type, e.reason) for e in report.events]
    # checked once: later passes hold on the recorded verdict and run nothing
    again, still = _pass(after, observed)
    assert _jobs(again) == [] and not _deployment_applied(again)
    assert _cond(still["status"], "Degraded")["reason"] == "ReplayCheckFailed"


def test_a_fixed_image_gets_a_check_of_its_own() -> None:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    _, failed = _pass(body, observed.with_replay_job(done, pods, NOW))
    fixed = _new_image(failed, FIXED)
    result, after = _pass(fixed, observed)
    (new_job,) = _jobs(result)
    assert new_job["metadata"]["name"] != job["metadata"]["name"]
    assert new_job["spec"]["template"]["spec"]["containers"][0]["image"] == FIXED
    assert not _deployment_applied(result)
    assert after["status"]["replayCheck"]["phase"] == "Running"
    assert _cond(after["status"], "Degraded")["status"] == "False"
    ok, pods = _finished_job(new_job, exit_code=0, summary=CLEAN)
    released, _ = _pass(after, observed.with_replay_job(ok, pods, NOW))
    (dep,) = [a for a in released.applies if a.slot == "deployment"]
    assert dep.obj["spec"]["template"]["spec"]["containers"][0]["image"] == FIXED


def test_going_back_to_the_serving_image_lifts_the_hold() -> None:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    _, failed = _pass(body, observed.with_replay_job(done, pods, NOW))
    back = _new_image(failed, OLD)
    result, after = _pass(back, observed)
    assert _jobs(result) == [] and not _deployment_applied(result)  # nothing to change
    assert _cond(after["status"], "Degraded")["status"] == "False"
    assert after["status"]["replayCheck"]["phase"] == "Failed"  # the record stays on show


def test_a_new_candidate_while_a_check_runs_replaces_its_job() -> None:
    body, observed, job = _held_by_running_check()
    newer = _new_image(body, FIXED)
    result, _ = _pass(newer, observed.with_replay_job(_stored(job), (), NOW))
    deletes = [s for s in result.steps if isinstance(s, DeleteJob)]
    assert [(d.name, d.uid) for d in deletes] == [
        (job["metadata"]["name"], "uid-" + job["metadata"]["name"])
    ]
    (new_job,) = _jobs(result)
    assert new_job["spec"]["template"]["spec"]["containers"][0]["image"] == FIXED


def test_a_job_deleted_before_its_verdict_is_applied_again() -> None:
    body, observed, job = _held_by_running_check()
    result, _ = _pass(body, observed.with_replay_job(None, (), NOW))
    assert [j["metadata"]["name"] for j in _jobs(result)] == [job["metadata"]["name"]]
    assert not _deployment_applied(result)


# -- a check that could not run ----------------------------------------------------------------


def _errored(summary: dict[str, Any] | None, exit_code: int = 2, reason: str = "") -> Any:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=exit_code, summary=summary, reason=reason)
    result, after = _pass(body, observed.with_replay_job(done, pods, NOW))
    return result, after, observed, done


def test_exit_2_is_an_error_retried_with_backoff_never_a_pass() -> None:
    result, after, observed, done = _errored(CANNOT)
    assert not _deployment_applied(result) and _jobs(result) == []
    degraded = _cond(after["status"], "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReplayCheckError")
    assert "cannot open the store: refused" in degraded["message"]
    assert "this is not a pass" in degraded["message"]
    record = after["status"]["replayCheck"]
    assert (record["phase"], record["retryAfter"]) == ("Error", "2026-01-02T03:01:30Z")
    # before the retry is due: hold, nothing new
    early = observed.with_replay_job(done, (), "2026-01-02T03:01:29Z")
    waiting, _ = _pass(after, early)
    assert _jobs(waiting) == [] and not _deployment_applied(waiting)
    # due: the old Job goes, attempt 2 runs
    due = observed.with_replay_job(done, (), "2026-01-02T03:01:30Z")
    retry, later = _pass(after, due)
    assert [s.name for s in retry.steps if isinstance(s, DeleteJob)] == [done["metadata"]["name"]]
    (job2,) = _jobs(retry)
    assert job2["metadata"]["name"].endswith("-2")
    assert later["status"]["replayCheck"]["attempts"] == 2
    assert not _deployment_applied(retry)
    # attempt 2 fails the same way: the wait doubles
    done2, pods2 = _finished_job(job2, exit_code=2, summary=CANNOT)
    _, again = _pass(later, observed.with_replay_job(done2, pods2, "2026-01-02T03:02:00Z"))
    assert again["status"]["replayCheck"]["retryAfter"] == "2026-01-02T03:02:00Z"


def test_backoff_grows_and_then_stays() -> None:
    assert [backoff(n) for n in range(1, 8)] == [30, 60, 120, 300, 600, 600, 600]
    assert RETRY_BACKOFF_SECONDS[-1] == 600


def test_exit_1_without_a_summary_is_an_error_not_a_divergence() -> None:
    """An uncaught exception also exits 1: only the summary makes it a divergence."""
    _, after, _, _ = _errored(None, exit_code=1)
    assert _cond(after["status"], "Degraded")["reason"] == "ReplayCheckError"
    assert "exit status 1" in after["status"]["replayCheck"]["message"]


def test_a_deadline_is_an_error() -> None:
    _, after, _, _ = _errored(None, exit_code=137, reason="DeadlineExceeded")
    assert after["status"]["replayCheck"]["phase"] == "Error"
    _, after, _, _ = _errored(None, exit_code=137)
    assert "exit status 137" in after["status"]["replayCheck"]["message"]


def test_a_pod_that_cannot_start_is_an_error_before_the_deadline() -> None:
    body, observed, job = _held_by_running_check()
    stuck = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "replay-check",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
                }
            ],
        },
    }
    _, after = _pass(body, observed.with_replay_job(_stored(job), (stuck,), NOW))
    assert after["status"]["replayCheck"]["phase"] == "Error"
    assert "ImagePullBackOff" in after["status"]["replayCheck"]["message"]
    assert after["status"]["replayCheck"]["retryAfter"] == "2026-01-02T03:00:30Z"


# -- the drain pool, the status on other paths, the reconciler --------------------------------


def test_the_drain_pool_is_held_too() -> None:
    body = _checked(drain={"enabled": True})
    observed = _converged(body)
    result = planner.plan(_new_image(body), observed)
    assert len(_jobs(result)) == 1 and not _deployment_applied(result)


def test_a_refused_pass_keeps_the_record() -> None:
    body, observed, _ = _held_by_running_check()
    refused = planner.plan(body, observed.with_unreadable("HTTP 500"))
    report = refused.report(observed, NOW, failure="HTTP 500")
    assert report.status is not None
    assert report.status["replayCheck"] == body["status"]["replayCheck"]


def test_the_reconciler_applies_the_job_reads_it_and_holds_on_a_divergence() -> None:
    kube = FakeKube()
    body = _checked()
    body["kind"] = "OrchestrationRegistry"
    kube.put(body)
    events = Events()
    reconciler = Reconciler(kube, events)
    reconciler.reconcile_by_name("shop", "orders")
    dep = kube.objects[("Deployment", "shop", "orders")]
    dep["status"] = _stored(dep)["status"]
    stored = kube.objects[("OrchestrationRegistry", "shop", "orders")]
    stored["spec"]["image"] = NEW
    kube.writes.clear()

    reconciler.reconcile_by_name("shop", "orders")
    assert ("apply", "Job") in kube.writes and ("apply", "Deployment") not in kube.writes
    name = stored["status"]["replayCheck"]["job"]
    job = kube.objects[("Job", "shop", name)]
    done, (pod,) = _finished_job(job, exit_code=1, summary=DIVERGED)
    kube.put(done)
    kube.put({**pod, "kind": "Pod", "metadata": {**pod["metadata"], "namespace": "shop"}})
    kube.writes.clear()

    reconciler.reconcile_by_name("shop", "orders")
    assert ("apply", "Deployment") not in kube.writes and ("apply", "Job") not in kube.writes
    image = kube.objects[("Deployment", "shop", "orders")]["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == OLD
    assert _cond(stored["status"], "Degraded")["reason"] == "ReplayCheckFailed"
    assert ("Warning", "ReplayCheckFailed") in events.posted
    # a pass with nothing under way reads no Job
    kube.writes.clear()
    reconciler.reconcile_by_name("shop", "orders")
    assert kube.writes == []


def test_steps_carry_only_known_kinds() -> None:
    body, observed, job = _held_by_running_check()
    result = planner.plan(_new_image(body, FIXED), observed.with_replay_job(_stored(job), (), NOW))
    assert all(isinstance(s, Apply | Event | RunJob | DeleteJob) for s in result.steps)


def test_the_same_image_in_a_changed_template_is_checked_again() -> None:
    """The documented way to re-run a failed check: any change of the pod template."""
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    _, failed = _pass(body, observed.with_replay_job(done, pods, NOW))
    again = copy.deepcopy(failed)
    again["spec"]["pod"]["annotations"] = {"recheck": "1"}
    result, after = _pass(again, observed)
    (new_job,) = _jobs(result)
    assert new_job["metadata"]["name"] != job["metadata"]["name"]
    assert new_job["spec"]["template"]["spec"]["containers"][0]["image"] == NEW
    assert after["status"]["replayCheck"]["phase"] == "Running"
    assert not _deployment_applied(result)


def test_a_failed_check_posts_one_event_naming_both_flips() -> None:
    # Degraded=True and Progressing=False flip for the same cause: one Warning, not a Warning
    # and a Normal Event with the same reason.
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    result, _ = _pass(body, observed.with_replay_job(done, pods, NOW))
    report = result.report(observed, NOW)
    failed = [e for e in report.events if e.reason == "ReplayCheckFailed"]
    assert [e.type for e in failed] == ["Warning"], failed
    assert failed[0].message.startswith("Degraded=True, Progressing=False: "), failed[0].message
    assert "found a divergence" in failed[0].message


def test_a_held_registry_says_what_holds_it_in_reconciling() -> None:
    body, observed, job = _held_by_running_check()
    done, pods = _finished_job(job, exit_code=1, summary=DIVERGED)
    _, after = _pass(body, observed.with_replay_job(done, pods, NOW))
    reconciling = _cond(after["status"], "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Stalled")
    assert "ReplayCheckFailed" in reconciling["message"], reconciling["message"]
