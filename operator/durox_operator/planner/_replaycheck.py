"""The replay check before a rollout: a candidate image replays the store's histories first.

A bad orchestration change corrupts every running instance the moment new workers replay
their histories, and no rollout strategy undoes that. So when a registry's pod template brings
a new image or app, the Deployment is not touched until a Kubernetes Job, running the
candidate image with the workers' own store Secret, pod security settings and resources, has
run `durox replay-check` against the store and found no divergence. Until then the old workers
keep serving.

The result is kept in `status.replayCheck`, keyed by the candidate's pod-template hash: a
candidate is checked once (its verdict stands until the template changes), and a fixed image
(a new hash) gets a check of its own. A check that could not run (exit status 2, its deadline,
a pod that cannot start) is not a verdict: it is retried with a growing backoff, and never
counts as a pass. `spec.rollout.replayCheck.mode: Skip` is the emergency exit.

The Job and the reading of its verdict are `_replayjob`'s. Everything here is a function of
its arguments; the times it needs come from the cluster's objects and the pass's `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from durox_operator.model import TEMPLATE_ANNOTATION, Condition, Obj
from durox_operator.planner._replayjob import (
    Settings,
    app_of,
    judge,
    plan_job,
    settings_of,
    worker_of,
)
from durox_operator.planner._spec import spec_of
from durox_operator.planner._status import with_kstatus

RETRY_BACKOFF_SECONDS: Final = (30, 60, 120, 300, 600)
"""Wait after the 1st, 2nd, ... check that could not run; the last repeats."""

Phase = Literal["Running", "Passed", "Failed", "Error", "Skipped"]
UNDER_WAY: Final = frozenset({"Running", "Error"})
"""Phases whose Job the reconciler reads: one still running, or one to clean up on a retry."""


@dataclass(frozen=True)
class RunJob:
    """Server-side apply the check's Job (creates it; applying it again changes nothing)."""

    obj: Mapping[str, Any]
    event: Event


@dataclass(frozen=True)
class DeleteJob:
    """Delete a check's Job (and, in the background, its pod) if it is still `uid`."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Gate:
    """What the replay check says of this pass.

    `hold`: leave both worker Deployments as they are (the candidate is not cleared);
    `record`: `status.replayCheck` (None: there never was a check); `condition`: the
    Progressing or Degraded condition the check imposes while it holds; `steps`: Jobs to run
    or delete and Events to post."""

    hold: bool = False
    record: Mapping[str, Any] | None = None
    condition: Condition | None = None
    steps: tuple[RunJob | DeleteJob | Event, ...] = ()


# -- reading what the cluster holds ------------------------------------------------------------


def previous_record(registry: Obj) -> Mapping[str, Any] | None:
    record = registry.get("status", {}).get("replayCheck")
    return cast(Mapping[str, Any], record) if record else None


def job_to_read(registry: Obj) -> str | None:
    """The Job a pass must read before planning: the one of a check running or to retry."""
    record = previous_record(registry)
    if record is None or record.get("phase") not in UNDER_WAY:
        return None
    job = record.get("job")
    return str(job) if job else None


def _candidate(desired: Obj, observed: Obj | None) -> bool:
    """Whether `desired` brings code the serving workers do not run: a new image or app in a
    new pod template. A first Deployment has no old workers to protect; a template change that
    keeps the code (resources, env) replays nothing new."""
    if observed is None:
        return False
    want = desired["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    have = observed.get("metadata", {}).get("annotations", {}).get(TEMPLATE_ANNOTATION)
    if want == have:
        return False
    try:
        old = worker_of(observed)
    except (KeyError, StopIteration):
        return True  # not ours to read: check rather than trust
    new = worker_of(desired)
    return bool(old.get("image") != new["image"] or app_of(old) != app_of(new))


# -- deciding ----------------------------------------------------------------------------------


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _format(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th check that could not run."""
    return RETRY_BACKOFF_SECONDS[min(max(attempts, 1), len(RETRY_BACKOFF_SECONDS)) - 1]


def _due(record: Mapping[str, Any], now: str) -> bool:
    after = record.get("retryAfter")
    if not after or not now:
        return False
    return _parse(now) >= _parse(str(after))


def gate(
    registry: Obj,
    desired: Obj,
    observed: Obj | None,
    job: Obj | None,
    pods: Sequence[Obj],
    now: str,
) -> Gate:
    """Whether the main Deployment `desired` may replace `observed` now, and what to do
    meanwhile. `job` and `pods` are the Job named in the previous record (when it is under
    way) and its pods; `now` is the pass's time (RFC 3339; empty: retries are never due)."""
    before = previous_record(registry)
    if not _candidate(desired, observed):
        return Gate(record=before)  # nothing new to check: the last verdict stays on show
    spec = spec_of(registry)
    settings = settings_of(spec)
    template = str(desired["metadata"]["annotations"][TEMPLATE_ANNOTATION])
    worker = worker_of(desired)
    image = str(worker["image"])
    base: dict[str, Any] = {"templateHash": template, "image": image, "app": app_of(worker) or ""}
    mine = before if before is not None and before.get("templateHash") == template else None
    cleanup = _cleanup(registry, before, job, keep=None if mine is None else mine.get("job"))

    if settings.mode == "Skip":
        skipped = "skipped: spec.rollout.replayCheck.mode is Skip"
        record: dict[str, Any] = {**base, "phase": "Skipped", "message": skipped}
        news: tuple[Event, ...] = ()
        if mine is None or mine.get("phase") != "Skipped":
            news = (
                Event(
                    "Warning",
                    "ReplayCheckSkipped",
                    f"rolling out image {image} without a replay check "
                    "(spec.rollout.replayCheck.mode: Skip)",
                ),
            )
        return Gate(record=record, steps=(*cleanup, *news))

    if mine is None:  # a new candidate: its first check
        return _start(registry, desired, template, base, 1, settings, now, cleanup)
    phase = mine.get("phase")
    if phase == "Passed":
        return Gate(record=mine, steps=cleanup)
    if phase == "Failed":
        return Gate(True, mine, _failed(mine), cleanup)
    attempts = int(mine.get("attempts", 1))
    if phase == "Error":
        if _due(mine, now):  # the failed attempt's Job goes, the next one runs
            retired = _cleanup(registry, before, job, keep=None)
            return _start(registry, desired, template, base, attempts + 1, settings, now, retired)
        return Gate(True, mine, _error(mine), cleanup)
    if phase == "Skipped":  # the skip was lifted before the rollout: check after all
        return _start(registry, desired, template, base, attempts, settings, now, cleanup)

    # Running: read its Job
    if job is None:  # gone before a verdict (deleted by hand): run it again
        return _start(registry, desired, template, base, attempts, settings, now, cleanup)
    outcome = judge(job, pods)
    if outcome is None:
        return Gate(True, mine, _running(mine, settings))
    record = {**mine, "phase": outcome.phase, "message": outcome.message}
    if outcome.finished_at:
        record["finishedAt"] = outcome.finished_at
    if outcome.summary is not None:
        record["historiesChecked"] = int(outcome.summary.get("histories_checked", 0))
        record["divergences"] = int(outcome.summary.get("divergences", 0))
    if outcome.phase == "Passed":
        return Gate(
            record=record,
            steps=(
                Event(
                    "Normal",
                    "ReplayCheckPassed",
                    f"replay check of image {image} passed: {outcome.message}; rolling out",
                ),
            ),
        )
    if outcome.phase == "Failed":
        steps: tuple[Event, ...] = ()
        if _was_degraded(registry):  # no Degraded flip, so no condition Event: post our own
            steps = (Event("Warning", "ReplayCheckFailed", _failed(record).message),)
        return Gate(True, record, _failed(record), steps)
    since = _parse(outcome.finished_at or now) if (outcome.finished_at or now) else None
    if since is not None:
        record["retryAfter"] = _format(since + timedelta(seconds=backoff(attempts)))
    steps = ()
    if _was_degraded(registry):
        steps = (Event("Warning", "ReplayCheckError", _error(record).message),)
    return Gate(True, record, _error(record), steps)


def _cleanup(
    registry: Obj, before: Mapping[str, Any] | None, job: Obj | None, keep: Any
) -> tuple[DeleteJob, ...]:
    """Delete the previous record's Job when it is not the current candidate's (a new image
    arrived while it ran, or it is being retried): it is under way and the operator read it."""
    if before is None or job is None or before.get("job") == keep:
        return ()
    meta = job.get("metadata", {})
    if meta.get("deletionTimestamp") or not meta.get("uid"):
        return ()
    return (DeleteJob(registry["metadata"]["namespace"], str(meta["name"]), str(meta["uid"])),)


def _start(
    registry: Obj,
    desired: Obj,
    template: str,
    base: Mapping[str, Any],
    attempt: int,
    settings: Settings,
    now: str,
    cleanup: tuple[DeleteJob, ...],
) -> Gate:
    obj = plan_job(registry, desired, template, attempt, settings)
    name = obj["metadata"]["name"]
    record = {
        **base,
        "phase": "Running",
        "message": f"checking image {base['image']} against the store's histories",
        "job": name,
        "attempts": attempt,
        **({"startedAt": now} if now else {}),
    }
    retry = f" (attempt {attempt})" if attempt > 1 else ""
    event = Event(
        "Normal",
        "ReplayCheckStarted",
        f"replay check of image {base['image']} started{retry}: Job {name}; the Deployment "
        "waits for its verdict",
    )
    if cleanup and cleanup[0].name == name:  # a Job of this very name goes: apply next pass
        return Gate(True, {**record, "job": name}, _running(record, settings), cleanup)
    return Gate(True, record, _running(record, settings), (*cleanup, RunJob(obj, event)))


def _running(record: Mapping[str, Any], settings: Settings) -> Condition:
    return Condition(
        "Progressing",
        "True",
        "ReplayChecking",
        f"replay check of image {record.get('image')} (Job {record.get('job')}, deadline "
        f"{settings.deadline} s): the Deployment waits for its verdict",
    )


def _failed(record: Mapping[str, Any]) -> Condition:
    return Condition(
        "Degraded",
        "True",
        "ReplayCheckFailed",
        f"the replay check of image {record.get('image')} found a divergence: "
        f"{record.get('message')}. The Deployment is left as it was and the old workers keep "
        "serving; release a fixed image (or set spec.rollout.replayCheck.mode: Skip)",
    )


def _error(record: Mapping[str, Any]) -> Condition:
    retry = record.get("retryAfter")
    when = f"; retrying after {retry}" if retry else ""
    return Condition(
        "Degraded",
        "True",
        "ReplayCheckError",
        f"the replay check of image {record.get('image')} could not run (attempt "
        f"{record.get('attempts', 1)}, Job {record.get('job')}): {record.get('message')}{when}. "
        "The Deployment is left as it was; this is not a pass",
    )


def _was_degraded(registry: Obj) -> bool:
    return any(
        c.get("type") == "Degraded" and c.get("status") == "True"
        for c in registry.get("status", {}).get("conditions", [])
    )


# -- the status --------------------------------------------------------------------------------

_OVERRIDABLE: Final = frozenset({"AsExpected", "RolloutStalled", "VersionInUse"})
"""Degraded reasons a held check takes the place of: none of them says more than the check
(the old workers serve; the new template is not rolling). A failed write or an invalid spec
does, and keeps its place."""


def with_replay_check(
    registry: Obj, status: dict[str, Any], check: Gate | None, now: str
) -> dict[str, Any]:
    """`status` with `replayCheck` (the last check's record) and, while the check holds the
    rollout, its Progressing or Degraded condition in place of the one the Deployments gave,
    kstatus' three derived again."""
    record = check.record if check is not None else previous_record(registry)
    if record is None:
        return status
    status = {**status, "replayCheck": dict(record)}
    if check is None or check.condition is None:
        return status
    conditions = [dict(c) for c in status.get("conditions", [])]
    by_type = {c["type"]: c for c in conditions}
    if not {"Available", "Progressing", "Degraded"} <= by_type.keys():
        return status
    cond = check.condition
    if cond.type == "Degraded" and by_type["Degraded"]["reason"] not in _OVERRIDABLE:
        return status
    degraded = by_type["Degraded"]
    if (  # a failed write, a bad spec, failing pods: theirs comes first
        cond.type == "Progressing"
        and degraded["status"] == "True"
        and degraded["reason"] not in _OVERRIDABLE
    ):
        return status
    three = {t: _condition(by_type[t]) for t in ("Available", "Progressing", "Degraded")}
    three[cond.type] = cond
    if cond.type == "Progressing" and three["Degraded"].reason in _OVERRIDABLE:
        three["Degraded"] = Condition("Degraded", "False", "AsExpected", "no problems seen")
    if cond.type == "Degraded":  # nothing rolls: say why in Progressing too
        three["Progressing"] = Condition("Progressing", "False", cond.reason, cond.message)
    derived = with_kstatus([three["Available"], three["Progressing"], three["Degraded"]])
    previous = {c["type"]: c for c in registry.get("status", {}).get("conditions", [])}
    generation = registry["metadata"].get("generation", 0)
    replaced = {}
    for c in derived:
        was = previous.get(c.type)
        since = (
            was["lastTransitionTime"] if was is not None and was.get("status") == c.status
            else now
        )  # fmt: skip
        replaced[c.type] = c.to_dict(generation, since)
    status["conditions"] = [replaced.get(c["type"], c) for c in conditions]
    return status


def _condition(c: Mapping[str, Any]) -> Condition:
    return Condition(c["type"], c["status"], c["reason"], c["message"])
