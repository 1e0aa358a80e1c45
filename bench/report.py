"""The ratio tables and the plot. Ratios are durox's figure divided by the other system's (or
by the machine's limit), always from the same run; a ratio above 1 means durox is faster.

Each system is swept over dispatcher widths, and a comparison is only fair between each one's
best: so the headline compares durox's best completed configuration with each peer's, at the
same durability, and every configuration that failed is listed beside it with its error rather
than dropped. The per-configuration table keeps every figure."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def _group(case: dict[str, Any]) -> tuple[str, str]:
    store = "sqlite" if case["store"] in ("sqlite", "temporal-dev") else case["store"]
    load = case["workload"] + (f"+{case['activity_ms']:g}ms" if case["activity_ms"] else "")
    return store, load


def _widths(case: dict[str, Any]) -> str:
    """Dispatcher widths, or "direct" for a DBOS case that starts each workflow at once."""
    if case["orch_conc"] == 0:
        return "direct"
    return f"{case['orch_conc']}/{case['act_conc']}"


def _config(case: dict[str, Any]) -> str:
    parts = [f"inflight {case['inflight']}", f"disp {_widths(case)}"]
    if case["store"] == "postgres" and case["system"] == "durox":
        parts.append(f"{case['procs']} proc")
    if case["store"] == "sqlite" and case["system"] in ("durox", "dbos"):
        parts.append(case["sync"])
    if case["store"] == "temporal-dev":
        parts.append("dev server")
    return ", ".join(parts)


def _sync(doc: dict[str, Any]) -> str:
    return next((c["case"]["sync"] for c in doc["cases"]), "FULL")


def _off_sync(case: dict[str, Any], sync: str) -> bool:
    """A SQLite figure at another durability than the run's: shown, never compared."""
    return (
        case["store"] == "sqlite" and case["system"] in ("durox", "dbos") and case["sync"] != sync
    )


def _rank(workload: str, median: dict[str, Any]) -> float:
    """How a configuration is ranked within its system: activities/s, except for the latency
    case (one instance in flight), where the lowest p50 wins."""
    return float(-median["p50_ms"] if workload == "single" else median["act_per_s"])


def best(doc: dict[str, Any]) -> list[Row]:
    """Each system's best configuration that completed, per store and workload, at the run's
    durability; the configurations that failed beside it, with their errors; and on each
    peer's row the ratios of durox's best to the peer's best. A system whose every
    configuration failed gets a row with `ok` False and no figures."""
    sync = _sync(doc)
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in doc["cases"]:
        c = r["case"]
        if _off_sync(c, sync):
            continue
        runs.setdefault((*_group(c), c["system"]), []).append(r)
    rows: dict[tuple[str, str, str], Row] = {}
    for (store, load, system), tried in runs.items():
        done = [r for r in tried if r.get("ok")]
        failed = [
            {"config": _config(r["case"]), "error": r.get("error") or "unknown error"}
            for r in tried
            if not r.get("ok")
        ]
        row: Row = {
            "store": store,
            "workload": load,
            "system": system,
            "ok": bool(done),
            "configs": len(tried),
            "failed": failed,
        }
        if done:
            top = max(done, key=lambda r: _rank(r["case"]["workload"], r["median"]))
            m = top["median"]
            row |= {
                "config": _config(top["case"]),
                "widths": _widths(top["case"]),
                "act_per_s": m["act_per_s"],
                "p50_ms": m["p50_ms"],
                "p99_ms": m["p99_ms"],
            }
        rows[(store, load, system)] = row
    for (store, load, system), row in rows.items():
        durox = rows.get((store, load, "durox"))
        if system == "durox" or not row["ok"] or not durox or not durox["ok"]:
            continue
        if row["act_per_s"]:
            row["durox_ratio"] = durox["act_per_s"] / row["act_per_s"]
        if durox["p50_ms"]:
            row["p50_ratio"] = row["p50_ms"] / durox["p50_ms"]
    order = {s: i for i, s in enumerate(SYSTEMS)}
    return sorted(
        rows.values(), key=lambda r: (r["store"], r["workload"], order.get(r["system"], 9))
    )


SYSTEMS = ("durox", "duroxide", "dbos", "temporal")


def table(doc: dict[str, Any]) -> list[Row]:
    """One row per case, every configuration kept. `durox_ratio` on a peer's row divides
    durox's best figure in the same store and workload (at the run's durability) by this
    configuration's; `best` marks the configuration each system is compared by (see `best`)."""
    sync = _sync(doc)
    tops = {(b["store"], b["workload"], b["system"]): b for b in best(doc) if b["ok"]}
    rows: list[Row] = []
    for r in doc["cases"]:
        c = r["case"]
        key = _group(c)
        off = _off_sync(c, sync)
        row: Row = {
            "store": key[0],
            "workload": key[1],
            "system": c["system"],
            "config": _config(c),
            "ok": bool(r.get("ok")),
            "off_sync": off,
            "best": False,
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
            top = tops.get((*key, c["system"]))
            row["best"] = top is not None and not off and top["config"] == row["config"]
            durox = tops.get((*key, "durox"))
            if c["system"] != "durox" and durox and m["act_per_s"]:
                row["durox_ratio"] = durox["act_per_s"] / m["act_per_s"]
        else:
            row["error"] = r.get("error")
        rows.append(row)
    durox_best = {
        (b["store"], b["workload"]): b["act_per_s"] for b in tops.values() if b["system"] == "durox"
    }
    lim = doc.get("limits", {})
    for level, rate in lim.get("sqlite_commits_per_s", {}).items():
        key = ("sqlite", "seq5")
        rows.append(
            _limit_row("sqlite", f"SQLite commits/s (WAL, {level})", rate, durox_best.get(key))
        )
    for name, label in (
        ("pgbench_simple_update_tps", "pgbench simple-update TPS"),
        ("skip_locked_dequeues_per_s", "SKIP LOCKED dequeues/s"),
    ):
        if name in lim:
            rows.append(
                _limit_row("postgres", label, lim[name], durox_best.get(("postgres", "seq5")))
            )
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


def render_best(rows: list[Row]) -> str:
    """Best against best, as the README's table: each system's best completed configuration,
    the ratios, and how many of its configurations failed."""
    lines = [
        "| store | workload | system | best widths | act/s | p50 ms | p99 ms | durox ÷ this "
        "| this p50 ÷ durox p50 | failed configs |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        failed = f"{len(r['failed'])} of {r['configs']}" if r["failed"] else "none"
        if not r["ok"]:
            lines.append(
                f"| {r['store']} | {r['workload']} | {r['system']} | every configuration failed "
                f"| - | - | - | - | - | {failed} |"
            )
            continue
        lines.append(
            f"| {r['store']} | {r['workload']} | {r['system']} | {r['widths']} "
            f"| {_f(r.get('act_per_s'))} | {_f(r.get('p50_ms'), 1)} | {_f(r.get('p99_ms'), 1)} "
            f"| {_f(r.get('durox_ratio'), 2)} | {_f(r.get('p50_ratio'), 2)} | {failed} |"
        )
    return "\n".join(lines)


def render_failures(rows: list[Row]) -> str:
    """Every failed configuration with its error text (never left out of a report)."""
    out = [
        f"- {r['store']} {r['workload']} {f['config']} ({r['system']}): {f['error']}"
        for r in rows
        for f in r["failed"]
    ]
    return "\n".join(out) if out else "- none"


def render(doc: dict[str, Any]) -> str:
    head = (
        "| store | workload | system | config | act/s | orch/s | p50 ms | p95 ms | p99 ms "
        "| peak RSS MB | RT/act | durox best ÷ this |"
    )
    rows = doc.get("best") or best(doc)
    lines = ["best against best:", render_best(rows), "", "failed configurations:"]
    lines += [render_failures(rows), "", "every configuration (* the one compared):", head]
    lines.append("|" + "---|" * 12)
    for r in doc["table"]:
        if not r["ok"]:
            lines.append(
                f"| {r['store']} | {r['workload']} | {r['system']} | {r['config']} "
                f"| failed: {r.get('error')} |" + " |" * 7
            )
            continue
        mark = " *" if r.get("best") else ""
        lines.append(
            f"| {r['store']} | {r['workload']} | {r['system']} | {r['config']}{mark} "
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


def bar_labels(rows: list[Row], groups: list[tuple[str, str]], system: str) -> list[str]:
    """What the plot writes on each of `system`'s bars: its best widths, and how many of its
    configurations failed ("failed" alone when every one did; "" when it did not run)."""
    labels = []
    for g in groups:
        row = next(
            (r for r in rows if (r["store"], r["workload"]) == g and r["system"] == system), None
        )
        if row is None:
            labels.append("")
        elif not row["ok"]:
            labels.append("failed")
        else:
            bad = f" ({len(row['failed'])} failed)" if row["failed"] else ""
            labels.append(f"{row['widths']}{bad}")
    return labels


def plot(doc: dict[str, Any], path: Any) -> str | None:
    """Each system's best configuration against the others' (activities/s, and p50 latency),
    per store and workload; each bar names its widths and how many configurations failed.
    None without matplotlib (the project's environment has none; the benchmark's own has it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.transforms import blended_transform_factory
    except ImportError:
        return None
    rows = doc.get("best") or best(doc)
    groups = sorted({(r["store"], r["workload"]) for r in rows})
    fig, axes = plt.subplots(2, 1, figsize=(16, 10))
    width = 0.8 / len(SYSTEMS)
    for k, system in enumerate(SYSTEMS):
        mine = {(r["store"], r["workload"]): r for r in rows if r["system"] == system and r["ok"]}
        thr = [mine[g]["act_per_s"] if g in mine else 0.0 for g in groups]
        lat = [mine[g]["p50_ms"] if g in mine else 0.0 for g in groups]
        xs = [i + k * width for i in range(len(groups))]
        axes[0].bar(xs, thr, width, label=system)
        axes[1].bar(xs, lat, width, label=system)
        for ax, values in ((axes[0], thr), (axes[1], lat)):
            # A bar of nothing (every configuration failed) is labelled at the axis' foot,
            # which a log scale has no zero for.
            foot = blended_transform_factory(ax.transData, ax.transAxes)
            for x, v, text in zip(xs, values, bar_labels(rows, groups, system), strict=True):
                if not text:
                    continue
                color = "red" if "failed" in text else "black"
                style: dict[str, Any] = {"rotation": 90, "ha": "center", "va": "bottom"}
                style |= {"fontsize": 6, "color": color}
                if v:
                    ax.text(x, v, text, **style)
                else:
                    ax.text(x, 0.01, text, transform=foot, **style)
    for ax, title in zip(
        axes,
        (
            "activities/s: each system's best widths (labelled; red: configurations that failed)",
            "p50 latency ms (log), same configurations",
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
    doc["best"] = best(doc)
    if doc.get("mode") == "full" or file.with_suffix(".png").exists():
        doc["plot"] = plot(doc, file.with_suffix(".png"))
    file.write_text(json.dumps(doc, indent=1, default=str))
    print(render(doc))


if __name__ == "__main__":
    import sys

    rerender(sys.argv[1])
