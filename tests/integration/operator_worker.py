"""A worker process of one "image" for the operator's store tests: `python -m
tests.integration.operator_worker DSN SCHEMA NODE VERSIONS ACTIVITIES`, where VERSIONS and
ACTIVITIES are comma-separated (`checkout` at each version; each version waits for the event
"go"). It writes a real capability record (pool `orders`, node NODE) and runs until SIGTERM,
when a clean shutdown removes the record."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from typing import Any

from durox import ActivityRegistry, OrchestrationRegistry, Runtime, RuntimeOptions
from durox.providers import PostgresProvider

POOL = "orders"


async def checkout(ctx: Any, _: Any) -> str:
    await ctx.wait_for_event("go")
    return "done"


async def noop(ctx: Any, x: Any) -> Any:
    return x


async def main(dsn: str, schema: str, node: str, versions: str, activities: str) -> None:
    provider = await PostgresProvider.connect(dsn, schema=schema, pool_size=3)
    builder = OrchestrationRegistry.builder()
    for version in versions.split(","):
        builder = builder.register_versioned("checkout", version, checkout)
    acts = ActivityRegistry.builder()
    for name in filter(None, activities.split(",")):
        acts = acts.register(name, noop)
    options = RuntimeOptions(
        pool=POOL,
        worker_node_id=node,
        heartbeat_interval=timedelta(milliseconds=300),
        poll_interval=timedelta(milliseconds=200),
        # A worker of the new image that lacks a version puts that instance's messages back
        # with this delay, for every worker: keep it short so the old worker runs them soon.
        unregistered_backoff=timedelta(milliseconds=100),
        unregistered_backoff_max=timedelta(milliseconds=500),
    )
    runtime = await Runtime.start(provider, acts.build(), builder.build(), options)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runtime.shutdown(10)
    await provider.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
