"""The worker configuration file a registry publishes, and the part of it that needs a restart."""

from __future__ import annotations

from typing import Any

import yaml

from durox.worker_config import (
    RESTART_FIELDS,
    OrchestrationPolicy,
    Ramp,
    ReplayVersions,
    WorkerConfig,
)
from durox_operator.model import Obj
from durox_operator.planner._names import DEFAULT_HTTP_PORT, InvalidSpec, child_name, content_hash
from durox_operator.planner._spec import (
    OrchestrationSpec,
    policy_of,
    replay_range,
    spec_of,
    worker_of,
)
from durox_operator.planner._versions import Versions


def _policy(orchestration: OrchestrationSpec, versions: Versions | None) -> OrchestrationPolicy:
    name = orchestration["name"]
    if versions is not None and name in versions.held:
        ramp = versions.ramps.get(name)
        return OrchestrationPolicy(
            name=name,
            policy="exact",
            version=versions.active[name],
            ramp=None if ramp is None else Ramp(version=ramp[0], percent=ramp[1]),
        )
    return OrchestrationPolicy(
        name=name,
        policy=policy_of(orchestration),
        version=orchestration.get("version"),
    )


def worker_config(
    registry: Obj, versions: Versions | None = None, drain: bool = False
) -> WorkerConfig:
    """The worker configuration file's content; raises InvalidSpec when it cannot exist.

    NAMEs `versions` holds are pinned (`exact`) at their previously active version. The drain
    pool's file (`drain=True`) is the same but for the replay range: `spec.drain`'s range when
    given, else drain mode (`drain: true`: every pinned version is fetched)."""
    spec = spec_of(registry)
    replay = replay_range(spec, drain)
    drain_mode = drain and replay is None
    worker = worker_of(spec)
    settings: dict[str, Any] = {}
    if "orchestrationConcurrency" in worker:
        settings["orchestration_concurrency"] = worker["orchestrationConcurrency"]
    if "activityConcurrency" in worker:
        settings["activity_concurrency"] = worker["activityConcurrency"]
    try:
        unrevised = WorkerConfig(
            pool=spec.get("pool") or child_name(registry),
            orchestrations=[_policy(o, versions) for o in spec.get("orchestrations", [])],
            supported_replay_versions=(
                None
                if replay is None
                else ReplayVersions(min=replay.get("min", "0.0.0"), max=replay["max"])
            ),
            drain=drain_mode,
            http_port=worker.get("httpPort", DEFAULT_HTTP_PORT),
            **settings,
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidSpec(str(exc)) from exc
    revision = content_hash(unrevised.model_dump(mode="json"))
    return unrevised.model_copy(update={"revision": revision})


def render_worker_config(config: WorkerConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=True)


def startup_digest(config: WorkerConfig) -> str:
    """Digest of the settings a worker reads only at start-up (its `RESTART_FIELDS`).

    Stamped on the pod template, so changing one of them rolls the pods, while policies and
    replay ranges, which the worker applies live, leave the template untouched."""
    return content_hash({field: getattr(config, field) for field in RESTART_FIELDS})
