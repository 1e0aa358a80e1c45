"""Item 3 of issue 15: workers whose wall clocks are hours off (libfaketime).

Leases, timers and session expiry are the store's to decide, by its clock: a worker three
hours ahead must not take a lease that is live by the store's clock, and a worker three hours
behind must not set (and so fire) a timer hours early.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from durox import Client
from durox.providers import PostgresProvider
from tests.faults.pg import LIBFAKETIME, Cluster
from tests.faults.support import completed, duplicated_completions, marks
from tests.faults.workers import WorkerProc, record, tails, wait_for

pytestmark = pytest.mark.timeout(300)

NAPS = 4
NAP = 8.0  # longer than the lock timeout (3 s): the honest worker renews its leases
TIMERS = 6
TIMER = 15.0
WORK = 30


def skewed(offset: str) -> dict[str, str]:
    """Environment that runs a worker under libfaketime at `offset` ("+3h"). Preloaded
    directly rather than through the `faketime` wrapper, which would stand between the test and
    the worker's process (a signal to the wrapper does not reach the worker)."""
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


async def test_skewed_workers_neither_steal_leases_nor_fire_timers_early(
    scratch: Path, logs: Path
) -> None:
    pg = Cluster(scratch).init()
    pg.start()
    provider = await PostgresProvider.connect(pg.dsn(), listen=False, pool_size=2)
    workers: list[WorkerProc] = []
    try:
        client = Client(provider)
        honest = WorkerProc(logs, "honest", pg.dsn())
        workers.append(honest)
        await wait_for(honest.ready, "the honest worker gets ready", 90)
        naps = [f"nap-{i}" for i in range(NAPS)]
        for iid in naps:
            await client.start_orchestration(iid, "Slow", NAP)
        await wait_for(lambda: len(marks(logs, "started")) == NAPS, "naps start")

        ahead = WorkerProc(logs, "ahead", pg.dsn(), env=skewed("+3h"))
        behind = WorkerProc(logs, "behind", pg.dsn(), env=skewed("-3h"))
        workers += [ahead, behind]
        for w in (ahead, behind):
            await wait_for(w.ready, f"the {w.name} worker gets ready", 90)
        # what the operator sees: each skewed worker says so, once, at connect
        for w, way in ((ahead, "ahead of"), (behind, "behind")):
            said = re.search(rf"clock is ([\d.]+) s {way} the database's", w.text())
            assert said is not None and abs(float(said[1]) - 3 * 3600) < 60, tails(w)

        # leases: the naps run to their end where they started, none is taken
        await wait_for(lambda: _all(provider, "nap-", NAPS), "the naps complete", 120)
        assert sorted(marks(logs, "started")) == sorted(f"started.{i}.honest.1" for i in naps)
        for iid in naps:
            assert (await client.get_instance_info(iid)).output == "honest"

        # the skewed workers do work at all (a healthy load among the three)
        for i in range(WORK):
            await client.start_orchestration(f"work-{i}", "Pipeline", i)
        await wait_for(lambda: _all(provider, "work-", WORK), "the pipelines complete", 120)
        turns = {w.name: w.metric("durox_orchestration_turns_total") for w in workers}

        # timers: only the skewed workers are left to create and fire them
        honest.stop()
        timers = [f"timer-{i}" for i in range(TIMERS)]
        began = time.monotonic()
        for iid in timers:
            await client.start_orchestration(iid, "Wait", TIMER)
        await wait_for(lambda: _all(provider, "timer-", TIMERS), "the timers fire", 180)
        waited = time.monotonic() - began
        for iid in timers:
            info = await client.get_instance_info(iid)
            by_store = (info.updated_at - info.created_at).total_seconds()
            # due by the store's clock as the worker measures it: within half a round trip
            assert by_store >= TIMER - 1, (iid, by_store, tails(ahead, behind))
        ids = naps + timers + [f"work-{i}" for i in range(WORK)]
        assert await duplicated_completions(provider, ids) == 0
        assert all(w.proc.poll() is None for w in (ahead, behind)), tails(ahead, behind)
        record(
            "clock skew (+3 h, -3 h)",
            instances=len(ids),
            injected=2,
            stolen_leases=0,
            early_timers=0,
            timer_s=TIMER,
            timers_fired_after_s=round(waited, 1),
            turns_by_worker=turns,
            lost=0,
            duplicated=0,
            activity_reruns=0,
        )
    finally:
        for w in workers:
            w.stop()
        await provider.close()
        pg.stop("immediate")


async def _all(provider: PostgresProvider, prefix: str, n: int) -> bool:
    return await completed(provider, prefix) == n
