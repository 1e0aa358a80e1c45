"""Real executions of the shop app (`apps.app`) in a store, left as a live system leaves them:
some waiting for an event, some completed. `record.py` keeps them as the committed histories;
the store-backed tests run the same workload on SQLite and PostgreSQL."""

from __future__ import annotations

from functools import partial

from durox import Client
from durox.core import events as ev
from durox.providers import Store
from tests.unit.replaycheck import apps
from tests.unit.scenario_support import eventually, running

WAITING = {  # instance -> (NAME, version): left waiting for "shipped"
    "order-waiting-a": (apps.ORDER, "1.0.0"),
    "order-waiting-b": (apps.ORDER, "1.0.0"),
    "order-new-waiting": (apps.ORDER, "1.1.0"),
}
FINISHED = {  # instance -> (NAME, version): run to completion
    "order-shipped": (apps.ORDER, "1.0.0"),
    "refund-done": (apps.REFUND, "1.0.0"),
}


async def populate(store: Store) -> None:
    """Run the workload with a real runtime on `store`; returns once every instance is where
    it stays (waiting or completed) and the runtime has stopped."""
    client = Client(store)
    app = apps.app
    async with running(store, app.activities, app.orchestrations):
        for instance, (name, version) in {**WAITING, **FINISHED}.items():
            await client.start_orchestration_versioned(instance, name, version, instance)
        for instance in [*WAITING, "order-shipped"]:
            await eventually(partial(_waits_for_shipped, client, instance), what=instance)
        await client.raise_event("order-shipped", "shipped", "by courier")
        for instance in FINISHED:
            status = await client.wait_for_orchestration(instance, 10)
            assert status.status == "Completed", status


async def _waits_for_shipped(client: Client, instance: str) -> bool:
    history = await client.read_execution_history(instance, 1)
    return bool(history) and isinstance(history[-1], ev.EventSubscribed)
