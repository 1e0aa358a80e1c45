"""The `durox.testing.conformance.replay_check_reads` scenarios, on every built-in store."""

from durox.testing.conformance.replay_check_reads import *  # noqa: F403
