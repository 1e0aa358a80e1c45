"""The `durox.testing.conformance.activity_batches` scenarios, on every built-in store."""

from durox.testing.conformance.activity_batches import *  # noqa: F403
