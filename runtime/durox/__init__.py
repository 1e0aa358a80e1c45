"""durox: durable, versioned orchestrations for Python.

Orchestrations are `async def` functions replayed from their history; activities do the I/O.
Everything a user needs is importable from here; stores live in `durox.providers`.
"""

from durox._version import __version__
from durox.client import Client, DrainReport, OrchestrationStatus
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
    PermanentError,
    RetryableError,
    SubOrchestrationFailedError,
)
from durox.providers._base import DrainEntry, ExecutionInfo, InstanceInfo, WorkerRecord
from durox.registry import ActivityContext, ActivityRegistry, OrchestrationRegistry
from durox.runtime import Runtime, RuntimeObserver, RuntimeOptions

__all__ = [
    "ActivityContext",
    "ActivityFailedError",
    "ActivityRegistry",
    "ActivityTimeoutError",
    "BackoffStrategy",
    "Client",
    "ConfigurationError",
    "DrainEntry",
    "DrainReport",
    "DurableFuture",
    "DuroxError",
    "ErrorDetails",
    "ExecutionInfo",
    "InstanceAlreadyExistsError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "NondeterminismError",
    "OrchestrationContext",
    "OrchestrationFailedError",
    "OrchestrationRegistry",
    "OrchestrationStatus",
    "PermanentError",
    "RetryPolicy",
    "RetryableError",
    "Runtime",
    "RuntimeObserver",
    "RuntimeOptions",
    "SemverRange",
    "SubOrchestrationFailedError",
    "VersionPolicy",
    "WorkerRecord",
    "__version__",
]
