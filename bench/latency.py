"""`python -m bench.latency`: where the time of one single-activity orchestration goes, from the
client's `start_orchestration` to the return of a `wait_for_orchestration` that was waiting.

Latency is the benchmark's one figure durox does not lead by much (issue 17), and a figure is no
plan: before anything is removed, the floor has to be accounted for. This tool runs single-
activity instances one at a time on an idle runtime and records, with one clock, every hand-off
on the way: each store call (by side: the client's or the runtime's), each dispatcher wake-up,
each trip to SQLite's store thread and each commit that wrote (an fsync under WAL), each
PostgreSQL statement (one statement is one transaction and one round trip in that store), each
NOTIFY that arrived, and the orchestration's and the activity's own code. It changes nothing in
the runtime: the stores are wrapped from outside (a pass-through provider, and timing wrappers
around the two stores' innermost calls, installed only in this process), so it measures the
dispatch path as it is, whichever shape that path has today.

On PostgreSQL the client has a provider of its own (as a separate process would), so the
runtime hears of a start by NOTIFY; on SQLite both share one provider, as in the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CALLER: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "durox_latency_caller", default=("?", "?")
)
"""(side, provider method) of the store call in progress in this task."""

WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
STORE_FUNCTION = re.compile(r"\.durox_\w+\(")


def pg_statement_writes(name: str, sql: str, result: Any) -> bool:
    """Whether one PostgreSQL statement wrote (so its commit waited for a WAL flush): plain
    DML, or a call of one of the store's functions, which all write, except that a fetch which
    found nothing leased nothing. `server_statements` checks this against the server's own
    WAL record counts."""
    if WRITES.search(sql):
        return True
    if STORE_FUNCTION.search(sql):
        return not name.startswith("fetch") or _nonempty(result)
    return False


@dataclass
class Mark:
    """One thing that happened: `t` and `end` in ms on the tool's clock (perf_counter)."""

    kind: str  # call | wake | hop | commit | statement | notify | code | client
    what: str
    side: str
    t: float
    end: float
    detail: dict[str, Any] = field(default_factory=dict)


class Recorder:
    def __init__(self) -> None:
        self.marks: list[Mark] = []
        self.origin = time.perf_counter()

    def now(self) -> float:
        return (time.perf_counter() - self.origin) * 1000.0

    def add(self, kind: str, what: str, side: str, t: float, end: float, **detail: Any) -> None:
        self.marks.append(Mark(kind, what, side, t, end, detail))

    def window(self, t0: float, t1: float) -> list[Mark]:
        """Marks that overlap [t0, t1], in the order they began; a wake-up only if it ended
        inside (a dispatcher that went back to waiting has not been woken yet). A store call
        the client's read overtook (the commit is visible before its caller resumes) ends
        after t1 and still counts."""
        return sorted(
            (
                m
                for m in self.marks
                if m.end >= t0 and m.t <= t1 and (m.kind != "wake" or m.end <= t1)
            ),
            key=lambda m: (m.t, m.end),
        )


def _nonempty(result: Any) -> bool:
    if result is None:
        return False
    if isinstance(result, list | tuple):
        return bool(result)
    return True


class TracedStore:
    """A pass-through store: every coroutine method is timed and tagged with `side`."""

    def __init__(self, inner: Any, side: str, rec: Recorder) -> None:
        self._inner = inner
        self._side = side
        self._rec = rec

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        rec, side = self._rec, self._side

        async def traced(*args: Any, **kwargs: Any) -> Any:
            token = CALLER.set((side, name))
            t = rec.now()
            try:
                result = await attr(*args, **kwargs)
            finally:
                CALLER.reset(token)
            end = rec.now()
            if name == "wait_for_work":
                timeout = kwargs.get("timeout_s", args[1] if len(args) > 1 else 0.0)
                woken = (end - t) < float(timeout) * 1000.0 * 0.95
                rec.add(
                    "wake",
                    str(kwargs.get("kind", args[0] if args else "?")),
                    side,
                    t,
                    end,
                    woken=woken,
                )
            else:
                rec.add("call", name, side, t, end, items=_nonempty(result))
            return result

        return traced


@contextlib.contextmanager
def _patched(owner: Any, name: str, make: Callable[[Any], Any]) -> Iterator[bool]:
    """Replace `owner.name` with `make(original)` for the duration; False (and nothing
    replaced) when the store no longer has that attribute."""
    original = getattr(owner, name, None)
    if original is None:
        log.warning("%s.%s not found: that part is not instrumented", owner.__name__, name)
        yield False
        return
    setattr(owner, name, make(original))
    try:
        yield True
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def sqlite_taps(rec: Recorder) -> Iterator[list[str]]:
    """Time each operation's trip to the store thread (queued, run, resumed on the loop) and
    each group transaction, with whether it wrote (its commit then reaches the disk)."""
    from durox.providers.sqlite._executor import GroupCommit

    def make_run(original: Any) -> Any:
        async def run(self: Any, fn: Any) -> Any:
            side, method = CALLER.get()
            t = rec.now()
            holder: dict[str, float] = {}

            def timed(conn: Any) -> Any:
                holder["begin"] = rec.now()
                return fn(conn)

            result = await original(self, timed)
            end = rec.now()
            rec.add("hop", method, side, t, end, queued_ms=holder.get("begin", end) - t)
            return result

        return run

    def make_group(original: Any) -> Any:
        def run_group(self: Any, group: list[Any]) -> Any:
            t = rec.now()
            before = self._conn.total_changes
            out = original(self, group)
            end = rec.now()
            wrote = self._conn.total_changes != before
            rec.add(
                "commit" if wrote else "read-tx",
                f"{len(group)} op(s)",
                "store thread",
                t,
                end,
                ops=len(group),
                wrote=wrote,
            )
            return out

        return run_group

    missing: list[str] = []
    with (
        _patched(GroupCommit, "run", make_run) as a,
        _patched(GroupCommit, "_run_group", make_group) as b,
    ):
        missing += [] if a else ["GroupCommit.run"]
        missing += [] if b else ["GroupCommit._run_group"]
        yield missing


@contextlib.contextmanager
def postgres_taps(rec: Recorder, sides: dict[int, str]) -> Iterator[list[str]]:
    """Time each named statement (one round trip, one transaction) and each NOTIFY that
    arrives; `sides` maps a `Database` object's id to the side that owns it."""
    from durox.providers.postgres._driver import Database

    def make_call(original: Any) -> Any:
        async def call(self: Any, method: str, name: str, *args: Any) -> Any:
            side, caller = CALLER.get()
            t = rec.now()
            result = None
            try:
                result = await original(self, method, name, *args)
                return result
            finally:
                sql = self._sql.get(name, "") if hasattr(self, "_sql") else ""
                rec.add(
                    "statement",
                    name,
                    sides.get(id(self), side),
                    t,
                    rec.now(),
                    caller=caller,
                    writes=pg_statement_writes(name, sql, result),
                )

        return call

    def make_notify(original: Any) -> Any:
        def on_notify(self: Any, conn: Any, pid: int, channel: str, payload: str) -> Any:
            t = rec.now()
            rec.add("notify", payload[:1] or "?", sides.get(id(self), "?"), t, t, payload=payload)
            return original(self, conn, pid, channel, payload)

        return on_notify

    def make_ended(original: Any) -> Any:
        # The ended channel (migration 0008): the waiting client's wake-up.
        def on_ended(self: Any, conn: Any, pid: int, channel: str, payload: str) -> Any:
            t = rec.now()
            rec.add("notify", "ended", sides.get(id(self), "?"), t, t, payload=payload)
            return original(self, conn, pid, channel, payload)

        return on_ended

    missing: list[str] = []
    with (
        _patched(Database, "_call", make_call) as a,
        _patched(Database, "_on_notify", make_notify) as b,
        _patched(Database, "_on_ended", make_ended) as c,
    ):
        missing += [] if a else ["Database._call"]
        missing += [] if b else ["Database._on_notify"]
        missing += [] if c else ["Database._on_ended"]
        yield missing


async def server_statements(dsn: str, sql_by_name: dict[str, str], n: int) -> list[dict[str, Any]]:
    """The server's own count of what each role ran since the last reset, per instance: calls,
    WAL records and mean execution time per named statement (BEGIN/COMMIT included when
    `track_utility` is on). This spans the whole measured run, idle polls and heartbeats
    included, and checks the per-call figures the driver-side wrapper records."""
    import asyncpg

    names = {" ".join(sql.split()): name for name, sql in sql_by_name.items()}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT r.rolname, s.query, s.calls, s.wal_records, s.mean_exec_time"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND s.query NOT LIKE '%pg_stat_statements%'"
            " ORDER BY s.calls DESC"
        )
    finally:
        await conn.close()
    return [
        {
            "role": row["rolname"],
            "statement": names.get(
                " ".join(row["query"].split()), " ".join(row["query"].split())[:40]
            ),
            "calls_per_instance": row["calls"] / n,
            "wal_records_per_instance": int(row["wal_records"]) / n,
            "mean_exec_ms": row["mean_exec_time"],
        }
        for row in rows
    ]


# ---- milestones --------------------------------------------------------------------------

MILESTONES: list[tuple[str, Callable[[Mark], bool]]] = [
    (
        "start committed (start_orchestration returns)",
        lambda m: m.kind == "client" and m.what == "start_orchestration",
    ),
    (
        "orchestration dispatcher woken",
        lambda m: m.kind == "wake" and m.what == "orchestration" and m.detail.get("woken", False),
    ),
    (
        "turn 1 fetched",
        lambda m: (
            m.kind == "call"
            and m.what.startswith("fetch_orchestration_item")
            and m.detail.get("items", False)
        ),
    ),
    ("turn 1 code ran", lambda m: m.kind == "code" and m.what == "orchestration"),
    (
        "turn 1 committed (activity scheduled)",
        lambda m: m.kind == "call" and m.what.startswith("ack_orchestration_item"),
    ),
    (
        "activity dispatcher woken",
        lambda m: m.kind == "wake" and m.what == "activity" and m.detail.get("woken", False),
    ),
    (
        "activity fetched",
        lambda m: (
            m.kind == "call"
            and m.what.startswith("fetch_work_item")
            and m.detail.get("items", False)
        ),
    ),
    ("activity code ran", lambda m: m.kind == "code" and m.what == "activity"),
    (
        "activity result committed",
        lambda m: m.kind == "call" and m.what.startswith("ack_work_item"),
    ),
    (
        "orchestration dispatcher woken again",
        lambda m: m.kind == "wake" and m.what == "orchestration" and m.detail.get("woken", False),
    ),
    (
        "turn 2 fetched",
        lambda m: (
            m.kind == "call"
            and m.what.startswith("fetch_orchestration_item")
            and m.detail.get("items", False)
        ),
    ),
    ("turn 2 code ran", lambda m: m.kind == "code" and m.what == "orchestration"),
    (
        "turn 2 committed (Completed)",
        lambda m: m.kind == "call" and m.what.startswith("ack_orchestration_item"),
    ),
    (
        "client saw it (wait_for_orchestration returns)",
        lambda m: m.kind == "client" and m.what == "wait_for_orchestration",
    ),
]
"""The hand-offs of the path as it stands, in order; one the runtime no longer makes (say, an
activity run in the same worker without a fetch) is reported as absent, not as an error."""
WAKES = [k for k, (label, _) in enumerate(MILESTONES) if "woken" in label]
"""Which of them are wake-ups (matched between their neighbours, see `milestones`)."""


def milestones(marks: list[Mark], t0: float) -> list[tuple[str, float | None]]:
    """Each milestone's time (ms after the start call), or None where it did not happen.

    The chain of calls and code is matched first: each the first unused match that ended
    after the previous one began (hand-offs overlap: a dispatcher can be woken, and even
    fetch, before the call that committed has returned to its caller). A wake-up is then
    looked for only between its neighbours in that chain, so one that did not happen (the
    work was found by a polling dispatcher, or by one still busy with a fetch) leaves no
    hole that shifts the rest."""
    ends = sorted(marks, key=lambda m: m.end)
    used: set[int] = set()
    hits: list[Mark | None] = [None] * len(MILESTONES)
    floor = t0
    for k, (_, match) in enumerate(MILESTONES):
        if k in WAKES:
            continue
        hit = next((m for m in ends if m.end >= floor and id(m) not in used and match(m)), None)
        if hit is not None:
            hits[k] = hit
            used.add(id(hit))
            floor = hit.t
    for k in WAKES:
        before = next((h for h in reversed(hits[:k]) if h is not None), None)
        after = next((h for h in hits[k + 1 :] if h is not None), None)
        low = before.t if before is not None else t0
        high = after.end if after is not None else float("inf")
        match = MILESTONES[k][1]
        hits[k] = next(
            (m for m in ends if low <= m.end <= high and id(m) not in used and match(m)), None
        )
        if hits[k] is not None:
            used.add(id(hits[k]))
    return [
        (label, None if h is None else h.end - t0)
        for (label, _), h in zip(MILESTONES, hits, strict=True)
    ]


def account(marks: list[Mark], t0: float, t1: float) -> dict[str, Any]:
    """Counts for one instance's window."""
    calls = [m for m in marks if m.kind == "call"]
    by_side: dict[str, dict[str, int]] = {}
    for m in calls:
        by_side.setdefault(m.side, {}).setdefault(m.what, 0)
        by_side[m.side][m.what] += 1
    wakes = [m for m in marks if m.kind == "wake"]
    hops = [m for m in marks if m.kind == "hop"]
    statements = [m for m in marks if m.kind == "statement"]
    commits = [m for m in marks if m.kind == "commit"] + [
        m for m in statements if m.detail.get("writes")
    ]
    idle = [m for m in calls if m.what.startswith("fetch") and not m.detail.get("items", True)]
    return {
        "total_ms": t1 - t0,
        "store_calls": by_side,
        "fetches_that_found_nothing": len(idle),
        "client_polls": by_side.get("client", {}).get("get_instance", 0),
        "commits_that_wrote": len(commits),
        "read_only_transactions": sum(1 for m in marks if m.kind == "read-tx")
        + sum(1 for m in statements if not m.detail.get("writes")),
        "round_trips": {
            "sqlite_thread_trips": len(hops),
            "sqlite_thread_hops": 2 * len(hops),
            "postgres_statements": {
                side: sum(1 for m in statements if m.side == side)
                for side in sorted({m.side for m in statements})
            },
        },
        "wakeups": {
            "woken": sum(1 for m in wakes if m.detail.get("woken")),
            "timed_out": sum(1 for m in wakes if not m.detail.get("woken")),
            "notifies_received": sum(1 for m in marks if m.kind == "notify"),
        },
        "sqlite_queue_ms": [round(m.detail["queued_ms"], 3) for m in hops],
    }


def timeline(marks: list[Mark], t0: float) -> list[str]:
    lines = []
    for m in marks:
        dur = m.end - m.t
        extra = ""
        if m.kind == "wake":
            extra = " woken" if m.detail.get("woken") else " timed out"
        elif m.kind == "call" and m.what.startswith(("fetch", "get")):
            extra = "" if m.detail.get("items", True) else " (nothing)"
        elif m.kind == "statement":
            extra = f" for {m.detail.get('caller')}" + (
                " [writes]" if m.detail.get("writes") else ""
            )
        elif m.kind == "hop":
            extra = f" (queued {m.detail['queued_ms']:.3f} ms)"
        lines.append(
            f"{m.t - t0:9.3f} -> {m.end - t0:9.3f} ms  {dur:7.3f}  {m.side:<12} {m.kind:<9} "
            f"{m.what}{extra}"
        )
    return lines


# ---- the run -----------------------------------------------------------------------------


async def _open(store: str, rec: Recorder, args: argparse.Namespace, work: Path) -> Any:
    """(runtime's store, client's store, sides by Database id, closers)."""
    if store == "sqlite":
        from durox.providers import SqliteProvider

        path = work / "latency.db"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")
        provider = await SqliteProvider.open(path, synchronous=args.sync)
        return provider, provider, {}, [provider.close]
    import asyncpg

    from bench.pgstats import client_dsn, prepare_pg
    from durox.providers import PostgresProvider

    await prepare_pg(args.pg_dsn)
    conn = await asyncpg.connect(args.pg_dsn)
    await conn.execute('DROP SCHEMA IF EXISTS "durox_latency" CASCADE')
    await conn.close()
    runtime_store = await PostgresProvider.connect(args.pg_dsn, schema="durox_latency")
    client_store = await PostgresProvider.connect(
        client_dsn(args.pg_dsn), schema="durox_latency", pool_size=2
    )
    sides = {id(runtime_store._db): "runtime", id(client_store._db): "client"}
    return runtime_store, client_store, sides, [runtime_store.close, client_store.close]


async def measure(store: str, args: argparse.Namespace) -> dict[str, Any]:
    from durox import (
        ActivityContext,
        ActivityRegistry,
        Client,
        OrchestrationContext,
        OrchestrationRegistry,
        Runtime,
        RuntimeOptions,
    )

    rec = Recorder()
    work = Path(args.workdir)

    async def noop(ctx: ActivityContext, x: Any) -> Any:
        t = rec.now()
        rec.add("code", "activity", "runtime", t, t)
        return x

    async def single(ctx: OrchestrationContext, x: Any) -> Any:
        t = rec.now()
        rec.add("code", "orchestration", "runtime", t, t)
        return await ctx.schedule_activity("Noop", x)

    acts = ActivityRegistry.builder().register("Noop", noop).build()
    orchs = OrchestrationRegistry.builder().register("Single", single).build()
    sides: dict[int, str] = {}
    taps = sqlite_taps(rec) if store == "sqlite" else postgres_taps(rec, sides)
    with taps as missing:
        runtime_store, client_store, found, closers = await _open(store, rec, args, work)
        sides.update(found)
        kw: dict[str, Any] = {}
        if args.widths:
            oc, ac = (int(x) for x in args.widths.split("/"))
            kw = {"orchestration_concurrency": oc, "activity_concurrency": ac}
        options = RuntimeOptions(**kw)
        runtime = await Runtime.start(
            TracedStore(runtime_store, "runtime", rec),  # type: ignore[arg-type]
            acts,
            orchs,
            options,
        )
        client = Client(TracedStore(client_store, "client", rec))  # type: ignore[arg-type]
        spans: list[tuple[str, float, float]] = []
        try:
            for i in range(args.warmup + args.n):
                if i == args.warmup and store == "postgres":
                    from bench.pgstats import pg_round_trips

                    await pg_round_trips(args.pg_dsn, reset=True)
                await asyncio.sleep(args.gap_ms / 1000.0)  # idle: every dispatcher waiting
                iid = f"lat-{i:05d}"
                t0 = rec.now()
                await client.start_orchestration(iid, "Single", i)
                t_started = rec.now()
                status = await client.wait_for_orchestration(iid, 30)
                t1 = rec.now()
                rec.add("client", "start_orchestration", "client", t0, t_started)
                rec.add("client", "wait_for_orchestration", "client", t_started, t1)
                if status.status != "Completed":
                    raise RuntimeError(f"{iid} ended {status.status}: {status.error}")
                if i >= args.warmup:
                    spans.append((iid, t0, t1))
            await asyncio.sleep(args.gap_ms / 1000.0)  # the last instance's calls return
            server: list[dict[str, Any]] = []
            if store == "postgres":
                sql = dict(getattr(runtime_store._db, "_sql", {}))
                server = await server_statements(args.pg_dsn, sql, len(spans))
        finally:
            await runtime.shutdown(timeout=10)
            for close in closers:
                await close()
    instances = []
    for iid, t0, t1 in spans:
        marks = rec.window(t0, t1)
        instances.append(
            {
                "instance": iid,
                **account(marks, t0, t1),
                "milestones": milestones(marks, t0),
                "timeline": timeline(marks, t0),
            }
        )
    return {**summarize(store, args, instances, missing), "server_statements": server}


def summarize(
    store: str, args: argparse.Namespace, instances: list[dict[str, Any]], missing: list[str]
) -> dict[str, Any]:
    totals = sorted(x["total_ms"] for x in instances)
    median = sorted(instances, key=lambda x: x["total_ms"])[len(instances) // 2]
    segments: list[dict[str, Any]] = []
    for k, (label, _) in enumerate(MILESTONES):
        gaps = []
        for x in instances:
            here = x["milestones"][k][1]
            before = [t for _, t in x["milestones"][:k] if t is not None]
            if here is not None:
                gaps.append(here - (before[-1] if before else 0.0))
        segments.append(
            {
                "to": label,
                "seen_in": f"{len(gaps)}/{len(instances)}",
                "median_ms": statistics.median(gaps) if gaps else None,
            }
        )

    def med(key: Callable[[dict[str, Any]], float]) -> float:
        return float(statistics.median(key(x) for x in instances))

    return {
        "store": store,
        "durability": f"WAL, synchronous={args.sync}"
        if store == "sqlite"
        else "fsync=on, synchronous_commit=on (the server's settings)",
        "instances": len(instances),
        "p50_ms": statistics.median(totals),
        "p99_ms": totals[min(len(totals) - 1, round(0.99 * len(totals)))],
        "median_counts": {
            "commits_that_wrote": med(lambda x: x["commits_that_wrote"]),
            "read_only_transactions": med(lambda x: x["read_only_transactions"]),
            "client_polls": med(lambda x: x["client_polls"]),
            "fetches_that_found_nothing": med(lambda x: x["fetches_that_found_nothing"]),
            "sqlite_thread_trips": med(lambda x: x["round_trips"]["sqlite_thread_trips"]),
            "postgres_statements": med(
                lambda x: sum(x["round_trips"]["postgres_statements"].values())
            ),
            "wakeups_woken": med(lambda x: x["wakeups"]["woken"]),
            "wakeups_timed_out": med(lambda x: x["wakeups"]["timed_out"]),
            "notifies_received": med(lambda x: x["wakeups"]["notifies_received"]),
        },
        "segments": segments,
        "median_instance": median,
        "every_instance": instances,
        "not_instrumented": missing,
        "loadavg": os.getloadavg(),
    }


def render(result: dict[str, Any]) -> str:
    r = result
    lines = [
        f"== {r['store']} ({r['durability']}): {r['instances']} instances, one at a time; "
        f"start -> client sees Completed p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
        f"(load average {r['loadavg'][0]:.1f})",
        "per instance (median): " + ", ".join(f"{k} {v:g}" for k, v in r["median_counts"].items()),
        "where the time goes (median gap to each hand-off, ms):",
    ]
    for s in r["segments"]:
        ms = "   absent" if s["median_ms"] is None else f"{s['median_ms']:9.3f}"
        lines.append(f"  {ms}  {s['to']}  [{s['seen_in']}]")
    m = r["median_instance"]
    lines.append(f"the median instance ({m['instance']}, {m['total_ms']:.2f} ms), every mark:")
    lines.append("   began ->     ended       took  side         kind      what")
    lines += ["  " + t for t in m["timeline"]]
    if r.get("server_statements"):
        lines.append(
            "the server's count per instance, whole measured run (idle polls and "
            "heartbeats included): role, statement, calls, WAL records, mean exec ms"
        )
        for x in r["server_statements"]:
            lines.append(
                f"  {x['role']:<13} {x['statement']:<32} {x['calls_per_instance']:6.2f} "
                f"{x['wal_records_per_instance']:7.2f} {x['mean_exec_ms']:7.3f}"
            )
    if r["not_instrumented"]:
        lines.append("not instrumented (the store changed): " + ", ".join(r["not_instrumented"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    ap.add_argument("--store", default="sqlite", choices=("sqlite", "postgres", "both"))
    ap.add_argument("--n", type=int, default=30, help="measured instances")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--gap-ms", type=float, default=50.0, help="idle time before each start")
    ap.add_argument("--sync", default="FULL", help="SQLite synchronous level")
    ap.add_argument("--widths", default="", help="orch/act dispatcher widths (default: durox's)")
    ap.add_argument("--pg-dsn", default=os.environ.get("DUROX_TEST_PG_DSN", ""))
    ap.add_argument("--workdir", default=str(Path(__file__).parent / ".work" / "latency"))
    ap.add_argument("--json", default="", help="also write every figure here")
    args = ap.parse_args(argv)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if "postgres" in stores and not args.pg_dsn:
        ap.error("PostgreSQL needs --pg-dsn or DUROX_TEST_PG_DSN")
    results = []
    for store in stores:
        result = asyncio.run(measure(store, args))
        results.append(result)
        print(render(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
