"""Which cases a run measures. The full plan is what the README's command runs; the smoke plan
is the same code path with tiny counts, durox only, so the test suite keeps it from rotting.

Every system, durox and each peer alike, runs every workload at each of `WIDTHS` (orchestration
and activity dispatcher widths), so each system's best configuration is found rather than
assumed: a peer given only durox's favourite widths can fail or crawl where a narrower setting
would have done well (duroxide's SQLite provider at 16/32 did, issue 17). The report then
compares best with best.
"""

from __future__ import annotations

from bench.common import Case

PEERS = ("duroxide", "dbos", "temporal")
WIDTHS: tuple[tuple[int, int], ...] = ((4, 8), (8, 16), (16, 32))
"""(orchestration, activity) dispatcher widths every system is swept over."""
WORKLOADS = ("seq5", "fanout5", "single", "timer_can", "seq5+10ms")
"""The four workloads, and the 5-activity sequence with 10 ms activities."""


def full_plan(
    runs: int,
    pg: bool,
    peers: tuple[str, ...],
    sync: str,
    widths: tuple[tuple[int, int], ...] = WIDTHS,
) -> list[Case]:
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

    def sweep(system: str, store: str, n: int, **kw: object) -> None:
        """Every workload at every width. The single-activity case keeps one instance in flight
        (latency); the 10 ms case keeps 20 and runs activities 20 wide at least. DBOS also runs
        as it does by default, each workflow started directly with no width at all (0/0)."""
        for workload in WORKLOADS:
            for oc, ac in (*widths, (0, 0)) if system == "dbos" else widths:
                at = {"orch_conc": oc, "act_conc": ac, **kw}
                if workload == "single":
                    add(system, store, "single", min(n, 300 if system == "durox" else 100), 1, **at)
                elif workload == "timer_can":
                    add(system, store, workload, n // 2, 100, **at)
                elif workload == "seq5+10ms":
                    ten = min(n, 200 if system == "durox" else 100)
                    add(
                        system,
                        store,
                        "seq5",
                        ten,
                        20,
                        activity_ms=10.0,
                        **{**at, "act_conc": max(ac, 20) if ac else 0},
                    )
                else:
                    add(system, store, workload, n, 100, **at)

    peer_n = {"duroxide": 200, "dbos": 200, "temporal": 60}
    # SQLite file. durox also at 1/2 (how far down the curve goes) and at NORMAL (what the
    # durability costs); neither counts against a peer.
    sweep("durox", "sqlite", 600)
    add("durox", "sqlite", "seq5", 600, 100, orch_conc=1, act_conc=2)
    add("durox", "sqlite", "seq5", 600, 100, sync="NORMAL")
    for peer in peers:
        sweep(peer, "temporal-dev" if peer == "temporal" else "sqlite", peer_n[peer])
    if pg:
        # PostgreSQL: one worker process at every width, then more processes and a wider one.
        sweep("durox", "postgres", 600)
        for procs in (2, 4):
            add("durox", "postgres", "seq5", 600, 100, procs=procs)
        add("durox", "postgres", "fanout5", 600, 100, procs=2)
        add("durox", "postgres", "timer_can", 300, 100, procs=2)
        add("durox", "postgres", "seq5", 600, 100, orch_conc=32, act_conc=64)
        for peer in peers:
            if peer != "temporal":  # the dev server has its own store; no PostgreSQL form
                sweep(peer, "postgres", peer_n[peer])
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


def sweep_smoke_plan(
    peers: tuple[str, ...], pg: bool, widths: tuple[tuple[int, int], ...] = WIDTHS
) -> list[Case]:
    """The smallest run of the sweep itself: one workload (seq5), one run, tiny counts, every
    system given at every width, so the peers' installs and the best-against-best report are
    exercised end to end in a minute or two."""
    cases: list[Case] = []
    stores = [("sqlite", "durox"), *(("postgres", "durox"),) * pg]
    for peer in peers:
        stores.append(("temporal-dev" if peer == "temporal" else "sqlite", peer))
        if pg and peer != "temporal":
            stores.append(("postgres", peer))
    for store, system in stores:
        for oc, ac in (*widths, (0, 0)) if system == "dbos" else widths:
            cases.append(
                Case(
                    system,
                    store,
                    "seq5",
                    n=6,
                    inflight=3,
                    runs=1,
                    warmup=2,
                    orch_conc=oc,
                    act_conc=ac,
                )
            )
    return cases
