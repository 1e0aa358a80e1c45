"""The benchmark's ratio table: a peer is compared with durox at the peer's dispatcher widths."""

from __future__ import annotations

from typing import Any

from bench import report


def _case(system: str, rate: float, oc: int = 16, ac: int = 32, store: str = "sqlite") -> Any:
    case = {
        "system": system,
        "store": store,
        "workload": "seq5",
        "activity_ms": 0.0,
        "inflight": 100,
        "orch_conc": oc,
        "act_conc": ac,
        "procs": 1,
        "sync": "FULL",
    }
    median = {"act_per_s": rate, "orch_per_s": rate / 5, "p50_ms": 1.0, "p95_ms": 2.0}
    return {"case": case, "ok": True, "median": median | {"p99_ms": 3.0}, "runs": []}


def _ratios(cases: list[Any]) -> list[float | None]:
    rows = report.table({"cases": cases, "limits": {}})
    return [r.get("durox_ratio") for r in rows if r["system"] == "peer"]


def test_a_peer_is_compared_with_durox_at_the_same_widths() -> None:
    cases = [_case("durox", 2000.0), _case("durox", 3000.0, 32, 64), _case("peer", 500.0)]
    assert _ratios(cases) == [4.0]


def test_without_a_durox_case_at_the_peers_widths_the_best_durox_figure_is_used() -> None:
    cases = [_case("durox", 1200.0, 8, 16), _case("durox", 900.0, 4, 8), _case("peer", 300.0)]
    assert _ratios(cases) == [4.0]


def test_other_stores_and_sync_levels_do_not_count() -> None:
    normal = _case("durox", 9000.0)
    normal["case"]["sync"] = "NORMAL"
    cases = [_case("durox", 1000.0), normal, _case("durox", 8000.0, store="postgres")]
    assert _ratios([*cases, _case("peer", 250.0)]) == [4.0]
    rows = report.table({"cases": [*cases, _case("peer", 250.0)], "limits": {}})
    assert [r["off_sync"] for r in rows] == [False, True, False, False]
