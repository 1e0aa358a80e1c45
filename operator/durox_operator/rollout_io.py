"""The store calls behind safe rollouts: read a gate instance and a ramp step's outcomes
before planning, start a gate orchestration when the plan says so.

Kept apart from the reconciler so that it only gains two hooks: everything here goes through
the registry's open store connection (`StoreObserver.call`) and every failure is logged and
absorbed. A read that fails leaves the plan without it: a gate not seen is started again (its
instance id is fixed, so that is harmless), and a ramp step whose window was not read neither
advances nor rolls back. A start that fails is tried again by the next pass, which does not
find the instance.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from durox import Client
from durox.errors import InstanceAlreadyExistsError
from durox_operator import planner
from durox_operator.model import Obj
from durox_operator.store import StoreObserver, StoreUnobservable

logger = logging.getLogger(__name__)


def read(
    stores: StoreObserver, key: tuple[str, str], registry: Obj, observed: planner.Observed
) -> planner.Observed:
    """`observed` with what `planner.reads(registry)` asks for, when the store was observed."""
    wanted = planner.reads(registry)
    if observed.store is None or wanted == planner.Reads(None, ()):
        return observed
    gate: planner.GateSeen | None = None
    outcomes: dict[str, Any] = {}
    step_gates: dict[str, planner.GateSeen] = {}
    try:
        if wanted.gate_instance is not None:
            gate = stores.call(key, _gate(wanted.gate_instance))
        for since in wanted.windows:
            outcomes[since] = stores.call(key, _outcomes(since))
        for instance in wanted.step_gates:
            found = stores.call(key, _gate(instance))
            if found is not None:
                step_gates[instance] = found
    except StoreUnobservable as exc:
        logger.warning("reading the rollout of %s/%s failed: %s", *key, exc)
    seen = planner.SafeSeen(gate=gate, outcomes=outcomes, step_gates=step_gates)
    return observed.with_safe(seen)


def _outcomes(since: str) -> Callable[[Any], Awaitable[Any]]:
    start = datetime.strptime(since, "%Y-%m-%dT%H:%M:%S%z")

    async def read(provider: Any) -> Any:
        return await provider.outcomes(since=start)

    return read


def _gate(instance_id: str) -> Callable[[Any], Awaitable[planner.GateSeen | None]]:
    async def read(provider: Any) -> planner.GateSeen | None:
        status = await Client(provider).get_orchestration_status(instance_id)
        if status.status == "NotFound":
            return None
        error = None if status.error is None else f"{status.error.type}: {status.error.message}"
        return planner.GateSeen(status.status, error)

    return read


def start_gate(
    stores: StoreObserver, key: tuple[str, str], step: planner.StartGate
) -> planner.Event | None:
    """Start the gate orchestration; an instance that exists already is left alone. A
    `GateNotStarted` Warning when the store refused (a read-only role, say): the next pass
    tries again, and the gate fails at its timeout if it never starts."""

    async def start(provider: Any) -> None:
        with contextlib.suppress(InstanceAlreadyExistsError):  # started by an earlier pass
            await Client(provider).start_orchestration_versioned(
                step.instance_id, step.orchestration, step.version, step.input
            )

    try:
        stores.call(key, start)
    except StoreUnobservable as exc:
        logger.warning("starting gate %s of %s/%s failed: %s", step.instance_id, *key, exc)
        return planner.Event(
            "Warning",
            "GateNotStarted",
            f"could not start gate {step.orchestration}@{step.version} "
            f"(instance {step.instance_id}): {exc}"[:1000],
        )
    logger.info("started gate %s of %s/%s", step.instance_id, *key)
    return None
