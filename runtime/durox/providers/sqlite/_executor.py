"""The SQLite store's driver plumbing: one connection, one thread, group commit.

SQLite serialises writers anyway, so one connection per store loses nothing and buys a lot:
every operation is one function that runs a whole transaction in the store's thread, so an
acknowledgement costs one hop from the event loop, not one per statement. Operations queue up
for the thread, which runs whatever is waiting as one transaction (group commit): each
operation in its own savepoint, so one that fails is rolled back alone, and the whole group is
made durable by a single commit (one fsync). Under load that turns N fsyncs into one; with a
single caller it is an ordinary transaction. WAL lets other processes read while we write;
`busy_timeout` lets several processes share a file.

Nothing here knows the schema beyond its migrations; the operations are in `_provider` and
`_admin`, their SQL in `queries.sql`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from durox.errors import DuroxError, StoreCorruptionError, StoreUnavailableError
from durox.providers._rows import load_migrations, wall_ms

log = logging.getLogger(__name__)
T = TypeVar("T")

Tx = Callable[[sqlite3.Connection], T]
"""One operation: a function of the connection, run inside the current group transaction."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration, in order."""
    return load_migrations("durox.providers.sqlite")


def applied_migrations(path: str) -> set[int] | None:
    """The migrations applied to the store file at `path`, read through a read-only connection
    (nothing is created or changed); None when the file holds no durox store."""
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute("SELECT version FROM durox_migrations").fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise _classify(exc) from exc
    except sqlite3.Error as exc:
        raise _classify(exc) from exc
    return {int(r[0]) for r in rows}


def _classify(exc: sqlite3.Error) -> DuroxError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in text or "busy" in text or "unable to open" in text or "disk I/O" in text
    ):
        return StoreUnavailableError(f"sqlite: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreCorruptionError(f"sqlite constraint violated: {text}")
    if isinstance(exc, sqlite3.DatabaseError) and "malformed" in text:
        return StoreCorruptionError(f"sqlite database is corrupt: {text}")
    return StoreUnavailableError(f"sqlite: {text}")


class _Op:
    """One queued operation (`fn` None: stop the thread)."""

    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any] | None,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_group(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _hand_back(outcomes: list[tuple[_Op, Any, BaseException | None]]) -> None:
    """Settle a group's futures with one cross-thread call per event loop, in order.

    `call_soon_threadsafe` writes to the loop's self-pipe each time, and after that write the
    store thread must win the GIL back before it can start the next group; per operation that
    took about 13% of the store thread at 16/32 (bench/results/profile-2026-11-30.md).
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]] = {}
    for op, result, error in outcomes:
        by_loop.setdefault(op.loop, []).append((op.future, result, error))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle_group, settled)


class GroupCommit:
    """`await GroupCommit.start(target, synchronous)`; `await run(fn)`; `await close()`."""

    MAX_GROUP = 64

    def __init__(self) -> None:
        """Use `start`; the connection is made in the store's own thread."""
        self._conn: sqlite3.Connection
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.closed = False

    @classmethod
    async def start(cls, target: str, sync: str) -> GroupCommit:
        """Connect to `target` (a path or ":memory:"), migrate, and serve from a new thread."""
        db = cls()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def serve() -> None:
            try:
                conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
                try:
                    conn.execute("PRAGMA busy_timeout = 10000")
                    if target != ":memory:":
                        conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(f"PRAGMA synchronous = {sync}")
                    # Every operation runs in a savepoint, so a group writes a statement
                    # journal; past 64 KiB SQLite spills it to a temporary file, which cost
                    # about 60 pwrite calls per activity of seq5 at 16/32 and an open and close
                    # per group. The journal is bounded by one group (MAX_GROUP operations).
                    conn.execute("PRAGMA temp_store = MEMORY")
                    _migrate(conn)
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.Error as exc:
                loop.call_soon_threadsafe(_settle, ready, None, _classify(exc))
                return
            db._conn = conn
            loop.call_soon_threadsafe(_settle, ready, None, None)
            db._serve()

        db._thread = threading.Thread(target=serve, name="durox-sqlite", daemon=True)
        db._thread.start()
        await ready
        return db

    async def run(self, fn: Tx[T]) -> T:
        """Run `fn` in the next group transaction; its result, or its (classified) error."""
        if self.closed:
            raise StoreUnavailableError("store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, future, loop))
        return await future

    async def close(self) -> None:
        """Let queued operations finish, then close the connection and end the thread."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Op(None, done, loop))
        await done

    def _serve(self) -> None:
        """The store thread: take what is queued, run it as one transaction, repeat."""
        q = self._queue
        while True:
            group = [q.get()]
            while len(group) < self.MAX_GROUP and group[-1].fn is not None:
                try:
                    group.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = group[-1].fn is None
            work = group[:-1] if stop else group
            if work:
                try:
                    self._run_group(work)
                except BaseException as exc:  # the thread must outlive any one bad group
                    log.exception("sqlite store thread: group failed")
                    err = StoreUnavailableError(f"sqlite store thread error: {exc}")
                    for op in work:
                        op.loop.call_soon_threadsafe(_settle, op.future, None, err)
                    with contextlib.suppress(sqlite3.Error):
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
            if stop:
                self._conn.close()
                last = group[-1]
                last.loop.call_soon_threadsafe(_settle, last.future, None, None)
                return

    def _run_group(self, group: list[_Op]) -> None:
        """One transaction for the group. First without a savepoint per operation (a third of
        the statements of a busy store, bench/results/profile-2026-11-30.md); if any operation
        raises, that attempt is rolled back whole and the group runs again with one savepoint
        each, so the failing one is undone alone. Operations are functions of the connection
        and their captured arguments only, so running one again after a rollback gives what
        the first run would have: the same state before it, the same outcome."""
        c = self._conn
        if not self._begin(group):
            return
        results: list[Any] = []
        try:
            for op in group:
                assert op.fn is not None
                results.append(op.fn(c))
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            self._run_group_in_savepoints(group)
            return
        broken = self._commit()
        if broken is not None:
            _hand_back([(op, None, broken) for op in group])
            return
        _hand_back([(op, result, None) for op, result in zip(group, results, strict=True)])

    def _run_group_in_savepoints(self, group: list[_Op]) -> None:
        c = self._conn
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        if not self._begin(group):
            return
        broken: BaseException | None = None
        for op in group:
            assert op.fn is not None
            c.execute("SAVEPOINT op")
            try:
                result = op.fn(c)
            except BaseException as exc:
                error = _classify(exc) if isinstance(exc, sqlite3.Error) else exc
                if c.in_transaction:
                    c.execute("ROLLBACK TO op")
                    c.execute("RELEASE op")
                    outcomes.append((op, None, error))
                    continue
                broken = error  # SQLite rolled the whole transaction back
                break
            c.execute("RELEASE op")
            outcomes.append((op, result, None))
        if broken is None:
            broken = self._commit()
        if broken is not None:
            outcomes = [(op, None, broken) for op in group]
        _hand_back(outcomes)

    def _begin(self, group: list[_Op]) -> bool:
        """Begin the group's write transaction; if SQLite refuses, every operation of the
        group is told why and False returned."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            err = _classify(exc)
            _hand_back([(op, None, err) for op in group])
            return False
        return True

    def _commit(self) -> DuroxError | None:
        """Commit; a refused commit is rolled back and its error returned."""
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            return _classify(exc)
        return None


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply pending migrations, each in its own exclusive transaction (safe across processes)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS durox_migrations (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    for version, name, sql in migrations():
        conn.execute("BEGIN EXCLUSIVE")
        try:
            done = conn.execute(
                "SELECT 1 FROM durox_migrations WHERE version = ?", (version,)
            ).fetchone()
            if not done:
                log.info("applying sqlite migration %s", name)
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO durox_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, wall_ms()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]
