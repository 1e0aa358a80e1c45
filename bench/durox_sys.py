"""durox under the benchmark: the four workloads, and a completion tap.

The tap wraps the store the runtime uses and reports an instance as complete the moment the
turn that made it terminal is acknowledged (committed). That gives each instance's own
completion time without polling the store from the driver, which would add load and a polling
granularity to every latency. With PostgreSQL the runtimes live in worker processes
(`python -m bench.durox_sys worker`) and the tap sends one UDP datagram per completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import CAN_ROUNDS, TIMER_MS, Case, closed_loop, instance_ids, peak_rss_mb, wall
from bench.pgstats import client_dsn, pg_round_trips, pg_version, prepare_pg, role_of
from durox import (
    ActivityContext,
    ActivityRegistry,
    Client,
    OrchestrationContext,
    OrchestrationRegistry,
    Runtime,
    RuntimeOptions,
)
from durox.providers import Provider, SqliteProvider, Store, TurnCommit
from durox.status import TERMINAL

NAMES = {"seq5": "Seq5", "fanout5": "FanOut5", "single": "Single", "timer_can": "TimerCan"}


def registries(activity_ms: float) -> tuple[ActivityRegistry, OrchestrationRegistry]:
    delay = activity_ms / 1000.0

    async def noop(ctx: ActivityContext, x: Any) -> Any:
        if delay:
            await asyncio.sleep(delay)
        return x

    async def seq5(ctx: OrchestrationContext, x: Any) -> Any:
        for _ in range(5):
            x = await ctx.schedule_activity("Noop", x)
        return x

    async def fanout5(ctx: OrchestrationContext, x: Any) -> Any:
        return await ctx.join([ctx.schedule_activity("Noop", x) for _ in range(5)])

    async def single(ctx: OrchestrationContext, x: Any) -> Any:
        return await ctx.schedule_activity("Noop", x)

    async def timer_can(ctx: OrchestrationContext, left: int) -> Any:
        await ctx.schedule_timer(timedelta(milliseconds=TIMER_MS))
        await ctx.schedule_activity("Noop", left)
        if left > 1:
            return await ctx.continue_as_new(left - 1)
        return left

    acts = ActivityRegistry.builder().register("Noop", noop).build()
    orchs = (
        OrchestrationRegistry.builder()
        .register("Seq5", seq5)
        .register("FanOut5", fanout5)
        .register("Single", single)
        .register("TimerCan", timer_can)
        .build()
    )
    return acts, orchs


def first_input(workload: str, i: int) -> Any:
    return CAN_ROUNDS if workload == "timer_can" else i


class CompletionTap:
    """A pass-through `Provider` that calls `on_done(instance_id, wall_time)` after a turn that
    leaves its instance Completed, Failed or Cancelled is committed."""

    def __init__(self, inner: Provider, on_done: Callable[[str, float], None]) -> None:
        self._inner = inner
        self._on_done = on_done
        self._owner: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def fetch_orchestration_item(self, *args: Any, **kwargs: Any) -> Any:
        item = await self._inner.fetch_orchestration_item(*args, **kwargs)
        if item is not None:
            self._owner[item.lock_token] = item.instance_id
        return item

    async def ack_orchestration_item(self, lock_token: str, commit: TurnCommit) -> None:
        await self._inner.ack_orchestration_item(lock_token, commit)
        iid = self._owner.pop(lock_token, None)
        if iid is not None and commit.instance is not None and commit.instance.status in TERMINAL:
            self._on_done(iid, wall())

    async def fetch_orchestration_items(self, *args: Any, **kwargs: Any) -> Any:
        items = await self._inner.fetch_orchestration_items(*args, **kwargs)
        for item in items:
            self._owner[item.lock_token] = item.instance_id
        return items

    async def ack_orchestration_items(self, acks: list[tuple[str, TurnCommit]]) -> Any:
        outcomes = await self._inner.ack_orchestration_items(acks)
        for (lock_token, commit), failed in zip(acks, outcomes, strict=True):
            if failed is not None:
                continue
            iid = self._owner.pop(lock_token, None)
            upd = commit.instance
            if iid is not None and upd is not None and upd.status in TERMINAL:
                self._on_done(iid, wall())
        return outcomes

    async def abandon_orchestration_item(self, lock_token: str, *args: Any, **kw: Any) -> None:
        self._owner.pop(lock_token, None)
        await self._inner.abandon_orchestration_item(lock_token, *args, **kw)


def options(case: Case) -> RuntimeOptions:
    return RuntimeOptions(
        orchestration_concurrency=case.orch_conc,
        activity_concurrency=case.act_conc,
        poll_interval=timedelta(milliseconds=case.extra.get("poll_ms", 200)),
    )


class Waiters:
    """Completion futures by instance id, fed by the tap (in process) or by UDP (workers)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.futures: dict[str, asyncio.Future[float]] = {}
        self.early: dict[str, float] = {}

    def expect(self, iid: str) -> asyncio.Future[float]:
        fut = self.loop.create_future()
        if iid in self.early:
            fut.set_result(self.early.pop(iid))
        else:
            self.futures[iid] = fut
        return fut

    def done(self, iid: str, t: float) -> None:
        fut = self.futures.pop(iid, None)
        if fut is None:
            self.early[iid] = t
        elif not fut.done():
            fut.set_result(t)


async def measure(case: Case, client: Client, waiters: Waiters, tag: str) -> dict[str, Any]:
    name = NAMES[case.workload]

    async def run_one(iid: str, i: int) -> tuple[float, float]:
        fut = waiters.expect(iid)
        t0 = wall()
        await client.start_orchestration(iid, name, first_input(case.workload, i))
        return t0, await asyncio.wait_for(fut, 300)

    return await closed_loop(run_one, instance_ids(tag, case.n), case.inflight)


async def run_sqlite(case: Case) -> dict[str, Any]:
    path = Path(case.workdir) / f"durox-{case.label}.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
    provider = await SqliteProvider.open(path, synchronous=case.sync)
    waiters = Waiters()
    tap = CompletionTap(provider, waiters.done)
    acts, orchs = registries(case.activity_ms)
    runtime = await Runtime.start(tap, acts, orchs, options(case))  # type: ignore[arg-type]
    client = Client(provider)
    runs: list[dict[str, Any]] = []
    try:
        warm = Case(**{**case.__dict__, "n": case.warmup})
        await measure(warm, client, waiters, "warm")
        for r in range(case.runs):
            runs.append(await measure(case, client, waiters, f"r{r}"))
    finally:
        await runtime.shutdown(timeout=10)
        await provider.close()
    return {"runs": runs, "peak_rss_mb": [peak_rss_mb()], "store_version": sqlite_version()}


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


# ---- PostgreSQL: worker processes -------------------------------------------------------


async def _pg_provider(case: Case, dsn: str, pool: int) -> Store:
    from durox.providers import PostgresProvider

    provider: Store = await PostgresProvider.connect(
        dsn, schema=case.extra.get("schema", "durox_bench"), pool_size=pool
    )
    return provider


async def worker_main(case: Case, port: int) -> None:
    """One worker process: a runtime on PostgreSQL that reports completions by UDP and its peak
    memory on stdout when stdin closes or says stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)

    def on_done(iid: str, t: float) -> None:
        sock.sendto(f"{iid}\t{t!r}".encode(), target)

    provider = await _pg_provider(case, case.dsn, case.extra.get("pool", 10))
    acts, orchs = registries(case.activity_ms)
    runtime = await Runtime.start(
        CompletionTap(provider, on_done),  # type: ignore[arg-type]
        acts,
        orchs,
        options(case),
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await runtime.shutdown(timeout=10)
    await provider.close()
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, waiters: Waiters) -> None:
        self.waiters = waiters

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        iid, t = data.decode().split("\t")
        self.waiters.done(iid, float(t))


async def run_postgres(case: Case) -> dict[str, Any]:
    await prepare_pg(case.dsn)
    schema = f"durox_bench_{case.label.split('-', 1)[0]}"  # the case's index: short and unique
    case.extra["schema"] = schema
    import asyncpg

    conn = await asyncpg.connect(case.dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()
    waiters = Waiters()
    transport, _ = await waiters.loop.create_datagram_endpoint(
        lambda: _Udp(waiters), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    provider = await _pg_provider(case, client_dsn(case.dsn), 4)  # creates the schema
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.durox_sys",
            "worker",
            case.to_json(),
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(case.procs)
    ]
    for w in workers:
        assert w.stdout is not None
        line = await w.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"worker did not start: {line!r}")
    client = Client(provider)
    runs: list[dict[str, Any]] = []
    rss: list[float] = []
    try:
        warm = Case(**{**case.__dict__, "n": case.warmup})
        await measure(warm, client, waiters, "warm")
        for r in range(case.runs):
            await pg_round_trips(case.dsn, reset=True)
            result = await measure(case, client, waiters, f"r{r}")
            calls = await pg_round_trips(case.dsn, reset=False)
            activities = case.n * case.activities
            result["round_trips_per_activity"] = calls.get(role_of(case.dsn), 0) / activities
            result["client_round_trips_per_activity"] = calls.get("bench_client", 0) / activities
            runs.append(result)
    finally:
        for w in workers:
            assert w.stdin is not None and w.stdout is not None
            w.stdin.write(b"stop\n")
            await w.stdin.drain()
            out = await w.stdout.read()
            await w.wait()
            with contextlib.suppress(ValueError, IndexError):
                rss.append(json.loads(out.decode().strip().splitlines()[-1])["peak_rss_mb"])
        transport.close()
        await provider.close()
    return {"runs": runs, "peak_rss_mb": rss, "store_version": await pg_version(case.dsn)}


async def run(case: Case) -> dict[str, Any]:
    if case.store == "sqlite":
        return await run_sqlite(case)
    return await run_postgres(case)


if __name__ == "__main__":  # python -m bench.durox_sys worker <case> <port>
    if sys.argv[1] == "worker":
        asyncio.run(worker_main(Case.from_json(sys.argv[2]), int(sys.argv[3])))
