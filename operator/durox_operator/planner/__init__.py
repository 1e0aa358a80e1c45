"""Pure planning: an OrchestrationRegistry (plus what we observed) in, desired objects out.

Everything the operator decides lives here, as functions of their arguments only: no client, no
kopf, no clock (the time comes in as `now`). That keeps every decision unit-testable, and it is
what makes reconciling idempotent: the same registry always plans byte-identical children, and a
content hash on each child lets the reconciler see "nothing changed" and write nothing.

Two kinds of change are kept apart on purpose. Version policies and the replay range live in
the worker configuration file, a ConfigMap the worker re-reads live; nothing about them reaches
the pod template, so changing a policy never restarts a worker. Image, app entry, pod settings
and the few file settings a worker reads only at start-up (pool, concurrency, port: the
worker's `RESTART_FIELDS`) reach the pod template, so changing them rolls the Deployment.

The two meet in an upgrade: a version change that arrives with a new template is held back
(`plan_versions`) until every worker runs that template, because older workers lack the new
version's handlers.

The decisions are split by subject into private modules; import them from here, the stable
surface: `_spec` (typed views of the registry's spec), `_names` (children's names, labels,
digest), `_versions` (which versions to activate or hold), `_config` (the worker file),
`_children` (the ConfigMap and Deployment), `_store` (what the store's observation says:
workers' word, stranded instances), `_drift` (which applied fields a child no longer
holds), `_rollout` (reading a Deployment's progress), `_replaycheck` (whether a new image's
replay check holds its rollout) and `_replayjob` (that check's Job and its verdict), `_ramp`
(gates, ramps, rollbacks), `_failures` (pods that cannot be created or cannot run), `_status`
(conditions, kstatus' among them, status, Events), and `_plan`, which puts them together:
`plan(registry, observed) -> Plan`, the one call the reconciler makes.
"""

from durox_operator.planner._children import (
    controlled_by,
    needs_apply,
    plan_configmap,
    plan_deployment,
    planned_anew,
)
from durox_operator.planner._config import render_worker_config, startup_digest, worker_config
from durox_operator.planner._drift import differences, drift, quantity
from durox_operator.planner._failures import pod_failure, pod_failures, replica_failure
from durox_operator.planner._names import (
    CONTAINER,
    DEFAULT_HTTP_PORT,
    DRAIN_SUFFIX,
    RUN_AS_USER,
    InvalidSpec,
    child_name,
    content_hash,
    labels,
    owner_reference,
    selector_labels,
)
from durox_operator.planner._plan import (
    SLOTS,
    Apply,
    Delete,
    Event,
    HandOver,
    Observed,
    Plan,
    Report,
    Slot,
    Step,
    plan,
    replicas_released,
)
from durox_operator.planner._ramp import (
    Figures,
    GateSeen,
    Reads,
    Safe,
    SafeSeen,
    StartGate,
    analyse,
    plan_safe,
    reads,
)
from durox_operator.planner._replaycheck import (
    DeleteJob,
    Gate,
    RunJob,
    job_to_read,
    with_replay_check,
)
from durox_operator.planner._replaycheck import gate as replay_gate
from durox_operator.planner._replayjob import JOB_LABEL as REPLAY_JOB_LABEL
from durox_operator.planner._replayjob import judge, plan_job
from durox_operator.planner._rollout import rollout_pending
from durox_operator.planner._spec import (
    DEFAULT_DRAIN_REPLICAS,
    RegistrySpec,
    allow_version_removal,
    drain_enabled,
    drain_replicas,
    operator_secret,
    spec_of,
)
from durox_operator.planner._status import (
    activation_event,
    condition_events,
    observe_conditions,
    plan_status,
    status_changed,
    status_patch,
    store_conditions,
    store_status,
    with_kstatus,
)
from durox_operator.planner._store import (
    StoreView,
    Stranded,
    in_use_lacking,
    registered_versions,
    serving,
    stranded,
    workers_lack,
)
from durox_operator.planner._versions import (
    Versions,
    active_version,
    active_versions,
    desired_versions,
    format_versions,
    parse_versions,
    plan_versions,
    published_versions,
)

__all__ = [
    "CONTAINER",
    "DEFAULT_DRAIN_REPLICAS",
    "DEFAULT_HTTP_PORT",
    "DRAIN_SUFFIX",
    "REPLAY_JOB_LABEL",
    "RUN_AS_USER",
    "SLOTS",
    "Apply",
    "Delete",
    "DeleteJob",
    "Event",
    "Figures",
    "Gate",
    "GateSeen",
    "HandOver",
    "InvalidSpec",
    "Observed",
    "Plan",
    "Reads",
    "RegistrySpec",
    "Report",
    "RunJob",
    "Safe",
    "SafeSeen",
    "Slot",
    "StartGate",
    "Step",
    "StoreView",
    "Stranded",
    "Versions",
    "activation_event",
    "active_version",
    "active_versions",
    "allow_version_removal",
    "analyse",
    "child_name",
    "condition_events",
    "content_hash",
    "controlled_by",
    "desired_versions",
    "differences",
    "drain_enabled",
    "drain_replicas",
    "drift",
    "format_versions",
    "in_use_lacking",
    "job_to_read",
    "judge",
    "labels",
    "needs_apply",
    "observe_conditions",
    "operator_secret",
    "owner_reference",
    "parse_versions",
    "plan",
    "plan_configmap",
    "plan_deployment",
    "plan_job",
    "plan_safe",
    "plan_status",
    "plan_versions",
    "planned_anew",
    "pod_failure",
    "pod_failures",
    "published_versions",
    "quantity",
    "reads",
    "registered_versions",
    "render_worker_config",
    "replay_gate",
    "replica_failure",
    "replicas_released",
    "rollout_pending",
    "selector_labels",
    "serving",
    "spec_of",
    "startup_digest",
    "status_changed",
    "status_patch",
    "store_conditions",
    "store_status",
    "stranded",
    "with_kstatus",
    "with_replay_check",
    "worker_config",
    "workers_lack",
]
