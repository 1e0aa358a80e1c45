"""Version resolution, policies and registry validation: pure and exhaustive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import semver
from pydantic import BaseModel

from durox import (
    ActivityRegistry,
    ConfigurationError,
    OrchestrationContext,
    OrchestrationRegistry,
    RetryPolicy,
    SemverRange,
    VersionPolicy,
)
from durox.core.retry import BackoffStrategy
from durox.core.versions import choose_version, parse_version

V = semver.Version.parse
REGISTERED = [V("1.0.0"), V("1.0.1"), V("1.2.0"), V("2.0.0")]


@pytest.mark.parametrize(
    ("policy", "requested", "expected"),
    [
        (VersionPolicy.latest(), None, "2.0.0"),
        (VersionPolicy.exact("1.0.1"), None, "1.0.1"),
        (VersionPolicy.exact("3.0.0"), None, None),
        (VersionPolicy.latest(), "1.2.0", "1.2.0"),
        (VersionPolicy.exact("1.0.1"), "1.0.0", "1.0.0"),
        (VersionPolicy.latest(), "9.9.9", None),
    ],
)
def test_choose_version(policy: VersionPolicy, requested: str | None, expected: str | None) -> None:
    got = choose_version(REGISTERED, policy, requested)
    assert (str(got) if got else None) == expected


def test_latest_of_nothing_is_nothing() -> None:
    assert choose_version([], VersionPolicy.latest(), None) is None


def test_semver_range_is_inclusive_and_ordered() -> None:
    r = SemverRange("1.0.0", "1.2.0")
    assert r.contains("1.0.0") and r.contains("1.2.0") and "1.1.5" in r
    assert not r.contains("1.2.1") and "0.9.9" not in r and 3 not in r
    assert r.bounds() == ((1, 0, 0), (1, 2, 0))
    with pytest.raises(ConfigurationError, match="above max"):
        SemverRange("2.0.0", "1.0.0")


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "", "1.0.0.0", "latest"])
def test_bad_semver_is_a_clear_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="not a semantic version"):
        parse_version(bad)


async def orch(ctx: OrchestrationContext, input: Any) -> Any:
    return input


def test_register_typed_is_1_0_0_and_policy_defaults_to_latest() -> None:
    reg = (
        OrchestrationRegistry.builder()
        .register_typed("N", orch)
        .register_versioned_typed("N", "1.0.2", orch)
        .build()
    )
    assert [str(v) for v in reg.versions("N")] == ["1.0.0", "1.0.2"]
    assert reg.policy("N").is_latest
    resolved = reg.resolve("N", None)
    assert resolved is not None and resolved[0] == "1.0.2"
    assert reg.resolve("N", "1.0.0") is not None and reg.resolve("N", "1.0.1") is None
    assert reg.resolve("Missing", None) is None


def test_exact_policy_pins_new_starts() -> None:
    reg = (
        OrchestrationRegistry.builder()
        .register("N", orch)
        .register_versioned("N", "1.0.1", orch)
        .set_policy("N", VersionPolicy.exact("1.0.0"))
        .build()
    )
    resolved = reg.resolve("N", None)
    assert resolved is not None and resolved[0] == "1.0.0"
    relaxed = reg.with_policies({"N": VersionPolicy.latest()})
    assert relaxed.resolve("N", None) is not None
    assert relaxed.resolve("N", None)[0] == "1.0.1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: b.register("N", orch).register("N", orch), "registered twice"),
        (lambda b: b.register_versioned("N", "1.x", orch), "not a semantic version"),
        (lambda b: b.register("durox::internal", orch), "reserved prefix"),
        (lambda b: b.register("", orch), "non-empty"),
        (
            lambda b: b.register("N", orch).set_policy("N", VersionPolicy.exact("2.0.0")),
            "not registered",
        ),
        (lambda b: b.set_policy("Ghost", VersionPolicy.latest()), "unregistered orchestration"),
        (lambda b: b.register("N", lambda ctx, i: i), "async def"),
    ],
)
def test_bad_registrations_fail_at_build_time(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(OrchestrationRegistry.builder()).build()


def test_activity_registry_rejects_duplicates_and_reserved_names() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        ActivityRegistry.builder().register("A", orch).register("A", orch)
    with pytest.raises(ConfigurationError, match="reserved"):
        ActivityRegistry.builder().register("durox::x", orch)


class Order(BaseModel):
    item: str
    quantity: int


async def typed_activity(ctx: Any, order: Order) -> Order:
    return Order(item=order.item.upper(), quantity=order.quantity * 2)


def plain_activity(ctx: Any, n: int) -> int:
    return n + 1


async def test_typed_activity_validates_input_and_serializes_output() -> None:
    reg = (
        ActivityRegistry.builder()
        .register_typed("T", typed_activity)
        .register("P", plain_activity)
        .build()
    )
    handler = reg.get("T")
    assert handler is not None
    assert await handler(None, {"item": "a", "quantity": "2"}) == {"item": "A", "quantity": 4}  # type: ignore[arg-type]
    from durox.errors import PayloadError

    with pytest.raises(PayloadError, match="failed validation"):
        await handler(None, {"item": "a"})  # type: ignore[arg-type]
    plain = reg.get("P")
    assert plain is not None and await plain(None, 1) == 2  # type: ignore[arg-type]


class AsyncCallable:
    async def __call__(self, ctx: Any, n: int) -> int:
        return n * 10


def returns_awaitable(ctx: Any, n: int) -> Any:
    async def inner() -> int:
        return n * 100

    return inner()


async def test_async_callable_objects_and_awaitable_results_are_awaited() -> None:
    """An object with an async `__call__` is an async handler: its result is the value, not an
    un-awaited coroutine; so is a plain function that returns an awaitable."""
    reg = (
        ActivityRegistry.builder()
        .register("C", AsyncCallable())
        .register("W", returns_awaitable)
        .build()
    )
    c, w = reg.get("C"), reg.get("W")
    assert c is not None and w is not None
    assert await c(None, 2) == 20  # type: ignore[arg-type]
    assert await w(None, 2) == 200  # type: ignore[arg-type]


def test_backoff_strategies() -> None:
    s = timedelta(seconds=1)
    assert BackoffStrategy.none().delay(3) == timedelta(0)
    assert BackoffStrategy.fixed(s).delay(5) == s
    assert BackoffStrategy.linear(s).delay(3) == 3 * s
    exp = BackoffStrategy.exponential(s, 2.0, max=timedelta(seconds=5))
    assert [exp.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def test_retry_policy_validation() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(3).with_timeout(timedelta(0))
    p = RetryPolicy(3).with_timeout(timedelta(seconds=30))
    assert p.max_attempts == 3 and p.timeout == timedelta(seconds=30)
