"""The public surface of `durox` is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import subprocess
import sys

import pytest

import durox


def test_public_surface_is_pinned() -> None:
    assert sorted(durox.__all__) == [
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
    for name in durox.__all__:
        assert hasattr(durox, name), name


def test_importing_durox_loads_names_on_first_use() -> None:
    """`import durox` is light (the operator's planner imports `durox.worker_config` through it);
    each name is loaded from its home module the first time it is used."""
    probe = (
        "import sys, durox\n"
        "heavy = ('durox.runtime', 'durox.providers', 'sqlite3')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "durox.Runtime\n"
        "print(before, 'durox.runtime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = durox.Nope
