"""The `durox.testing.conformance.events` scenarios, on every built-in store."""

from durox.testing.conformance.events import *  # noqa: F403
