"""The `durox.testing.conformance.replay_range` scenarios, on every built-in store."""

from durox.testing.conformance.replay_range import *  # noqa: F403
