"""The `durox.testing.conformance.orchestration_batches` scenarios, on every built-in store."""

from durox.testing.conformance.orchestration_batches import *  # noqa: F403
