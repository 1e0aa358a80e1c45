"""Item 1 of issue 15: a worker cut off from PostgreSQL by a silent network partition.

The worker runs in its own network namespace, joined to the host by a veth pair; PostgreSQL
listens on loopback (for the other worker and the test) and on the pair's host address. The
partition drops the worker's packets to and from the server's port inside the namespace, for
longer than the lock timeout: no RST, no ICMP, only silence.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from durox import Client
from durox.providers import PostgresProvider
from tests.faults.net import Namespace
from tests.faults.pg import Cluster
from tests.faults.support import completed, duplicated_completions, marks
from tests.faults.workers import WorkerProc, record, tails, wait_for

SLOW = 6  # activities in flight on the cut-off worker when the partition starts
AFTER = 20  # pipelines the healed worker runs alone


@pytest.mark.parametrize(
    ("direction", "cut_s", "nap_s"),
    [("both", 25.0, 30.0), ("replies", 8.0, 12.0)],
)
async def test_a_partitioned_worker_stops_is_taken_over_and_resumes(
    scratch: Path, logs: Path, direction: str, cut_s: float, nap_s: float
) -> None:
    """`both`: nothing passes either way, for 25 s: longer than the lock timeout (3 s) and
    than the connections' TCP_USER_TIMEOUT (20 s), so the worker's connections are declared
    dead and replaced after the healing. `replies` (asymmetric), for 8 s: the worker's requests
    reach the server and are executed, every reply is lost.

    The naps on the cut-off worker outlive the partition, so they end after the healing and
    their acknowledgements reach a store where the peer holds the lease."""
    with Namespace() as ns:
        pg = Cluster(scratch).init()
        pg.start(listen=f"127.0.0.1,{ns.host_ip}")
        provider = await PostgresProvider.connect(pg.dsn(), listen=False, pool_size=2)
        cut = peer = None
        try:
            client = Client(provider)
            cut = WorkerProc(logs, "cut", pg.dsn(ns.host_ip), prefix=ns.prefix(), host=ns.ns_ip)
            await wait_for(cut.ready, "the namespaced worker gets ready", 90)
            ids = [f"slow-{i}" for i in range(SLOW)]
            for iid in ids:
                await client.start_orchestration(iid, "Slow", nap_s)
            await wait_for(
                lambda: len(marks(logs, "started", "cut")) == SLOW, "naps start on the worker"
            )

            ns.partition(pg.port, requests=direction == "both", replies=True)
            t_cut = time.monotonic()
            peer = WorkerProc(logs, "peer", pg.dsn())
            detect = await wait_for(lambda: not cut.ready(), "the cut worker reports not ready")
            await wait_for(
                lambda: len(marks(logs, "started", "peer")) == SLOW,
                "the peer takes over the leased naps",
            )
            took_over = time.monotonic() - t_cut
            assert cut.proc.poll() is None, tails(cut)
            await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - t_cut)))
            ns.heal()

            resume = await wait_for(cut.ready, "the healed worker is ready again", 180)
            await wait_for(lambda: _count_is(provider, "slow-", SLOW), "all naps", 180)
            # the cut worker's results came too late: refused (or its run cancelled when a
            # renewal learnt the lease was gone), never recorded
            for iid in ids:
                assert (await client.get_instance_info(iid)).output == "peer", tails(cut, peer)
            assert await duplicated_completions(provider, ids) == 0
            refused = cut.text().count("activity result dropped") + cut.text().count(
                "its lease was lost"
            )
            assert refused >= 1, tails(cut)

            # it resumes: with the peer gone, only the healed worker can run these
            peer.stop()
            t_alone = time.monotonic()
            for i in range(AFTER):
                await client.start_orchestration(f"after-{i}", "Pipeline", i)
            await wait_for(
                lambda: _count_is(provider, "after-", AFTER), "the healed worker runs alone", 180
            )
            alone = time.monotonic() - t_alone
            assert "readiness probe: the store does not answer" in cut.text()
            if cut_s > 20:  # past TCP_USER_TIMEOUT: the calls in flight failed, none hung
                assert "fetch failed (retryable)" in cut.text(), tails(cut)
            record(
                f"partition ({direction})",
                instances=SLOW + AFTER,
                injected=1,
                detect_s=round(detect, 1),
                takeover_s=round(took_over, 1),
                resume_s=round(resume, 1),
                alone_s=round(alone, 1),
                lost=0,
                duplicated=0,
                activity_reruns=len(marks(logs, "started")) - SLOW,
                refused=refused,
            )
        finally:
            ns.heal()
            for w in (cut, peer):
                if w is not None:
                    w.stop()
            await provider.close()
            pg.stop("immediate")


async def _count_is(provider: PostgresProvider, prefix: str, n: int) -> bool:
    return await completed(provider, prefix) == n
