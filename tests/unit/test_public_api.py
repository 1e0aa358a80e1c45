"""The public surface of `durox` is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import durox


def test_public_surface_is_pinned() -> None:
    assert sorted(durox.__all__) == [
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
    for name in durox.__all__:
        assert hasattr(durox, name), name
