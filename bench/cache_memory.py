"""Peak RSS of one worker process that keeps N instances in its instance cache (issue 18).

`bench.long_history` sizes one kept state with tracemalloc, which sees only Python's own
allocations. What an operator sizes a pod by is the process's resident memory, so this runs a
real `Runtime` (real dispatch loops, a SQLite file) in a fresh child process per setting,
starts N instances of a small orchestration that runs one activity and then waits for an
external event (so each is kept suspended after two turns), waits until every one waits, and
reads the child's own VmHWM (peak resident set) and VmRSS from /proc. The same run with the
cache off (size 0) is the baseline: the difference is what the cache holds.

It also reads the cache's own estimate of what it holds (`InstanceCache.bytes`, the figure the
byte budget bounds), so the two can be compared. `--input-bytes N` starts each instance with an
N-character string instead of a number: the activity hands it back, so the kept coroutine holds
it twice and its history carries it three times, the case where the estimate and the resident
memory part most. `--input-kind dict` makes it a flat object of about that many bytes of small
entries instead, which decodes into far more memory than its JSON takes: the opposite case.

    python -m bench.cache_memory [--instances 10000] [--input-bytes 0] [--input-kind string]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N_DEFAULT = 10_000


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _payload(i: int, input_bytes: int, kind: str) -> Any:
    if not input_bytes:
        return i
    if kind == "dict":  # "k000001":1, is 12 bytes of JSON
        return {f"k{i:02d}{j:05d}": j for j in range(input_bytes // 12)}
    return f"{i:08d}".ljust(input_bytes, "x")


async def _child(
    instances: int, cache: int, db: Path, input_bytes: int, kind: str
) -> dict[str, Any]:
    from durox import (
        ActivityRegistry,
        Client,
        OrchestrationContext,
        OrchestrationRegistry,
        Runtime,
        RuntimeOptions,
    )
    from durox.providers import SqliteProvider

    async def watch(ctx: OrchestrationContext, n: Any) -> Any:
        seen = await ctx.schedule_activity("Read", n)
        await ctx.wait_for_event("stop")
        return seen

    async def read(ctx: Any, n: Any) -> Any:
        return n

    orchestrations = OrchestrationRegistry.builder().register("Watch", watch).build()
    activities = ActivityRegistry.builder().register("Read", read).build()
    provider = await SqliteProvider.open(db)
    client = Client(provider)
    # No byte bound here: this measures what the kept states cost, so none may be evicted.
    options = RuntimeOptions(instance_cache_size=cache, instance_cache_max_bytes=1 << 40)
    rss_idle = _proc_kib("VmRSS")
    runtime = await Runtime.start(provider, activities, orchestrations, options)
    began = time.perf_counter()
    for i in range(instances):
        await client.start_orchestration(f"w-{i:06d}", "Watch", _payload(i, input_bytes, kind))
    # Every instance waits for its event once no queue holds anything: each has run its two
    # turns and its activity (and is kept, when the cache is on).
    turns = runtime._turns  # the bench reads the cache it measures
    deadline = time.monotonic() + 900
    while True:
        q = await client.get_queue_depths()
        depths = (
            q.orchestrator_ready,
            q.orchestrator_delayed,
            q.orchestrator_locked,
            q.worker_ready,
            q.worker_delayed,
            q.worker_locked,
        )
        if not any(depths):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"queues not empty after 900 s: {depths}")
        await asyncio.sleep(0.5)
    settled = time.perf_counter() - began
    out = {
        "instances": instances,
        "cache": cache,
        "input_bytes": input_bytes,
        "input_kind": kind,
        "kept": 0 if turns.cache is None else len(turns.cache),
        "estimated_mib": 0 if turns.cache is None else turns.cache.bytes / 1024 / 1024,
        "rss_before_runtime_mib": rss_idle / 1024,
        "rss_mib": _proc_kib("VmRSS") / 1024,
        "peak_rss_mib": _proc_kib("VmHWM") / 1024,
        "seconds_to_settle": settled,
    }
    await runtime.shutdown(5.0)
    await provider.close()
    return out


def _run_child(instances: int, cache: int, input_bytes: int, kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.cache_memory",
                "--child",
                str(instances),
                str(cache),
                str(Path(tmp) / "mem.db"),
                str(input_bytes),
                kind,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--instances", type=int, default=N_DEFAULT)
    ap.add_argument("--input-bytes", type=int, default=0)
    ap.add_argument("--input-kind", choices=("string", "dict"), default="string")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n, cache, db, size, kind = args.child
        print(json.dumps(asyncio.run(_child(int(n), int(cache), Path(db), int(size), kind))))
        return
    off = _run_child(args.instances, 0, args.input_bytes, args.input_kind)
    on = _run_child(args.instances, args.instances, args.input_bytes, args.input_kind)
    kept = max(1, on["kept"])
    per_kib = (on["rss_mib"] - off["rss_mib"]) * 1024 / kept
    estimated_kib = on["estimated_mib"] * 1024 / kept
    doc = {
        "machine": f"{os.cpu_count()} cores, {os.uname().release}",
        "cache_off": off,
        "cache_on": on,
        "kib_per_kept_instance": per_kib,
        "estimated_kib_per_kept_instance": estimated_kib,
        "estimate_over_rss": estimated_kib / per_kib if per_kib > 0 else None,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
