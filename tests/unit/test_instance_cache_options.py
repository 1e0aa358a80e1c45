"""The instance cache's settings: defaults, validation, and live changes through reconfigure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from durox import ConfigurationError, OrchestrationRegistry, RuntimeOptions, VersionPolicy
from durox.providers import SqliteProvider
from tests.unit.scenario_support import eventually, running


async def noop(ctx: Any, _: Any) -> None:
    return None


REG = OrchestrationRegistry.builder().register("Noop", noop).build()


def test_the_cache_is_on_by_default_and_refuses_a_negative_size() -> None:
    opts = RuntimeOptions()
    assert opts.instance_cache_size == 1000 and opts.sticky_window == timedelta(seconds=2)
    assert not opts.verify_cached_turns
    with pytest.raises(ConfigurationError):
        RuntimeOptions(instance_cache_size=-1)


async def test_reconfigure_resizes_the_cache_live_and_validates_first() -> None:
    provider = await SqliteProvider.in_memory()
    try:
        async with running(provider, orchestrations=REG, instance_cache_size=10) as rt:
            turns = rt._turns
            assert turns.cache is not None and turns.cache.capacity == 10
            with pytest.raises(ConfigurationError):
                rt.reconfigure(instance_cache_size=-1, revision="bad")
            assert turns.cache.capacity == 10 and rt.config_revision != "bad"
            rt.reconfigure(instance_cache_size=0, sticky_window=timedelta(0))
            assert turns.cache is None and turns._sticky_ms == 0
            rt.reconfigure(instance_cache_size=3, sticky_window=timedelta(seconds=1))
            assert turns.cache is not None and turns.cache.capacity == 3
            assert turns._sticky_ms == 1000
            registry = rt.orchestrations
            rt.reconfigure(policies={"Noop": VersionPolicy.latest()})
            assert rt.orchestrations is not registry  # kept states were dropped with it
            # Let the heartbeat reconfigure asked for run before shutdown cancels it: on
            # Python 3.11 a cancel that meets a wait_for whose event just fired can be lost.
            await eventually(lambda: not rt._beat_now.is_set(), what="the heartbeat")
    finally:
        await provider.close()
