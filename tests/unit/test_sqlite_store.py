"""The embedded store's own mechanics: group commit, wake-ups, error classification."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
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
from durox.providers.sqlite._executor import GroupCommit, _classify


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


async def test_a_group_is_handed_back_with_one_cross_thread_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each `call_soon_threadsafe` writes the loop's self-pipe and makes the store thread win
    the GIL back; a group settles all its futures, each with its own outcome, in one call."""
    db = await GroupCommit.start(":memory:", "FULL")
    loop = asyncio.get_running_loop()
    calls: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: object, *args: object, **kw: object) -> object:
        calls.append(callback)
        return real(callback, *args, **kw)  # type: ignore[arg-type]

    gate = asyncio.Event()
    release = loop.create_future()

    def hold(conn: sqlite3.Connection) -> None:  # keeps the thread busy while the group queues
        loop.call_soon_threadsafe(gate.set)
        deadline = time.monotonic() + 5
        while not release.done() and time.monotonic() < deadline:
            time.sleep(0.001)

    def ok(n: int) -> Callable[[sqlite3.Connection], int]:
        return lambda conn: int(conn.execute("SELECT ?", (n,)).fetchone()[0])

    def bad(conn: sqlite3.Connection) -> int:
        raise ValueError("op 3 fails alone")

    try:
        first = asyncio.ensure_future(db.run(hold))
        await gate.wait()
        monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
        ops = [db.run(bad if n == 3 else ok(n)) for n in range(10)]
        tasks = [asyncio.ensure_future(o) for o in ops]
        await asyncio.sleep(0.05)  # every op is queued behind `hold`
        release.set_result(None)
        results: list[object] = list(await asyncio.gather(*tasks, return_exceptions=True))
        await first
        assert [r for n, r in enumerate(results) if n != 3] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
        assert isinstance(results[3], ValueError)
        # `hold`'s group, then the ten queued behind it: one call each (eleven, one per
        # operation, before).
        assert len(calls) == 2, calls
    finally:
        monkeypatch.undo()
        await db.close()


async def test_savepoints_only_for_a_group_in_which_an_operation_failed(tmp_path: Path) -> None:
    """A group runs its operations without a savepoint each; only when one raises is it rolled
    back and run again, one savepoint per operation, so the failure is undone alone."""
    db = await GroupCommit.start(str(tmp_path / "s.db"), "FULL")
    seen: list[str] = []
    runs = {"bad": 0}

    def insert(n: int) -> Callable[[sqlite3.Connection], None]:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (?)", (n,))

        return op

    def bad(conn: sqlite3.Connection) -> None:
        runs["bad"] += 1
        conn.execute("INSERT INTO t VALUES (-1)")
        raise ValueError("undone alone")

    try:
        await db.run(lambda conn: conn.execute("CREATE TABLE t (n INTEGER)") and None)
        await db.run(lambda conn: conn.set_trace_callback(seen.append))
        await asyncio.gather(*(db.run(insert(n)) for n in range(10)))
        assert not [s for s in seen if s.startswith("SAVEPOINT")], seen
        assert sum(s == "COMMIT" for s in seen) >= 1
        seen.clear()
        results = await asyncio.gather(
            *(db.run(bad if n == 13 else insert(n)) for n in range(10, 20)),
            return_exceptions=True,
        )
        assert [isinstance(r, ValueError) for r in results] == [n == 13 for n in range(10, 20)]
        assert any(s.startswith("SAVEPOINT") for s in seen), seen
        assert runs["bad"] == 2  # once without savepoints, once in its own
        kept = await db.run(lambda conn: conn.execute("SELECT n FROM t ORDER BY n").fetchall())
        assert [n for (n,) in kept] == [n for n in range(20) if n != 13]
    finally:
        await db.close()


async def test_the_statement_journal_stays_in_memory(tmp_path: Path) -> None:
    """A group's savepoints journal in memory, not in a temporary file (temp_store=MEMORY)."""
    db = await GroupCommit.start(str(tmp_path / "t.db"), "FULL")
    try:
        store = await db.run(lambda conn: int(conn.execute("PRAGMA temp_store").fetchone()[0]))
        assert store == 2  # 0 is the compile-time default: a file past 64 KiB
    finally:
        await db.close()


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
