"""The benchmark's report: each system is compared by its best configuration that completed,
at the run's durability, and a configuration that failed is listed with its error, never
dropped. Synthetic results, shaped as `python -m bench` writes them."""

from __future__ import annotations

from typing import Any

from bench import report


def _case(
    system: str,
    rate: float | None,
    oc: int = 16,
    ac: int = 32,
    store: str = "sqlite",
    workload: str = "seq5",
    p50: float = 1.0,
    error: str = "",
) -> Any:
    case = {
        "system": system,
        "store": store,
        "workload": workload,
        "activity_ms": 0.0,
        "inflight": 100,
        "orch_conc": oc,
        "act_conc": ac,
        "procs": 1,
        "sync": "FULL",
    }
    if rate is None:
        return {"case": case, "ok": False, "error": error or "RuntimeError: boom"}
    median = {"act_per_s": rate, "orch_per_s": rate / 5, "p50_ms": p50, "p95_ms": 2 * p50}
    return {"case": case, "ok": True, "median": median | {"p99_ms": 3 * p50}, "runs": []}


def _doc(cases: list[Any]) -> dict[str, Any]:
    return {"cases": cases, "limits": {}}


def _best(cases: list[Any], system: str, workload: str = "seq5") -> dict[str, Any]:
    [row] = [
        r for r in report.best(_doc(cases)) if r["system"] == system and r["workload"] == workload
    ]
    return row


def test_the_ratio_compares_durox_best_with_the_peer_best_at_any_widths() -> None:
    cases = [
        _case("durox", 2000.0, 4, 8),
        _case("durox", 3000.0, 16, 32),
        _case("duroxide", 600.0, 4, 8),
        _case("duroxide", 400.0, 16, 32),
    ]
    peer = _best(cases, "duroxide")
    assert peer["widths"] == "4/8" and peer["act_per_s"] == 600.0
    assert peer["durox_ratio"] == 5.0  # 3000 (durox at 16/32) / 600 (the peer at 4/8)
    assert _best(cases, "durox")["widths"] == "16/32"


def test_a_failed_configuration_is_listed_and_the_best_completed_one_is_compared() -> None:
    locked = "RuntimeError: warm-000003: Failed infrastructure:list_instances: Database locked"
    cases = [
        _case("durox", 3000.0),
        _case("duroxide", None, 16, 32, error=locked),
        _case("duroxide", 500.0, 8, 16),
        _case("duroxide", 300.0, 4, 8),
    ]
    peer = _best(cases, "duroxide")
    assert peer["ok"] and peer["widths"] == "8/16" and peer["durox_ratio"] == 6.0
    assert peer["configs"] == 3
    assert peer["failed"] == [{"config": "inflight 100, disp 16/32", "error": locked}]
    text = report.render_failures(report.best(_doc(cases)))
    assert "disp 16/32 (duroxide): " + locked in text
    assert "1 of 3" in report.render_best(report.best(_doc(cases)))


def test_a_system_whose_every_configuration_failed_has_a_row_without_a_ratio() -> None:
    cases = [_case("durox", 3000.0), _case("dbos", None, 4, 8), _case("dbos", None, 8, 16)]
    peer = _best(cases, "dbos")
    assert not peer["ok"] and "durox_ratio" not in peer and len(peer["failed"]) == 2
    assert "every configuration failed" in report.render_best(report.best(_doc(cases)))
    labels = report.bar_labels(report.best(_doc(cases)), [("sqlite", "seq5")], "dbos")
    assert labels == ["failed"]


def test_the_latency_case_is_ranked_by_p50_not_throughput() -> None:
    cases = [
        _case("durox", 250.0, 4, 8, workload="single", p50=3.0),
        _case("durox", 240.0, 16, 32, workload="single", p50=2.0),
        _case("dbos", 230.0, 4, 8, workload="single", p50=4.0),
    ]
    durox = _best(cases, "durox", "single")
    assert durox["widths"] == "16/32"
    assert _best(cases, "dbos", "single")["p50_ratio"] == 2.0


def test_other_stores_and_sync_levels_do_not_count() -> None:
    normal = _case("durox", 9000.0)
    normal["case"]["sync"] = "NORMAL"
    cases = [
        _case("durox", 1000.0),
        normal,
        _case("durox", 8000.0, store="postgres"),
        _case("dbos", 250.0),
    ]
    assert _best(cases, "dbos")["durox_ratio"] == 4.0
    rows = report.table(_doc(cases))
    assert [r["off_sync"] for r in rows] == [False, True, False, False]
    assert [r["best"] for r in rows] == [True, False, True, True]


def test_every_configuration_keeps_its_figures_and_its_ratio_to_durox_best() -> None:
    cases = [_case("durox", 3000.0), _case("temporal", 60.0, 4, 8, store="temporal-dev")]
    cases.append(_case("temporal", 100.0, 8, 16, store="temporal-dev"))
    rows = [r for r in report.table(_doc(cases)) if r["system"] == "temporal"]
    assert [(r["act_per_s"], r["durox_ratio"], r["best"]) for r in rows] == [
        (60.0, 50.0, False),
        (100.0, 30.0, True),
    ]
    labels = report.bar_labels(report.best(_doc(cases)), [("sqlite", "seq5")], "temporal")
    assert labels == ["8/16"]


def test_the_plot_labels_a_bar_with_its_widths_and_its_failures() -> None:
    cases = [_case("durox", 3000.0), _case("duroxide", 500.0, 4, 8), _case("duroxide", None)]
    rows = report.best(_doc(cases))
    groups = [("sqlite", "seq5"), ("postgres", "seq5")]
    assert report.bar_labels(rows, groups, "duroxide") == ["4/8 (1 failed)", ""]


def test_a_dbos_case_without_a_width_is_named_direct() -> None:
    cases = [_case("durox", 3000.0), _case("dbos", 500.0, 0, 0), _case("dbos", 300.0, 8, 16)]
    peer = _best(cases, "dbos")
    assert peer["widths"] == "direct" and peer["config"] == "inflight 100, disp direct, FULL"
