"""Record the replay corpus: real histories of every example orchestration version.

Run `python -m tests.unit.corpus.record` after adding an orchestration version to the examples;
commit the JSON it writes. Never re-record an existing file to make a failing replay pass: a
replay failure means the change would break executions already in flight.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from durox import Client, Runtime, RuntimeOptions
from durox.core.codec import encode_event
from durox.demo.health_monitor import HEALTH_MONITOR, MonitorState, activities, orchestrations
from durox.providers import SqliteProvider

HERE = Path(__file__).parent / "histories"


async def record() -> None:
    HERE.mkdir(exist_ok=True)
    provider = await SqliteProvider.in_memory()
    client = Client(provider)
    rt = await Runtime.start(
        provider,
        activities(),
        orchestrations(with_1_0_2=True),
        RuntimeOptions(poll_interval=timedelta(milliseconds=10)),
    )
    try:
        for version, cycles in [(v, c) for v in ("1.0.0", "1.0.1", "1.0.2") for c in (1, 2)]:
            instance = f"corpus-health-monitor-{version}-{cycles}"
            state = MonitorState(target="corpus", max_cycles=cycles, interval_ms=20)
            await client.start_orchestration_versioned(
                instance, HEALTH_MONITOR, version, state.model_dump()
            )
            await client.wait_for_orchestration(instance, 30)
            for ex in await client.list_executions(instance):
                if ex.orchestration_version != version:
                    continue
                events = await client.read_execution_history(instance, ex.execution_id)
                doc = {
                    "orchestration": HEALTH_MONITOR,
                    "version": version,
                    "execution_id": ex.execution_id,
                    "status": ex.status,
                    "events": [json.loads(encode_event(e)) for e in events],
                }
                name = f"health-monitor-{version}-cycles{cycles}-exec{ex.execution_id}.json"
                (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")
                print("wrote", name)
    finally:
        await rt.shutdown(5)
        await provider.close()


if __name__ == "__main__":
    asyncio.run(record())
