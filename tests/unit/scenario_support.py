"""Running a real runtime on the embedded store inside a test, briefly and tidily."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from durox import (
    ActivityRegistry,
    Client,
    OrchestrationRegistry,
    Runtime,
    RuntimeObserver,
    RuntimeOptions,
)
from durox.core.compat import CURRENT_ENGINE, EngineIdentity
from durox.providers import Provider

CACHE_MODE = os.environ.get("DUROX_TEST_INSTANCE_CACHE", "verify")
"""How the suites run the instance cache: `verify` (on, and every kept turn replayed cold as
well and compared), `on` (as in production: kept histories are not even read) or `off`."""
if CACHE_MODE not in ("verify", "on", "off"):
    raise ValueError(f"DUROX_TEST_INSTANCE_CACHE={CACHE_MODE!r}: say verify, on or off")

FAST = dict(
    poll_interval=timedelta(milliseconds=20),
    unregistered_backoff=timedelta(milliseconds=10),
    unregistered_backoff_max=timedelta(milliseconds=50),
    orchestration_concurrency=2,
    activity_concurrency=4,
    instance_cache_size=0 if CACHE_MODE == "off" else 1000,
    verify_cached_turns=CACHE_MODE == "verify",
)


def options(**overrides: Any) -> RuntimeOptions:
    return RuntimeOptions(**{**FAST, **overrides})


@contextlib.asynccontextmanager
async def running(
    provider: Provider,
    activities: ActivityRegistry | None = None,
    orchestrations: OrchestrationRegistry | None = None,
    *,
    engine: EngineIdentity = CURRENT_ENGINE,
    observer: RuntimeObserver | None = None,
    **overrides: Any,
) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(
        provider,
        activities or ActivityRegistry.builder().build(),
        orchestrations or OrchestrationRegistry.builder().build(),
        options(**overrides),
        engine=engine,
        observer=observer,
    )
    try:
        yield rt
    finally:
        await rt.shutdown(timeout=5)
    assert_no_divergence(rt)


def assert_no_divergence(rt: Runtime) -> None:
    """Fail if a turn on kept state decided otherwise than its cold replay (verify mode)."""
    divergences = rt._turns.divergences
    assert not divergences, "instance cache divergence:\n" + "\n".join(divergences)


async def eventually(
    check: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Poll an async or sync check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def execution_count(client: Client, instance_id: str) -> int:
    return len(await client.list_executions(instance_id))
