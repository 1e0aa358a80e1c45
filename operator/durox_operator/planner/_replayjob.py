"""The replay check's Job: how a candidate image is run, and how its verdict is read back.

The Job must check the candidate exactly as its workers would run it (image, app, environment
with the store Secret, security settings, resources, placement), or a pass would say nothing
about the rollout. Its verdict is read from the pod's termination message, a one-line summary
the check writes (`durox replay-check --summary-file`), so the operator needs no `pods/log`
permission and never parses logs. The decision what to do with a verdict is `_replaycheck`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from durox_operator.model import FIELD_MANAGER, REGISTRY_LABEL, TEMPLATE_ANNOTATION, Obj
from durox_operator.planner._failures import pod_failure
from durox_operator.planner._names import CONTAINER, child_name, owner_reference
from durox_operator.planner._spec import RegistrySpec, ReplayCheckSpec, RolloutSpec

DEFAULT_DEADLINE_SECONDS: Final = 600
DEFAULT_MAX_HISTORIES: Final = 50
JOB_TTL_SECONDS: Final = 3600
"""How long a finished check's Job (and its pod, with its logs) stays for a person to read."""
TIMEOUT_MARGIN_SECONDS: Final = 30
"""The check's own `--timeout` ends this long before the Job's deadline, so that a slow check
reports itself (exit 2, with what it left) rather than being killed without a word."""
SUMMARY_PATH: Final = "/dev/termination-log"
JOB_LABEL: Final = "durox.dev/replay-check-job"
CHECK_CONTAINER: Final = "replay-check"


@dataclass(frozen=True)
class Settings:
    mode: Literal["Enabled", "Skip"] = "Enabled"
    deadline: int = DEFAULT_DEADLINE_SECONDS
    max_histories: int = DEFAULT_MAX_HISTORIES


def settings_of(spec: RegistrySpec) -> Settings:
    rollout: RolloutSpec = spec.get("rollout", {})
    rc: ReplayCheckSpec = rollout.get("replayCheck", {})
    return Settings(
        mode=rc.get("mode", "Enabled"),
        deadline=int(rc.get("deadlineSeconds", DEFAULT_DEADLINE_SECONDS)),
        max_histories=int(rc.get("maxHistories", DEFAULT_MAX_HISTORIES)),
    )


def worker_of(deployment: Obj) -> Mapping[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return cast(Mapping[str, Any], next(c for c in containers if c["name"] == CONTAINER))


def app_of(container: Mapping[str, Any]) -> str | None:
    args = list(container.get("args", []))
    return str(args[args.index("--app") + 1]) if "--app" in args[:-1] else None


def job_name(registry: Obj, template: str, attempt: int) -> str:
    """`<registry>-rc-<hash>-<attempt>`: at most 63 characters, the limit of the label the
    Job controller puts on its pods."""
    suffix = f"-rc-{template[:10]}-{attempt}"
    return child_name(registry)[: 63 - len(suffix)] + suffix


def _labels(registry: Obj, name: str) -> dict[str, str]:
    """Not the workers' selector, so the pod never counts as a worker; managed-by and the
    registry label, so the operator's pod watch starts a pass when the check ends."""
    return {
        "app.kubernetes.io/name": "durox-replay-check",
        "app.kubernetes.io/instance": f"{child_name(registry)}-rc",  # not the workers' instance
        "app.kubernetes.io/component": "replay-check",
        "app.kubernetes.io/part-of": "durox",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        REGISTRY_LABEL: child_name(registry),
        JOB_LABEL: name,
    }


def plan_job(
    registry: Obj, desired: Obj, template: str, attempt: int, settings: Settings
) -> dict[str, Any]:
    """The Job that checks `desired`'s image: the worker pod's image, app, environment (the
    store Secret among it), security settings, resources and placement, and a deadline."""
    name = job_name(registry, template, attempt)
    pod = desired["spec"]["template"]["spec"]
    worker = worker_of(desired)
    timeout = max(settings.deadline - TIMEOUT_MARGIN_SECONDS, settings.deadline // 2, 1)
    container: dict[str, Any] = {
        "name": CHECK_CONTAINER,
        "image": worker["image"],
        "command": ["durox"],
        "args": [
            "replay-check",
            "--app",
            app_of(worker) or "",
            "--json",
            "--max-histories",
            str(settings.max_histories),
            "--timeout",
            str(timeout),
            "--summary-file",
            SUMMARY_PATH,
        ],
        "env": [dict(e) for e in worker.get("env", [])],
        "terminationMessagePath": SUMMARY_PATH,
        "terminationMessagePolicy": "File",
        "securityContext": dict(worker.get("securityContext", {})),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    for key in ("imagePullPolicy", "resources"):
        if key in worker:
            container[key] = worker[key]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": dict(pod.get("securityContext", {})),
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    for key in ("nodeSelector", "tolerations", "serviceAccountName"):
        if key in pod:
            pod_spec[key] = pod[key]
    labels = _labels(registry, name)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": registry["metadata"]["namespace"],
            "labels": labels,
            "annotations": {TEMPLATE_ANNOTATION: template},
            "ownerReferences": [owner_reference(registry)],
        },
        "spec": {
            "backoffLimit": 0,  # a retry is the operator's decision, with its own backoff
            "activeDeadlineSeconds": settings.deadline,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# -- judging a Job -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    phase: Literal["Passed", "Failed", "Error"]
    message: str
    finished_at: str | None
    summary: Mapping[str, Any] | None = None


def _terminated(pods: Sequence[Obj]) -> Mapping[str, Any] | None:
    for pod in pods:
        for c in pod.get("status", {}).get("containerStatuses", []):
            if c.get("name") == CHECK_CONTAINER and c.get("state", {}).get("terminated"):
                return cast(Mapping[str, Any], c["state"]["terminated"])
    return None


def _summary(terminated: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    try:
        doc = json.loads((terminated or {}).get("message") or "")
    except ValueError:
        return None
    return cast(Mapping[str, Any], doc) if isinstance(doc, dict) and "exit_code" in doc else None


def _job_condition(job: Obj, kind: str) -> Mapping[str, Any] | None:
    for c in job.get("status", {}).get("conditions", []):
        if c.get("type") == kind and c.get("status") == "True":
            return cast(Mapping[str, Any], c)
    return None


def _divergence_text(summary: Mapping[str, Any]) -> str:
    first = summary.get("first_divergence")
    if not isinstance(first, Mapping):
        return str(summary.get("verdict", "a divergence"))
    where = f", event {first['event_id']}" if first.get("event_id") is not None else ""
    return (
        f"{first.get('name')}@{first.get('version')} instance {first.get('instance_id')} "
        f"execution {first.get('execution_id')}{where}: code {first.get('code')}; history has "
        f"{first.get('history')} ({summary.get('divergences')} divergence(s) in "
        f"{summary.get('histories_checked')} histories checked)"
    )


def judge(job: Obj, pods: Sequence[Obj]) -> Outcome | None:
    """The check's outcome, or None while it runs. Only a summary that says so makes a
    divergence (exit status 1 is also what an uncaught exception gives), and only a Job that
    completed makes a pass."""
    terminated = _terminated(pods)
    summary = _summary(terminated)
    exit_code = None if terminated is None else terminated.get("exitCode")
    complete, failed = _job_condition(job, "Complete"), _job_condition(job, "Failed")
    finished = job.get("status", {}).get("completionTime") or (
        (complete or failed or {}).get("lastTransitionTime")
    )
    if complete is not None:
        checked = (summary or {}).get("histories_checked", "?")
        return Outcome("Passed", f"no divergence ({checked} histories checked)", finished, summary)
    if failed is not None:
        if summary is not None and summary.get("exit_code") == 1 and exit_code == 1:
            return Outcome("Failed", _divergence_text(summary), finished, summary)
        if summary is not None:
            why = f"exit status {exit_code}: {summary.get('verdict', '')}"
        elif failed.get("reason") == "DeadlineExceeded":
            why = "the Job's deadline came before the check ended"
        elif terminated is not None:
            why = f"exit status {exit_code} ({terminated.get('reason', 'no summary')})"
        else:
            why = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".rstrip(": ")
        return Outcome("Error", why, finished, summary)
    for pod in pods:  # a pod that cannot start would otherwise wait for the deadline
        if _terminated([pod]) is None:
            stuck = pod_failure(pod)
            if stuck is not None:
                return Outcome("Error", stuck, None)
    return None
