"""The `durox.testing.conformance.locks` scenarios, on every built-in store."""

from durox.testing.conformance.locks import *  # noqa: F403
