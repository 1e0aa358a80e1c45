"""A store for the dashboard's tests, as real workers leave it: the shop workload of the
management commands' tests (`fill_store`), plus an instance that moved from version 1.0.0 to
1.0.2 at `continue_as_new` (so its page shows a version per execution, the spec's
"Version: 1.0.2") and an instance whose input, custom status, event data and output are
markup (so the pages must show it as text)."""

from __future__ import annotations

from typing import Any

from durox import ActivityRegistry, Client, OrchestrationContext, OrchestrationRegistry
from durox.providers import Store
from durox.worker import open_store
from tests.integration.test_admin_cli import fill_store
from tests.unit.scenario_support import eventually, running

MONITOR = "dash-test::orchestration::monitor"
ECHO = "dash-test::orchestration::echo"
MARKUP = "<script>alert('xss')</script><img src=x onerror=alert(2)>"


async def monitor_1_0_0(ctx: OrchestrationContext, n: int) -> Any:
    ctx.set_custom_status({"cycle": n, "on": "1.0.0"})
    return await ctx.continue_as_new_versioned("1.0.2", n + 1)


async def monitor_1_0_2(ctx: OrchestrationContext, n: int) -> Any:
    ctx.set_custom_status({"cycle": n, "on": "1.0.2"})
    return await ctx.wait_for_event("stop")


async def echo(ctx: OrchestrationContext, text: str) -> Any:
    ctx.set_custom_status(text)
    said = await ctx.wait_for_event("say")
    return {"input": text, "said": said}


orchestrations = (
    OrchestrationRegistry.builder()
    .register(MONITOR, monitor_1_0_0)
    .register_versioned(MONITOR, "1.0.2", monitor_1_0_2)
    .register(ECHO, echo)
    .build()
)


async def fill_dashboard_store(url: str) -> str:
    """`fill_store`'s instances and worker record, then "monitor-db" (execution 1 on 1.0.0,
    execution 2 running on 1.0.2) and "markup" (completed, markup everywhere)."""
    await fill_store(url)
    store = await open_store(url)
    try:
        await add_monitor_and_markup(store)
    finally:
        await store.close()
    return url


async def add_monitor_and_markup(store: Store) -> None:
    client = Client(store)
    async with running(store, ActivityRegistry.builder().build(), orchestrations):
        await client.start_orchestration_versioned("monitor-db", MONITOR, "1.0.0", 1)
        await client.start_orchestration("markup", ECHO, MARKUP)

        async def on_second_execution() -> bool:  # the start is queued until a worker takes it
            info = await store.get_instance("monitor-db")
            return info is not None and info.custom_status == {"cycle": 2, "on": "1.0.2"}

        await eventually(on_second_execution, what="monitor-db on its second execution")

        async def waiting() -> bool:
            info = await store.get_instance("markup")
            return info is not None and info.custom_status == MARKUP

        await eventually(waiting, what="markup waiting for its event")
        await client.raise_event("markup", "say", MARKUP)
        status = await client.wait_for_orchestration("markup", 10)
        assert status.status == "Completed", status
