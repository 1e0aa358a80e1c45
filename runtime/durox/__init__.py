"""durox: durable, versioned orchestrations for Python.

Orchestrations are `async def` functions replayed from their history; activities do the I/O.
Everything a user needs is importable from here; stores live in `durox.providers`.

The names are loaded on first use (PEP 562), not when `durox` is imported: a tool that needs
one light module (the operator's planner reads `durox.worker_config`) must not pay for the
runtime, the SQLite store and the engine. Type checkers see ordinary imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from durox._version import __version__

if TYPE_CHECKING:
    from durox.client import Client, ClientOptions, DrainReport, OrchestrationStatus
    from durox.core.context import OrchestrationContext
    from durox.core.events import ErrorDetails
    from durox.core.replay import DurableFuture
    from durox.core.retry import BackoffStrategy, RetryPolicy
    from durox.core.versions import SemverRange, VersionPolicy
    from durox.errors import (
        ActivityFailedError,
        ActivityTimeoutError,
        ConfigurationError,
        DuroxError,
        InstanceAlreadyExistsError,
        InstanceNotFoundError,
        NondeterminismError,
        OrchestrationFailedError,
        PayloadError,
        PayloadTooLargeError,
        PermanentError,
        RetryableError,
        SubOrchestrationFailedError,
    )
    from durox.providers._base import (
        DrainEntry,
        ExecutionInfo,
        FailureCount,
        InstanceInfo,
        ObservedWorker,
        StoreObservation,
        VersionOutcomes,
        VersionUsage,
        WorkerRecord,
    )
    from durox.registry import ActivityContext, ActivityRegistry, OrchestrationRegistry
    from durox.replaycheck import ReplayCheckReport, replay_check
    from durox.runtime import Runtime, RuntimeObserver, RuntimeOptions
    from durox.status import InstanceStatus

_HOME: dict[str, str] = {
    **dict.fromkeys(
        ("Client", "ClientOptions", "DrainReport", "OrchestrationStatus"), "durox.client"
    ),
    "OrchestrationContext": "durox.core.context",
    "ErrorDetails": "durox.core.events",
    "DurableFuture": "durox.core.replay",
    **dict.fromkeys(("BackoffStrategy", "RetryPolicy"), "durox.core.retry"),
    **dict.fromkeys(("SemverRange", "VersionPolicy"), "durox.core.versions"),
    **dict.fromkeys(
        (
            "ActivityFailedError",
            "ActivityTimeoutError",
            "ConfigurationError",
            "DuroxError",
            "InstanceAlreadyExistsError",
            "InstanceNotFoundError",
            "NondeterminismError",
            "OrchestrationFailedError",
            "PayloadError",
            "PayloadTooLargeError",
            "PermanentError",
            "RetryableError",
            "SubOrchestrationFailedError",
        ),
        "durox.errors",
    ),
    **dict.fromkeys(
        (
            "DrainEntry",
            "ExecutionInfo",
            "FailureCount",
            "InstanceInfo",
            "ObservedWorker",
            "StoreObservation",
            "VersionOutcomes",
            "VersionUsage",
            "WorkerRecord",
        ),
        "durox.providers._base",
    ),
    **dict.fromkeys(
        ("ActivityContext", "ActivityRegistry", "OrchestrationRegistry"), "durox.registry"
    ),
    **dict.fromkeys(("ReplayCheckReport", "replay_check"), "durox.replaycheck"),
    **dict.fromkeys(("Runtime", "RuntimeObserver", "RuntimeOptions"), "durox.runtime"),
    "InstanceStatus": "durox.status",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'durox' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "ActivityContext",
    "ActivityFailedError",
    "ActivityRegistry",
    "ActivityTimeoutError",
    "BackoffStrategy",
    "Client",
    "ClientOptions",
    "ConfigurationError",
    "DrainEntry",
    "DrainReport",
    "DurableFuture",
    "DuroxError",
    "ErrorDetails",
    "ExecutionInfo",
    "FailureCount",
    "InstanceAlreadyExistsError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "InstanceStatus",
    "NondeterminismError",
    "ObservedWorker",
    "OrchestrationContext",
    "OrchestrationFailedError",
    "OrchestrationRegistry",
    "OrchestrationStatus",
    "PayloadError",
    "PayloadTooLargeError",
    "PermanentError",
    "ReplayCheckReport",
    "RetryPolicy",
    "RetryableError",
    "Runtime",
    "RuntimeObserver",
    "RuntimeOptions",
    "SemverRange",
    "StoreObservation",
    "SubOrchestrationFailedError",
    "VersionOutcomes",
    "VersionPolicy",
    "VersionUsage",
    "WorkerRecord",
    "__version__",
    "replay_check",
]
