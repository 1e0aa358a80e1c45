"""The `durox.testing.conformance.queue_and_visibility` scenarios, on every built-in store."""

from durox.testing.conformance.queue_and_visibility import *  # noqa: F403
