"""Stores. `SqliteProvider` is embedded and needs no set-up; `PostgresProvider` serves many
workers (install the `postgres` extra). Each is a `Store`: the `Provider` half the runtime
drives and the `ProviderAdmin` half clients read and manage through.

`PostgresProvider` is imported on first use, so `import durox.providers` works without asyncpg.
"""

from typing import TYPE_CHECKING, Any

from durox.providers._base import (
    CompletionWatch,
    DrainEntry,
    ExecutionInfo,
    ExecutionRef,
    FailureCount,
    InstanceInfo,
    InstanceUpdate,
    ObservedWorker,
    OrchestrationItem,
    Provider,
    ProviderAdmin,
    QueueDepths,
    Store,
    StoreObservation,
    SystemMetrics,
    TurnCommit,
    VersionExecutions,
    VersionOutcomes,
    VersionUsage,
    WorkerRecord,
    WorkItem,
    gather_outcomes,
)
from durox.providers.sqlite import SqliteProvider

if TYPE_CHECKING:
    from durox.providers.postgres import PostgresProvider

__all__ = [
    "CompletionWatch",
    "DrainEntry",
    "ExecutionInfo",
    "ExecutionRef",
    "FailureCount",
    "InstanceInfo",
    "InstanceUpdate",
    "ObservedWorker",
    "OrchestrationItem",
    "PostgresProvider",
    "Provider",
    "ProviderAdmin",
    "QueueDepths",
    "SqliteProvider",
    "Store",
    "StoreObservation",
    "SystemMetrics",
    "TurnCommit",
    "VersionExecutions",
    "VersionOutcomes",
    "VersionUsage",
    "WorkItem",
    "WorkerRecord",
    "gather_outcomes",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresProvider":
        from durox.providers.postgres import PostgresProvider

        return PostgresProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
