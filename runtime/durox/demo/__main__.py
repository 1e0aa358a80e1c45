"""The README's demo: a live upgrade of a running monitor, on an embedded SQLite file.

It walks the spec's timeline with short timers: a monitor runs v1.0.1; the runtime is stopped
mid-cycle and restarted with v1.0.2 registered; the running execution finishes its cycle on
v1.0.1 and moves to v1.0.2 only at `continue_as_new`. What it prints is read from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

from durox import Client, Runtime, RuntimeOptions
from durox.demo.health_monitor import HEALTH_MONITOR, MonitorState, activities, orchestrations
from durox.providers import SqliteProvider
from durox.status import InstanceStatus

INSTANCE = "health-monitor-db-primary"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def _show(client: Client) -> str:
    info = await client.get_instance_info(INSTANCE)
    print(
        f"   get_instance_info: version={info.orchestration_version} "
        f"execution={info.current_execution_id} status={info.status}",
        flush=True,
    )
    return info.orchestration_version


async def _wait_for(client: Client, predicate: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await client.list_instances(limit=10)
        for i in info:
            if i.instance_id != INSTANCE:
                continue
            if predicate == "second-execution" and i.current_execution_id >= 2:
                return
            if predicate == "v1.0.2" and i.orchestration_version == "1.0.2":
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"demo: gave up waiting for {predicate}")


def _fresh(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def run(db: Path, interval_ms: int) -> int:
    _fresh(db)
    provider = await SqliteProvider.open(db)
    client = Client(provider)
    options = RuntimeOptions(poll_interval=timedelta(milliseconds=50))
    rt: Runtime | None = None
    try:
        _say(f"Runtime 1 starts with versions 1.0.0 and 1.0.1 of {HEALTH_MONITOR}")
        rt = await Runtime.start(provider, activities(), orchestrations(with_1_0_2=False), options)
        state = MonitorState(target="db-primary", max_cycles=5, interval_ms=interval_ms)
        await client.start_orchestration(INSTANCE, HEALTH_MONITOR, state.model_dump())
        await _wait_for(client, "second-execution")
        await _show(client)
        await asyncio.sleep(interval_ms / 2000)

        _say("Deploy: runtime 1 stops mid-cycle; runtime 2 starts with 1.0.2 registered too")
        await rt.shutdown(timeout=5)
        rt = await Runtime.start(provider, activities(), orchestrations(with_1_0_2=True), options)
        version = await _show(client)
        print(
            f"   the running execution stays on {version} until it reaches continue_as_new",
            flush=True,
        )
        await _wait_for(client, "v1.0.2")
        _say("continue_as_new resolved the Latest policy: the next execution runs 1.0.2")
        await _show(client)

        status = await client.wait_for_orchestration(INSTANCE, timeout=60)
        _say(f"Finished: {status.status}, output {status.output!r}")
        for ex in await client.list_executions(INSTANCE):
            print(
                f"   execution {ex.execution_id}: version {ex.orchestration_version}, "
                f"{ex.status}, {ex.event_count} events, engine {ex.engine_version}",
                flush=True,
            )
        return 0 if status.status == InstanceStatus.COMPLETED else 1
    finally:
        if rt is not None:
            await rt.shutdown(timeout=5)
        await provider.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durox.demo", description=__doc__)
    parser.add_argument("--db", type=Path, default=Path("demo-data/durox-demo.db"))
    parser.add_argument("--interval-ms", type=int, default=2000, help="timer length per cycle")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("   %(asctime)s.%(msecs)03d trace  %(message)s", "%H:%M:%S")
    )
    traces = logging.getLogger("durox.orchestration")
    traces.addHandler(handler)
    traces.setLevel(logging.INFO)
    traces.propagate = False
    logging.basicConfig(level=logging.WARNING, format="   %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args.db, args.interval_ms))


if __name__ == "__main__":
    sys.exit(main())
