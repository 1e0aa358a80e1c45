"""The ratio table and the plot. Ratios are durox's figure divided by the other system's (or by
the machine's limit), always from the same run; a ratio above 1 means durox is faster."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def _group(case: dict[str, Any]) -> tuple[str, str]:
    store = "sqlite" if case["store"] in ("sqlite", "temporal-dev") else case["store"]
    load = case["workload"] + (f"+{case['activity_ms']:g}ms" if case["activity_ms"] else "")
    return store, load


def _config(case: dict[str, Any]) -> str:
    parts = [f"inflight {case['inflight']}", f"disp {case['orch_conc']}/{case['act_conc']}"]
    if case["store"] == "postgres" and case["system"] == "durox":
        parts.append(f"{case['procs']} proc")
    if case["store"] == "sqlite" and case["system"] in ("durox", "dbos"):
        parts.append(case["sync"])
    if case["store"] == "temporal-dev":
        parts.append("dev server")
    return ", ".join(parts)


def table(doc: dict[str, Any]) -> list[Row]:
    """One row per case. A peer's ratio is durox's best figure at the stated sync level in the
    same store and workload with the same dispatcher widths as the peer (durox's default, which
    the peers are given too), or at any width when no durox case matches."""
    sync = next((c["case"]["sync"] for c in doc["cases"]), "FULL")
    best: dict[tuple[str, str], float] = {}
    same_width: dict[tuple[str, str, int, int], float] = {}
    for r in doc["cases"]:
        c = r["case"]
        if r.get("ok") and c["system"] == "durox" and (c["store"] != "sqlite" or c["sync"] == sync):
            key = _group(c)
            rate = r["median"]["act_per_s"]
            best[key] = max(best.get(key, 0.0), rate)
            wide = (*key, c["orch_conc"], c["act_conc"])
            same_width[wide] = max(same_width.get(wide, 0.0), rate)
    rows: list[Row] = []
    for r in doc["cases"]:
        c = r["case"]
        key = _group(c)
        row: Row = {
            "store": key[0],
            "workload": key[1],
            "system": c["system"],
            "config": _config(c),
            "ok": bool(r.get("ok")),
            "off_sync": c["store"] == "sqlite"
            and c["system"] in ("durox", "dbos")
            and c["sync"] != sync,
        }
        if r.get("ok"):
            m = r["median"]
            row |= {
                "act_per_s": m["act_per_s"],
                "orch_per_s": m["orch_per_s"],
                "p50_ms": m["p50_ms"],
                "p95_ms": m["p95_ms"],
                "p99_ms": m["p99_ms"],
                "peak_rss_mb": max(r.get("peak_rss_mb") or [0.0]),
                "rt_per_act": m.get("round_trips_per_activity"),
            }
            durox = same_width.get((*key, c["orch_conc"], c["act_conc"])) or best.get(key)
            if c["system"] != "durox" and durox:
                row["durox_ratio"] = durox / m["act_per_s"] if m["act_per_s"] else None
        else:
            row["error"] = r.get("error")
        rows.append(row)
    lim = doc.get("limits", {})
    for level, rate in lim.get("sqlite_commits_per_s", {}).items():
        key = ("sqlite", "seq5")
        rows.append(_limit_row("sqlite", f"SQLite commits/s (WAL, {level})", rate, best.get(key)))
    for name, label in (
        ("pgbench_simple_update_tps", "pgbench simple-update TPS"),
        ("skip_locked_dequeues_per_s", "SKIP LOCKED dequeues/s"),
    ):
        if name in lim:
            rows.append(_limit_row("postgres", label, lim[name], best.get(("postgres", "seq5"))))
    return rows


def _limit_row(store: str, label: str, rate: float, durox: float | None) -> Row:
    return {
        "store": store,
        "workload": "limit",
        "system": "machine",
        "config": label,
        "ok": True,
        "act_per_s": rate,
        "durox_ratio": (durox / rate) if durox else None,
    }


def _f(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:,.{digits}f}" if isinstance(v, int | float) else str(v)


def render(doc: dict[str, Any]) -> str:
    head = (
        "| store | workload | system | config | act/s | orch/s | p50 ms | p95 ms | p99 ms "
        "| peak RSS MB | RT/act | durox ÷ this |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in doc["table"]:
        if not r["ok"]:
            lines.append(
                f"| {r['store']} | {r['workload']} | {r['system']} | {r['config']} "
                f"| failed: {r.get('error')} |" + " |" * 7
            )
            continue
        lines.append(
            f"| {r['store']} | {r['workload']} | {r['system']} | {r['config']} "
            f"| {_f(r.get('act_per_s'))} | {_f(r.get('orch_per_s'))} | {_f(r.get('p50_ms'), 1)} "
            f"| {_f(r.get('p95_ms'), 1)} | {_f(r.get('p99_ms'), 1)} "
            f"| {_f(r.get('peak_rss_mb'))} | {_f(r.get('rt_per_act'), 1)} "
            f"| {_f(r.get('durox_ratio'), 2)} |"
        )
    rep = ", ".join(
        f"{x['events']:,} events: {x['events_per_s']:,.0f}/s" for x in doc.get("replay", [])
    )
    lines.append("")
    lines.append(f"replay (decode + run_turn, cold): {rep}")
    m = doc["machine"]
    lines.append(
        f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}; load "
        f"{m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', [float('nan')])[0]:.2f} "
        "at end"
    )
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()))
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Any) -> str | None:
    """Activities/s per system for each store and workload, and p50 latency; None without
    matplotlib (the project's environment has none; the benchmark's own has it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    # Like the ratios, the bars compare like with like: no SQLite figure at another sync level.
    every = [r for r in doc["table"] if r["system"] != "machine" and not r.get("off_sync")]
    rows = [r for r in every if r["ok"]]
    groups = sorted({(r["store"], r["workload"]) for r in every})
    systems = ["durox", "duroxide", "dbos", "temporal"]
    fig, axes = plt.subplots(2, 1, figsize=(14, 9))
    width = 0.8 / len(systems)
    for k, system in enumerate(systems):
        thr, lat = [], []
        for g in groups:
            mine = [r for r in rows if (r["store"], r["workload"]) == g and r["system"] == system]
            thr.append(max((r["act_per_s"] for r in mine), default=0.0))
            lat.append(min((r["p50_ms"] for r in mine), default=0.0))
        xs = [i + k * width for i in range(len(groups))]
        axes[0].bar(xs, thr, width, label=system)
        axes[1].bar(xs, lat, width, label=system)
        for x, g, t in zip(xs, groups, thr, strict=True):
            tried = any((r["store"], r["workload"]) == g and r["system"] == system for r in every)
            if tried and not t:  # it ran and every configuration failed: say so on the plot
                axes[0].text(x, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=7)
    for ax, title in zip(
        axes,
        (
            "activities/s (best configuration at the stated SQLite sync level, median of runs)",
            "p50 latency ms (log)",
        ),
        strict=True,
    ):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
        ax.set_xticklabels([f"{s}\n{w}" for s, w in groups], fontsize=8)
        ax.set_title(title)
        ax.legend()
    axes[1].set_yscale("log")
    m = doc["machine"]
    fig.suptitle(
        f"durox benchmark, {doc['started'][:19]}: {m['cores']} cores, {m['cpu']}, "
        f"load {m['loadavg_start'][0]:.1f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def rerender(path: str) -> None:
    """Recompute a results file's table and plot from its measurements (which stay untouched),
    after a change to how they are reported: `python -m bench.report RESULTS.json`."""
    import json
    from pathlib import Path

    file = Path(path)
    doc = json.loads(file.read_text())
    doc["table"] = table(doc)
    if doc.get("mode") == "full":
        doc["plot"] = plot(doc, file.with_suffix(".png"))
    file.write_text(json.dumps(doc, indent=1, default=str))
    print(render(doc))


if __name__ == "__main__":
    import sys

    rerender(sys.argv[1])
