"""Record the replay-check histories: real executions of the shop app as deployed.

`python -m tests.unit.replaycheck.record` runs `workload.populate` on an in-memory store with a
real runtime and writes each execution's history to `histories/`. The tests replay these
files against the candidate apps; never re-record them to make a test pass.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from durox import Client
from durox.core.codec import encode_event
from durox.providers import SqliteProvider
from tests.unit.replaycheck.workload import FINISHED, WAITING, populate

HERE = Path(__file__).parent / "histories"


async def record() -> None:
    HERE.mkdir(exist_ok=True)
    store = await SqliteProvider.in_memory()
    try:
        await populate(store)
        client = Client(store)
        for instance, (name, version) in {**WAITING, **FINISHED}.items():
            for ex in await client.list_executions(instance):
                events = await client.read_execution_history(instance, ex.execution_id)
                doc = {
                    "orchestration": name,
                    "version": version,
                    "instance_id": instance,
                    "execution_id": ex.execution_id,
                    "status": ex.status,
                    "events": [json.loads(encode_event(e)) for e in events],
                }
                path = HERE / f"{instance}-exec{ex.execution_id}.json"
                path.write_text(json.dumps(doc, indent=1) + "\n")
                print("wrote", path.name)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(record())
