"""Stores. `SqliteProvider` is embedded and needs no set-up; `PostgresProvider` serves many
workers (install the `postgres` extra). Both implement the `Provider` seam."""

from durox.providers._base import (
    DrainEntry,
    ExecutionInfo,
    InstanceInfo,
    InstanceUpdate,
    OrchestrationItem,
    Provider,
    TurnCommit,
    WorkerRecord,
    WorkItem,
)
from durox.providers.sqlite import SqliteProvider

__all__ = [
    "DrainEntry",
    "ExecutionInfo",
    "InstanceInfo",
    "InstanceUpdate",
    "OrchestrationItem",
    "Provider",
    "SqliteProvider",
    "TurnCommit",
    "WorkItem",
    "WorkerRecord",
]
