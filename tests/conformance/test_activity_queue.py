"""The `durox.testing.conformance.activity_queue` scenarios, on every built-in store."""

from durox.testing.conformance.activity_queue import *  # noqa: F403
