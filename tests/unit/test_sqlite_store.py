"""The embedded store's own mechanics: group commit, wake-ups, error classification."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from durox.core import events as ev
from durox.errors import (
    InstanceAlreadyExistsError,
    LockLostError,
    StoreCorruptionError,
    StoreUnavailableError,
)
from durox.providers import SqliteProvider, TurnCommit
from durox.providers.sqlite._executor import _classify


async def test_a_failing_operation_in_a_group_does_not_undo_its_neighbours(
    tmp_path: Path,
) -> None:
    p = await SqliteProvider.open(tmp_path / "g.db")
    try:
        starts = [p.start_instance(ev.StartOrchestration(f"i{n}", "N", None, n)) for n in range(30)]
        bad_acks = [p.ack_orchestration_item(f"no-such-token-{n}", TurnCommit(1)) for n in range(5)]
        dup = p.start_instance(ev.StartOrchestration("i0", "N", None, 0))
        results = await asyncio.gather(*starts, *bad_acks, dup, return_exceptions=True)
        assert results[:30] == [None] * 30
        assert all(isinstance(r, LockLostError) for r in results[30:35])
        assert isinstance(results[35], InstanceAlreadyExistsError)
    finally:
        await p.close()
    # Everything that succeeded is durable: reopen and count.
    raw = sqlite3.connect(tmp_path / "g.db")
    assert raw.execute("SELECT count(*) FROM orchestrator_queue").fetchone()[0] == 30


async def test_one_new_item_wakes_one_idle_dispatcher() -> None:
    p = await SqliteProvider.in_memory()
    try:
        waiters = [asyncio.create_task(p.wait_for_work("activity", 5)) for _ in range(4)]
        await asyncio.sleep(0.01)
        p._notify("activity", count=1)
        await asyncio.sleep(0.01)
        assert sum(w.done() for w in waiters) == 1
        p._notify("activity", count=3)
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        # A wake-up with nobody waiting is kept for the next one to wait.
        p._notify("orchestration")
        await asyncio.wait_for(p.wait_for_work("orchestration", 5), 0.5)
    finally:
        await p.close()


async def test_a_closed_store_refuses_work() -> None:
    p = await SqliteProvider.in_memory()
    await p.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await p.get_instance("x")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (sqlite3.OperationalError("database is locked"), StoreUnavailableError),
        (sqlite3.OperationalError("disk I/O error"), StoreUnavailableError),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), StoreCorruptionError),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreCorruptionError),
    ],
)
def test_driver_errors_are_classified(exc: sqlite3.Error, kind: type) -> None:
    err = _classify(exc)
    assert isinstance(err, kind)
    assert err.retryable is (kind is StoreUnavailableError)
