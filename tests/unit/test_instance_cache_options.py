"""The instance cache's settings: defaults, validation, and live changes through reconfigure."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from durox import (
    ActivityRegistry,
    Client,
    ConfigurationError,
    OrchestrationRegistry,
    RuntimeOptions,
    VersionPolicy,
)
from durox.providers import SqliteProvider
from durox.runtime._cache import KEPT_OVERHEAD_BYTES
from durox.worker._metrics import WorkerMetrics
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


def test_the_byte_budget_defaults_to_64_mib_and_refuses_what_is_not_a_byte_count() -> None:
    assert RuntimeOptions().instance_cache_max_bytes == 64 * 1024 * 1024
    for bad in (-1, 1.5, True, "1MiB", None):
        with pytest.raises(ConfigurationError, match="instance_cache_max_bytes"):
            RuntimeOptions(instance_cache_max_bytes=bad)  # type: ignore[arg-type]


async def test_reconfigure_changes_the_byte_budget_live_and_validates_first() -> None:
    provider = await SqliteProvider.in_memory()
    try:
        async with running(
            provider, orchestrations=REG, instance_cache_size=10, instance_cache_max_bytes=9000
        ) as rt:
            turns = rt._turns
            assert turns.cache is not None and turns.cache.max_bytes == 9000
            with pytest.raises(ConfigurationError, match="instance_cache_max_bytes"):
                rt.reconfigure(instance_cache_max_bytes=-5, revision="bad")
            assert turns.cache.max_bytes == 9000 and rt.config_revision != "bad"
            rt.reconfigure(instance_cache_max_bytes=0)  # keeps nothing: the cache is off
            assert turns.cache is None
            rt.reconfigure(instance_cache_max_bytes=20_000)  # the count stays what it was
            assert turns.cache is not None
            assert (turns.cache.capacity, turns.cache.max_bytes) == (10, 20_000)
            rt.reconfigure(instance_cache_size=4)  # and the budget stays what it was
            assert (turns.cache.capacity, turns.cache.max_bytes) == (4, 20_000)
            await eventually(lambda: not rt._beat_now.is_set(), what="the heartbeat")
    finally:
        await provider.close()


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


def sample(metrics: str, metric: str, /, **labels: str) -> float:
    """The value of one sample line in Prometheus text format."""
    for line in metrics.splitlines():
        if line.startswith(metric + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {metric}{labels} in:\n{metrics}")


async def steps(ctx: Any, spec: dict[str, Any]) -> list[Any]:
    return [await ctx.schedule_activity("Echo", [spec["tag"], i]) for i in range(spec["n"])]


async def echo(ctx: Any, value: Any) -> Any:
    return value


async def test_a_worker_with_a_tiny_byte_budget_completes_everything_and_counts_evictions() -> None:
    """A running worker (verify mode as the suites run it: every kept turn also replayed cold
    and compared) whose budget holds about one small instance: instances are evicted for room
    or outgrow it, replay from the store, and all complete as they would without a cache."""
    metrics = WorkerMetrics()
    budget = KEPT_OVERHEAD_BYTES + 2048
    acts = ActivityRegistry.builder().register("Echo", echo).build()
    orchs = OrchestrationRegistry.builder().register("Steps", steps).build()
    provider = await SqliteProvider.in_memory()
    try:
        client = Client(provider)
        async with running(
            provider,
            acts,
            orchs,
            observer=metrics,
            instance_cache_size=100,
            instance_cache_max_bytes=budget,
            sticky_window=timedelta(0),
        ) as rt:
            tags = {f"i{k}": str(k) * 150 for k in range(4)}
            for iid, tag in tags.items():
                await client.start_orchestration(iid, "Steps", {"n": 8, "tag": tag})
            for iid, tag in tags.items():
                done = await client.wait_for_orchestration(iid, 20)
                assert (done.status, done.output) == ("Completed", [[tag, i] for i in range(8)])
            cache = rt._turns.cache
            assert cache is not None and cache.bytes <= budget
            evictions = dict(cache.evictions)
    finally:
        await provider.close()
    # running() has asserted that no kept turn diverged from its cold replay.
    text = metrics.render().decode()
    for reason in ("bytes", "oversized"):
        counted = sample(text, "durox_instance_cache_evictions_total", reason=reason)
        assert counted == evictions[reason] > 0
    assert sample(text, "durox_instance_cache_turns_total", result="kept") > 0
