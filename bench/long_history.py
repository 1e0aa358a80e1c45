"""Per-turn cost against history length, with the instance cache and without (issue 18).

A turn on an instance nobody keeps decodes and replays its whole history, so its cost grows
with the history; a turn on a kept state (`durox.runtime._cache`) feeds the new messages only.
Three measures, all on this machine, one process:

- engine: one turn of a sequential orchestration whose history has L events, cold (decode the
  stored JSON and replay, `run_turn`) and kept (`Suspended.resume`), the engine alone;
- sqlite: the same turn as a worker runs it against a SQLite file (fetch, turn, acknowledge:
  `TurnRunner.fetch` + `run`), with the cache and with a worker that keeps nothing;
- memory: what one kept instance costs (tracemalloc, kept states of one orchestration at L
  events), and the total at the default bound (`RuntimeOptions.instance_cache_size`).

And one execution of `--long` sequential activities end to end, with and without the cache.

    python -m bench.long_history [--lengths 10,100,1000,10000] [--long 2000] [--out FILE]
    python -m bench.long_history --plot FILE      # redraw FILE's PNG (bench/run.sh's venv)

Writes a JSON document (and a PNG beside it when matplotlib is importable).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

from durox import OrchestrationRegistry, RuntimeObserver, RuntimeOptions
from durox.core import events as ev
from durox.core.codec import decode_events, encode_event
from durox.core.compat import CURRENT_ENGINE
from durox.core.context import OrchestrationContext
from durox.core.replay import Suspended, TurnResult, run_turn, run_turn_keeping
from durox.core.versions import SemverRange
from durox.providers import SqliteProvider
from durox.runtime._orchestrations import TurnRunner

T0 = 1_700_000_000_000
LOCK_MS = 60_000


async def steps(ctx: OrchestrationContext, n: int) -> int:
    """n sequential activities, as a long-lived pipeline runs them."""
    total = 0
    for k in range(n):
        total += await ctx.schedule_activity("Step", k)
    return total


REG = OrchestrationRegistry.builder().register("Steps", steps).build()


# ---- engine --------------------------------------------------------------------------


def stored_history(length: int, activities: int) -> list[str]:
    """A running `steps` execution with `length` events (odd: a start, then pairs), as the
    store holds it: one JSON text per event."""
    history: list[ev.Event] = [
        ev.OrchestrationStarted(1, T0, "Steps", "1.0.0", activities, CURRENT_ENGINE.version)
    ]
    k = 0
    while len(history) + 2 <= length:
        eid = len(history) + 1
        history.append(ev.ActivityScheduled(eid, T0 + eid, "Step", k))
        history.append(ev.ActivityCompleted(eid + 1, T0 + eid + 1, eid, 1))
        k += 1
    eid = len(history) + 1
    history.append(ev.ActivityScheduled(eid, T0 + eid, "Step", k))  # awaited now
    return [encode_event(e) for e in history]


def _args(history: list[ev.Event], message: ev.Message, now: int) -> dict[str, Any]:
    return {
        "instance_id": "bench",
        "execution_id": 1,
        "history": history,
        "messages": [message],
        "resolve": REG.resolve,
        "now_ms": now,
        "engine_version": CURRENT_ENGINE.version,
        "context_factory": OrchestrationContext,
    }


def engine_turns(length: int, turns: int) -> dict[str, float]:
    """Median µs of one turn at `length` events: cold (decode + replay) and kept."""
    texts = stored_history(length, activities=10**9)
    last = len(texts)  # the awaited ActivityScheduled
    cold = []
    for _ in range(turns):
        began = time.perf_counter()
        history = decode_events(texts)
        r = run_turn(**_args(history, ev.ActivityResult("bench", 1, last, 1), T0 + 10**6))
        cold.append(time.perf_counter() - began)
        assert isinstance(r, TurnResult) and r.status == "Running"
    r0, state = run_turn_keeping(
        **_args(decode_events(texts), ev.ActivityResult("bench", 1, last, 1), T0 + 10**6)
    )
    assert isinstance(r0, TurnResult) and state is not None
    kept = []
    for _ in range(turns):
        awaited = state.history_length  # the activity the last turn scheduled
        began = time.perf_counter()
        r, state = state.resume([ev.ActivityResult("bench", 1, awaited, 1)], T0 + 10**6)
        kept.append(time.perf_counter() - began)
        assert state is not None
    state.close()
    return {
        "cold_us": statistics.median(cold) * 1e6,
        "kept_us": statistics.median(kept) * 1e6,
    }


# ---- sqlite --------------------------------------------------------------------------


def _runner(provider: SqliteProvider, worker: str, cache: int) -> TurnRunner:
    opts = RuntimeOptions(instance_cache_size=cache, sticky_window=timedelta(0))
    return TurnRunner(
        provider,
        opts,
        CURRENT_ENGINE,
        RuntimeObserver(),
        worker,
        REG,
        SemverRange("0.0.0", CURRENT_ENGINE.version),
        batch=False,
    )


async def _answer(provider: SqliteProvider) -> None:
    w = await provider.fetch_work_item(LOCK_MS)
    assert w is not None
    a = w.work
    await provider.ack_work_item(
        w.lock_token, ev.ActivityResult(a.instance_id, a.execution_id, a.event_id, 1)
    )


async def _turn(r: TurnRunner) -> float:
    began = time.perf_counter()
    (item,) = await r.fetch(1)
    await r.run(item)
    return time.perf_counter() - began


async def sqlite_turns(lengths: list[int], turns: int) -> list[dict[str, Any]]:
    """Median ms of a turn (fetch, turn, ack) when the history reaches each length."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        provider = await SqliteProvider.open(Path(tmp) / "bench.db")
        try:
            kept, cold = _runner(provider, "kept", 1000), _runner(provider, "cold", 0)
            await provider.start_instance(ev.StartOrchestration("i", "Steps", None, 10**9))
            await _turn(kept)
            length = 2
            for target in lengths:
                while length < target:  # grow the history on kept state (fast)
                    await _answer(provider)
                    await _turn(kept)
                    length += 2
                warm_t, cold_t = [], []
                await _answer(provider)
                await _turn(kept)  # a current kept state at about `target` events
                for _ in range(turns):
                    await _answer(provider)
                    warm_t.append(await _turn(kept))
                for _ in range(turns):
                    await _answer(provider)
                    cold_t.append(await _turn(cold))
                length += 2 * (2 * turns + 1)
                assert kept.cache is not None
                out.append(
                    {
                        "events": target,
                        "kept_ms": statistics.median(warm_t) * 1e3,
                        "cold_ms": statistics.median(cold_t) * 1e3,
                    }
                )
        finally:
            await provider.close()
    return out


async def long_execution(activities: int, cache: int) -> float:
    """Seconds for one execution of `activities` sequential activities, turn by turn."""
    with tempfile.TemporaryDirectory() as tmp:
        provider = await SqliteProvider.open(Path(tmp) / "bench.db")
        try:
            r = _runner(provider, "w", cache)
            await provider.start_instance(ev.StartOrchestration("i", "Steps", None, activities))
            began = time.perf_counter()
            await _turn(r)
            for _ in range(activities):
                await _answer(provider)
                await _turn(r)
            took = time.perf_counter() - began
            info = await provider.get_instance("i")
            assert info is not None and info.status == "Completed", info
            return took
        finally:
            await provider.close()


# ---- memory --------------------------------------------------------------------------


def kept_state_bytes(length: int, count: int) -> float:
    """Bytes per kept state of `steps` at `length` events (tracemalloc, `count` of them)."""
    texts = stored_history(length, activities=10**9)
    message = ev.ActivityResult("bench", 1, len(texts), 1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states: list[Suspended] = []
    for i in range(count):
        history = decode_events(texts)
        args = _args(history, message, T0 + 10**6)
        args["instance_id"] = f"bench-{i}"
        _, state = run_turn_keeping(**args)
        assert state is not None
        states.append(state)
        del history, args
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for s in states:
        s.close()
    return (after - before) / count


# ---- report --------------------------------------------------------------------------


def plot(doc: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [r["events"] for r in doc["engine"]]
    a.loglog(xs, [r["cold_us"] for r in doc["engine"]], "o-", label="cold replay")
    a.loglog(xs, [r["kept_us"] for r in doc["engine"]], "o-", label="kept state")
    a.set(title="engine: one turn", xlabel="history events", ylabel="µs per turn")
    xs = [r["events"] for r in doc["sqlite"]]
    b.loglog(xs, [r["cold_ms"] for r in doc["sqlite"]], "o-", label="no cache")
    b.loglog(xs, [r["kept_ms"] for r in doc["sqlite"]], "o-", label="instance cache")
    b.set(title="SQLite worker: fetch + turn + ack", xlabel="history events", ylabel="ms per turn")
    for ax in (a, b):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=100)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="10,100,1000,10000")
    ap.add_argument("--turns", type=int, default=7, help="turns measured per point")
    ap.add_argument("--long", type=int, default=2000, help="activities of the long execution")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="only redraw the PNG of a result")
    args = ap.parse_args()
    if args.plot:
        print(plot(json.loads(args.plot.read_text()), args.plot))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    default_bound = RuntimeOptions().instance_cache_size
    doc: dict[str, Any] = {"lengths": lengths, "default_cache_size": default_bound}
    doc["engine"] = [{"events": n, **engine_turns(n, args.turns)} for n in lengths]
    doc["sqlite"] = await sqlite_turns(lengths, args.turns)
    doc["memory"] = []
    for n in lengths[:3]:
        per = kept_state_bytes(n, 200)
        doc["memory"].append(
            {
                "events": n,
                "bytes_per_instance": per,
                "mb_at_default_bound": per * default_bound / 2**20,
            }
        )
    if args.long:
        doc["long_execution"] = {
            "activities": args.long,
            "kept_s": await long_execution(args.long, 1000),
            "cold_s": await long_execution(args.long, 0),
        }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        png = plot(doc, args.out)
        if png:
            print(f"plot: {png}")


if __name__ == "__main__":
    asyncio.run(main())
