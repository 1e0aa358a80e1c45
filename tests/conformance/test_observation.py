"""The `durox.testing.conformance.observation` scenarios, on every built-in store."""

from durox.testing.conformance.observation import *  # noqa: F403
