"""Progressive ramps, the runtime half: a policy gives a new version a share of the starts,
chosen by a stable hash of the instance id, and the engine records the choice as always."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from durox import ConfigurationError, OrchestrationContext, OrchestrationRegistry, VersionPolicy
from durox.core import events as ev
from durox.core.context import OrchestrationContext as Ctx
from durox.core.replay import TurnResult, run_turn
from durox.core.versions import BUCKETS, Ramp, choose_version, parse_version, ramp_bucket
from durox.worker import parse_config, version_policies
from durox.worker_config import WorkerConfig

REGISTERED = [parse_version(v) for v in ("1.0.0", "1.1.0")]
NEW = parse_version("1.1.0")
IDS = [f"order-{n}" for n in range(1000)]
UUID_LIKE = [f"{n:08x}-7c1e-4b7a-9d2f-{n * 7919:012x}" for n in range(1000)]


def share(policy: VersionPolicy, ids: list[str]) -> int:
    return sum(choose_version(REGISTERED, policy, None, i) == NEW for i in ids)


@pytest.mark.parametrize("ids", [IDS, UUID_LIKE], ids=["sequential", "uuid-like"])
@pytest.mark.parametrize("percent", [1, 5, 10, 25, 50, 75, 90, 99])
def test_the_share_of_1000_ids_is_within_statistical_bounds(ids: list[str], percent: int) -> None:
    p = percent / 100
    got = share(VersionPolicy.latest().with_ramp("1.1.0", percent), ids)
    sigma = math.sqrt(len(ids) * p * (1 - p))
    assert abs(got - len(ids) * p) <= 4 * sigma, (percent, got)


def test_the_buckets_are_spread_evenly() -> None:
    deciles = [0] * 10
    for i in IDS + UUID_LIKE:
        deciles[ramp_bucket(i) * 10 // BUCKETS] += 1
    expected, sigma = 200, math.sqrt(2000 * 0.1 * 0.9)
    assert all(abs(d - expected) <= 4 * sigma for d in deciles), deciles


def test_no_share_and_the_whole_share_are_exact() -> None:
    assert share(VersionPolicy.latest().with_ramp("1.1.0", 0), IDS) == 0
    assert share(VersionPolicy.latest().with_ramp("1.1.0", 100), IDS) == 1000


def test_the_same_id_always_chooses_the_same_version() -> None:
    policy = VersionPolicy.latest().with_ramp("1.1.0", 37.5)
    first = [choose_version(REGISTERED, policy, None, i) for i in IDS]
    assert [choose_version(REGISTERED, policy, None, i) for i in IDS] == first
    assert {choose_version(REGISTERED, policy, None, "order-7") for _ in range(50)} == {first[7]}


def test_the_hash_is_the_same_in_another_process_with_another_hash_seed() -> None:
    probe = (
        "from durox.core.versions import ramp_bucket\n"
        "print([ramp_bucket(f'order-{n}') for n in range(20)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == str([ramp_bucket(f"order-{n}") for n in range(20)])


def test_a_growing_share_only_moves_instances_to_the_new_version() -> None:
    def moved(percent: float) -> set[str]:
        policy = VersionPolicy.latest().with_ramp(NEW, percent)
        return {i for i in IDS if choose_version(REGISTERED, policy, None, i) == NEW}

    chosen = [moved(p) for p in (1, 5, 10, 25, 50, 100)]
    assert all(a <= b for a, b in itertools.pairwise(chosen))


def test_the_rest_go_where_the_policy_says_among_the_other_versions() -> None:
    three = [parse_version(v) for v in ("1.0.0", "1.1.0", "2.0.0")]
    pinned = VersionPolicy.exact("1.0.0").with_ramp("2.0.0", 50)
    got = {str(choose_version(three, pinned, None, i)) for i in IDS}
    assert got == {"1.0.0", "2.0.0"}
    latest = VersionPolicy.latest().with_ramp("2.0.0", 50)
    assert {str(choose_version(three, latest, None, i)) for i in IDS} == {"1.1.0", "2.0.0"}
    # an explicit version wins; a ramp to a version not registered here is no ramp
    assert choose_version(three, latest, "1.0.0", "order-1") == parse_version("1.0.0")
    absent = VersionPolicy.latest().with_ramp("3.0.0", 100)
    assert {str(choose_version(three, absent, None, i)) for i in IDS[:50]} == {"2.0.0"}
    # the ramped version alone: everyone gets it rather than nothing
    only = [parse_version("1.1.0")]
    assert choose_version(only, VersionPolicy.latest().with_ramp("1.1.0", 1), None, "x") == NEW


def test_ramps_are_refused_when_they_make_no_sense() -> None:
    with pytest.raises(ConfigurationError, match="within 0 and 100"):
        Ramp("1.1.0", 101)
    with pytest.raises(ConfigurationError, match="beside a pin to the same version"):
        VersionPolicy.exact("1.1.0").with_ramp("1.1.0", 10)
    builder = OrchestrationRegistry.builder().register("N", _once)
    with pytest.raises(ConfigurationError, match=r"ramps 'N' to 9\.0\.0, which is not registered"):
        builder.set_policy("N", VersionPolicy.latest().with_ramp("9.0.0", 10)).build()
    assert str(VersionPolicy.exact("1.0.0").with_ramp("1.1.0", 12.5)) == (
        "exact 1.0.0, ramp 1.1.0 at 12.5%"
    )


# ---- the engine records the choice ------------------------------------------------------


async def _once(ctx: OrchestrationContext, n: int) -> Any:
    if n == 0:
        return await ctx.continue_as_new(1)
    return f"done at {n}"


def _registry(percent: float) -> OrchestrationRegistry:
    return (
        OrchestrationRegistry.builder()
        .register("N", _once)
        .register_versioned("N", "1.1.0", _once)
        .set_policy("N", VersionPolicy.latest().with_ramp("1.1.0", percent))
        .build()
    )


def _start(registry: OrchestrationRegistry, instance: str, execution: int) -> TurnResult:
    previous = execution - 1
    result = run_turn(
        instance_id=instance,
        execution_id=previous,
        history=[],
        messages=[ev.StartOrchestration(instance, "N", None, previous, execution)],
        resolve=registry.resolve,
        now_ms=1_800_000_000_000,
        engine_version="0.1.0",
        context_factory=Ctx,
    )
    assert isinstance(result, TurnResult)
    return result


def test_the_chosen_version_is_recorded_and_kept_across_continue_as_new() -> None:
    registry = _registry(30)
    versions = []
    for instance in IDS[:200]:
        first = _start(registry, instance, 1)
        started = first.new_events[0]
        assert isinstance(started, ev.OrchestrationStarted)
        expected = choose_version(REGISTERED, registry.policy("N"), None, instance)
        assert started.version == first.version == str(expected)
        # continue_as_new under the policy: the next start asks for no version ...
        (nxt,) = [m for m in first.messages if isinstance(m, ev.StartOrchestration)]
        assert nxt.version is None
        # ... and the next execution lands on the same side
        second = _start(registry, instance, 2)
        assert second.version == started.version
        versions.append(started.version)
    assert 0.15 < versions.count("1.1.0") / len(versions) < 0.45


def test_the_worker_config_carries_a_ramp() -> None:
    config = parse_config(
        "orchestrations:\n"
        "  - name: N\n"
        "    ramp: {version: 1.1.0, percent: 10}\n"
        "  - name: M\n"
        "    policy: exact\n"
        "    version: 1.0.0\n"
        "    ramp: {version: 2.0.0, percent: 2.5}\n"
    )
    policies = version_policies(config, {})
    assert policies["N"] == VersionPolicy(None, Ramp("1.1.0", 10))
    assert str(policies["M"]) == "exact 1.0.0, ramp 2.0.0 at 2.5%"
    registry = _registry(0).with_policies({"N": policies["N"]})
    assert str(registry.policy("N")) == "latest, ramp 1.1.0 at 10%"
    with pytest.raises(ConfigurationError, match=r"ramps 'N' to 2\.0\.0"):
        _registry(0).with_policies({"N": policies["M"]})


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"name": "N", "ramp": {"version": "1.1.0", "percent": 120}}, "less than or equal to 100"),
        ({"name": "N", "ramp": {"version": "one", "percent": 1}}, "not a semantic version"),
        (
            {"name": "N", "policy": "exact", "version": "1.1.0",
             "ramp": {"version": "1.1.0", "percent": 1}},
            "is the pinned one",
        ),
    ],
)  # fmt: skip
def test_a_bad_ramp_in_the_config_is_refused(entry: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        WorkerConfig.model_validate({"orchestrations": [entry]})
