"""The benchmark's plan: every system, durox and each peer, at every dispatcher width in every
workload it supports, so each system's best configuration is measured, not assumed."""

from __future__ import annotations

from collections import defaultdict

from bench import plan
from bench.__main__ import parse_widths
from bench.common import Case


def _widths(cases: list[Case]) -> dict[tuple[str, str, str, float], set[int]]:
    seen: dict[tuple[str, str, str, float], set[int]] = defaultdict(set)
    for c in cases:
        if c.sync == "FULL" and c.procs == 1:
            seen[(c.system, c.store, c.workload, c.activity_ms)].add(c.orch_conc)
    return seen


def test_every_system_runs_every_workload_at_every_width() -> None:
    cases = plan.full_plan(3, True, plan.PEERS, "FULL")
    seen = _widths(cases)
    stores = {
        "durox": ("sqlite", "postgres"),
        "duroxide": ("sqlite", "postgres"),
        "dbos": ("sqlite", "postgres"),
        "temporal": ("temporal-dev",),
    }
    for system, where in stores.items():
        for store in where:
            for workload, ms in (
                ("seq5", 0.0),
                ("fanout5", 0.0),
                ("single", 0.0),
                ("timer_can", 0.0),
                ("seq5", 10.0),
            ):
                assert seen[(system, store, workload, ms)] >= {4, 8, 16}, (system, store, workload)
    assert not any(c.system == "temporal" and c.store == "postgres" for c in cases)


def test_the_activity_width_follows_the_orchestration_width() -> None:
    cases = plan.full_plan(1, False, ("duroxide",), "FULL")
    pairs = {
        (c.orch_conc, c.act_conc) for c in cases if c.system == "duroxide" and not c.activity_ms
    }
    assert pairs == {(4, 8), (8, 16), (16, 32)}


def test_the_widths_are_a_parameter() -> None:
    widths = parse_widths("2/4, 32/64")
    assert widths == ((2, 4), (32, 64))
    cases = plan.full_plan(1, False, ("duroxide",), "FULL", widths)
    assert {c.orch_conc for c in cases if c.system == "duroxide"} == {2, 32}


def test_dbos_also_runs_without_a_width_as_it_does_by_default() -> None:
    cases = [c for c in plan.full_plan(1, True, ("dbos",), "FULL") if c.system == "dbos"]
    direct = [c for c in cases if c.orch_conc == 0]
    assert {(c.store, c.workload, c.activity_ms) for c in direct} == {
        (store, w, ms)
        for store in ("sqlite", "postgres")
        for w, ms in (
            ("seq5", 0.0),
            ("fanout5", 0.0),
            ("single", 0.0),
            ("timer_can", 0.0),
            ("seq5", 10.0),
        )
    }
    assert {c.act_conc for c in direct} == {0}


def test_the_sweep_smoke_plan_is_one_workload_one_run_every_system_and_width() -> None:
    cases = plan.sweep_smoke_plan(("duroxide", "temporal"), True)
    assert {c.workload for c in cases} == {"seq5"} and {c.runs for c in cases} == {1}
    got = {(c.system, c.store, c.orch_conc) for c in cases}
    want = {
        (system, store, w)
        for system, store in (
            ("durox", "sqlite"),
            ("durox", "postgres"),
            ("duroxide", "sqlite"),
            ("duroxide", "postgres"),
            ("temporal", "temporal-dev"),
        )
        for w in (4, 8, 16)
    }
    dbos = plan.sweep_smoke_plan(("dbos",), False)
    assert {c.orch_conc for c in dbos if c.system == "dbos"} == {0, 4, 8, 16}
    assert got == want and max(c.n for c in cases) <= 10
