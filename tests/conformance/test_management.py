"""The `durox.testing.conformance.management` scenarios, on every built-in store."""

from durox.testing.conformance.management import *  # noqa: F403
