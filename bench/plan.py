"""Which cases a run measures. The full plan is what the README's command runs; the smoke plan
is the same code path with tiny counts, durox only, so the test suite keeps it from rotting."""

from __future__ import annotations

from bench.common import Case

PEERS = ("duroxide", "dbos", "temporal")


def full_plan(runs: int, pg: bool, peers: tuple[str, ...], sync: str) -> list[Case]:
    cases: list[Case] = []

    def add(system: str, store: str, workload: str, n: int, inflight: int, **kw: object) -> None:
        cases.append(
            Case(
                system=system,
                store=store,
                workload=workload,
                n=n,
                inflight=inflight,
                runs=runs,
                warmup=max(10, n // 5),
                **{"sync": sync, **kw},  # type: ignore[arg-type]
            )
        )

    peer_n = {"duroxide": 200, "dbos": 200, "temporal": 60}
    # SQLite file: durox at four dispatcher widths (16/32 is its default), the peers at durox's
    # default width.
    for oc, ac in ((1, 2), (4, 8), (8, 16), (16, 32)):
        add("durox", "sqlite", "seq5", 600, 100, orch_conc=oc, act_conc=ac)
    add("durox", "sqlite", "seq5", 600, 100, sync="NORMAL")
    for workload, n, inflight in (
        ("fanout5", 600, 100),
        ("single", 300, 1),
        ("timer_can", 300, 100),
    ):
        add("durox", "sqlite", workload, n, inflight)
    add("durox", "sqlite", "seq5", 200, 20, activity_ms=10.0, act_conc=20)
    for peer in peers:
        store = "temporal-dev" if peer == "temporal" else "sqlite"
        pn = peer_n[peer]
        for workload, n, inflight in (
            ("seq5", pn, 100),
            ("fanout5", pn, 100),
            ("single", min(pn, 100), 1),
            ("timer_can", pn // 2, 100),
        ):
            add(peer, store, workload, n, inflight)
        add(peer, store, "seq5", min(pn, 100), 20, activity_ms=10.0, act_conc=20)
    if pg:
        # PostgreSQL: worker processes at the default width, then other widths in one process.
        for procs in (1, 2, 4):
            add("durox", "postgres", "seq5", 600, 100, procs=procs)
        for oc, ac in ((4, 8), (8, 16), (32, 64)):
            add("durox", "postgres", "seq5", 600, 100, orch_conc=oc, act_conc=ac)
        for workload, n, inflight in (
            ("fanout5", 600, 100),
            ("single", 300, 1),
            ("timer_can", 300, 100),
        ):
            add("durox", "postgres", workload, n, inflight, procs=2 if inflight > 1 else 1)
        add("durox", "postgres", "seq5", 200, 20, activity_ms=10.0, act_conc=20)
        for peer in peers:
            if peer == "temporal":
                continue
            pn = peer_n[peer]
            for workload, n, inflight in (
                ("seq5", pn, 100),
                ("fanout5", pn, 100),
                ("single", min(pn, 100), 1),
                ("timer_can", pn // 2, 100),
            ):
                add(peer, "postgres", workload, n, inflight)
            add(peer, "postgres", "seq5", min(pn, 100), 20, activity_ms=10.0, act_conc=20)
    return cases


def smoke_plan(pg: bool) -> list[Case]:
    cases = [
        Case("durox", "sqlite", w, n=6, inflight=3 if w != "single" else 1, runs=1, warmup=2)
        for w in ("seq5", "fanout5", "single", "timer_can")
    ]
    cases.append(Case("durox", "sqlite", "seq5", 4, 4, runs=1, warmup=1, activity_ms=10.0))
    if pg:
        cases.append(Case("durox", "postgres", "seq5", 6, 3, runs=1, warmup=2, procs=1))
    return cases
