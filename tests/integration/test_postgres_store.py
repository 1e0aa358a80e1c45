"""PostgreSQL-only mechanics: racing migrations, migrations equal to the schema file, error
classification, schemas as separate deployments, and wake-ups by NOTIFY (of idle workers, and
of clients waiting for an instance to end)."""

from __future__ import annotations

import asyncio
import time
import uuid
from importlib import resources

import asyncpg
import pytest

from durox import Client, ClientOptions
from durox.core import events as ev
from durox.errors import (
    InstanceAlreadyExistsError,
    LockLostError,
    StoreConflictError,
    StoreCorruptionError,
    StoreUnavailableError,
)
from durox.providers import CompletionWatch, PostgresProvider
from durox.providers.postgres._driver import migrations
from durox.providers.postgres._errors import classify
from tests.conformance.pg import fresh_schema


async def test_many_workers_migrating_a_fresh_schema_at_once(dsn: str, schema: str) -> None:
    providers = await asyncio.gather(
        *(PostgresProvider.connect(dsn, schema=schema, pool_size=1) for _ in range(8))
    )
    try:
        conn = await asyncpg.connect(dsn)
        try:
            applied = await conn.fetchval(f'SELECT count(*) FROM "{schema}".durox_migrations')
        finally:
            await conn.close()
        assert applied == len(migrations()) >= 1
        await providers[0].start_instance(ev.StartOrchestration("i1", "O", None, None))
        item = await providers[7].fetch_orchestration_item(1000)
        assert item is not None and item.instance_id == "i1"
    finally:
        await asyncio.gather(*(p.close() for p in providers))


async def _catalog(conn: asyncpg.Connection, schema: str) -> set[tuple[str, ...]]:
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')"
        " FROM information_schema.columns WHERE table_schema = $1",
        schema,
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
        schema,
    )
    functions = await conn.fetch(
        "SELECT p.proname, pg_get_function_arguments(p.oid), p.prosrc FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
        schema,
    )
    rows = [*columns, *indexes, *functions]
    return {tuple(str(v).replace(schema, "S") for v in r) for r in rows}


async def test_the_migrations_give_the_schema_file(dsn: str) -> None:
    async with fresh_schema(dsn) as migrated, fresh_schema(dsn) as expected:
        p = await PostgresProvider.connect(dsn, schema=migrated, listen=False)
        await p.close()
        again = await PostgresProvider.connect(dsn, schema=migrated, listen=False)
        await again.close()  # applying again is a no-op
        conn = await asyncpg.connect(dsn)
        try:
            sql = resources.files("durox.providers.postgres").joinpath("schema.sql").read_text()
            async with conn.transaction():
                await conn.execute(
                    f'CREATE SCHEMA "{expected}"; SET LOCAL search_path = "{expected}"'
                )
                await conn.execute(sql)
            got = await _catalog(conn, migrated)
            want = await _catalog(conn, expected)
        finally:
            await conn.close()
        got = {r for r in got if "durox_migrations" not in r[0]}
        assert got == want


async def test_schemas_are_separate_deployments(dsn: str) -> None:
    async with fresh_schema(dsn) as a_name, fresh_schema(dsn) as b_name:
        a = await PostgresProvider.connect(dsn, schema=a_name)
        b = await PostgresProvider.connect(dsn, schema=b_name)
        try:
            await a.start_instance(ev.StartOrchestration("same", "O", None, None))
            await b.start_instance(ev.StartOrchestration("same", "O", None, None))
            with pytest.raises(InstanceAlreadyExistsError):
                await a.start_instance(ev.StartOrchestration("same", "O", None, None))
            item = await b.fetch_orchestration_item(1000)
            assert item is not None
            assert await b.fetch_orchestration_item(1000) is None
            assert await a.fetch_orchestration_item(1000) is not None
        finally:
            await a.close()
            await b.close()


async def test_an_idle_worker_is_woken_by_notify_in_milliseconds(dsn: str, schema: str) -> None:
    waiting = await PostgresProvider.connect(dsn, schema=schema)
    other = await PostgresProvider.connect(dsn, schema=schema, listen=False)
    try:
        for kind in ("orchestration", "activity"):
            while waiting._db.wakeups.pending(kind):  # drop the wake-ups of connecting
                await waiting.wait_for_work(kind, 0)
        task = asyncio.create_task(waiting.wait_for_work("orchestration", 10))
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await other.start_instance(ev.StartOrchestration("i1", "O", None, None))
        await asyncio.wait_for(task, 2)
        assert time.monotonic() - began < 1.0
    finally:
        await waiting.close()
        await other.close()


async def test_the_listener_reconnects_when_its_connection_is_killed(dsn: str, schema: str) -> None:
    p = await PostgresProvider.connect(dsn, schema=schema)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %' AND query LIKE $1",
                f"%durox.{schema}%",
            )
            assert killed == 1
            deadline = time.monotonic() + 10
            while not p._db.listening.is_set() or not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1", f"%durox.{schema}%"
            ):
                assert time.monotonic() < deadline, "listener did not come back"
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        await p.start_instance(ev.StartOrchestration("i1", "O", None, None))
        await asyncio.wait_for(p.wait_for_work("orchestration", 5), 2)
    finally:
        await p.close()


async def test_a_fetch_never_hands_out_a_lease_that_lapsed_on_the_way(
    dsn: str, schema: str
) -> None:
    p = await PostgresProvider.connect(dsn, schema=schema, listen=False)
    try:
        await p.start_instance(ev.StartOrchestration("i1", "O", None, None))
        assert await p.fetch_orchestration_item(0) is None  # a zero lease is over at once
        item = await p.fetch_orchestration_item(30_000)
        assert item is not None and item.attempt_count == 1  # the first try was not counted
    finally:
        await p.close()


class _Err(asyncpg.PostgresError):  # type: ignore[misc]
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"state {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_Err("40001"), StoreConflictError),
        (_Err("40P01"), StoreConflictError),
        (_Err("0A000"), StoreConflictError),
        (_Err("08006"), StoreUnavailableError),
        (_Err("57P01"), StoreUnavailableError),
        (_Err("53300"), StoreUnavailableError),
        (_Err("23505"), StoreCorruptionError),
        (_Err("22P02"), StoreCorruptionError),
        (_Err("XX001"), StoreCorruptionError),
        (_Err("DX001"), LockLostError),
        (_Err("DX002"), InstanceAlreadyExistsError),
        (ConnectionResetError("reset"), StoreUnavailableError),
        (asyncpg.InterfaceError("connection is closed"), StoreUnavailableError),
        (TimeoutError(), StoreUnavailableError),
    ],
)
def test_driver_errors_are_classified(exc: BaseException, kind: type) -> None:
    err = classify(exc)
    assert type(err) is kind
    assert err.retryable is (kind in (StoreConflictError, StoreUnavailableError, LockLostError))


async def test_a_real_stale_plan_is_retryable(dsn: str) -> None:
    """Caches plans, changes the table under them, and checks what the driver raises."""
    conn = await asyncpg.connect(dsn)
    name = f"t_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {name} (a int)")
        await conn.fetch(f"SELECT * FROM {name}")
        await conn.execute(f"ALTER TABLE {name} ADD COLUMN b int")
        outcome: object
        try:
            outcome = await conn.fetch(f"SELECT * FROM {name}")
        except Exception as exc:
            outcome = classify(exc)
        # Either asyncpg re-prepared the statement by itself, or the error says "retry".
        assert outcome == [] or (isinstance(outcome, StoreConflictError) and outcome.retryable)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {name}")
        await conn.close()


class _CountingFetches:
    """A pass-through provider that counts fetch calls by kind."""

    def __init__(self, inner: PostgresProvider) -> None:
        self._inner = inner
        self.fetches = {"orchestration": 0, "activity": 0}

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def fetch_orchestration_items(self, *args: object, **kwargs: object) -> object:
        self.fetches["orchestration"] += 1
        return await self._inner.fetch_orchestration_items(*args, **kwargs)  # type: ignore[arg-type]

    async def fetch_work_items(self, *args: object, **kwargs: object) -> object:
        self.fetches["activity"] += 1
        return await self._inner.fetch_work_items(*args, **kwargs)  # type: ignore[arg-type]


async def test_an_idle_runtime_polls_once_per_interval_whatever_its_width(
    dsn: str, schema: str
) -> None:
    # 16 orchestration and 32 activity dispatchers, idle: one loop of each kind polls while the
    # others sleep until a slot frees, so idle load on the database does not grow with width.
    from datetime import timedelta

    from durox import ActivityRegistry, Client, OrchestrationRegistry, Runtime, RuntimeOptions

    async def one(ctx: object, x: int) -> int:
        return await ctx.schedule_activity("Double", x)  # type: ignore[attr-defined, no-any-return]

    acts = ActivityRegistry.builder().register("Double", lambda ctx, x: 2 * x).build()
    orchs = OrchestrationRegistry.builder().register("One", one).build()
    provider = await PostgresProvider.connect(dsn, schema=schema)
    counting = _CountingFetches(provider)
    options = RuntimeOptions(
        orchestration_concurrency=16,
        activity_concurrency=32,
        poll_interval=timedelta(milliseconds=50),
    )
    runtime = await Runtime.start(counting, acts, orchs, options)  # type: ignore[arg-type]
    try:
        await asyncio.sleep(0.3)
        before = dict(counting.fetches)
        await asyncio.sleep(1.0)
        per_kind = {k: counting.fetches[k] - before[k] for k in before}
        # About 20 polls a second per kind; one poller per dispatcher would be 320 and 640.
        assert all(n <= 30 for n in per_kind.values()), per_kind
        client = Client(provider)
        await client.start_orchestration("idle-then-busy", "One", 21)
        info = await client.wait_for_orchestration("idle-then-busy", timeout=10)
        assert info.status == "Completed" and info.output == 42
    finally:
        await runtime.shutdown(timeout=5)
        await provider.close()


async def _insert_instance(conn: asyncpg.Connection, schema: str, iid: str, status: str) -> None:
    await conn.execute(
        f'INSERT INTO "{schema}".instances (instance_id, orchestration_name,'
        " orchestration_version, current_execution_id, status, created_at, updated_at)"
        " VALUES ($1, 'O', '1.0.0', 1, $2, 0, 0)",
        iid,
        status,
    )


def _watch(p: PostgresProvider, instance_id: str) -> CompletionWatch:
    watch = p.watch_completion(instance_id)
    assert watch is not None
    return watch


async def _listening_for_endings(p: PostgresProvider) -> None:
    with _watch(p, "warm-up"):
        deadline = time.monotonic() + 10
        while not p._db._ended_listening:
            assert time.monotonic() < deadline, "never listened for endings"
            await asyncio.sleep(0.01)


async def test_every_writer_s_endings_are_announced_and_nothing_else(dsn: str, schema: str) -> None:
    """Migration 0008's trigger is on the table, so an ending written by anyone (the previous
    release's functions during a rolling upgrade, plain SQL here) wakes a waiter; a status
    that is not terminal (ContinuedAsNew, Running) wakes nobody."""
    p = await PostgresProvider.connect(dsn, schema=schema)
    conn = await asyncpg.connect(dsn)
    try:
        await _listening_for_endings(p)
        long_id = "x" * 7001
        with (
            _watch(p, "i1") as watch,
            _watch(p, "born-done") as born,
            _watch(p, "other") as other,
        ):
            await _insert_instance(conn, schema, "i1", "Running")
            for status in ("ContinuedAsNew", "Running"):
                await conn.execute(
                    f'UPDATE "{schema}".instances SET status = $1 WHERE instance_id = $2',
                    status,
                    "i1",
                )
            assert await watch.wait(0.5) is False  # the notifications are on their way first
            await conn.execute(
                f"UPDATE \"{schema}\".instances SET status = 'Completed' WHERE instance_id = 'i1'"
            )
            assert await watch.wait(10) is True
            await _insert_instance(conn, schema, "born-done", "Failed")
            assert await born.wait(10) is True
            assert other.wakeups == 0
            await _insert_instance(conn, schema, long_id, "Cancelled")  # too long to announce
            assert await other.wait(10) is True  # so everyone looks
    finally:
        await conn.close()
        await p.close()


async def test_a_wait_is_not_hung_by_a_killed_listener(dsn: str, schema: str) -> None:
    """An ending whose notification is lost (this provider drops every one here), and a
    listener connection killed with it: the reconnect wakes every waiter, which reads again,
    though its poll is a minute away."""
    p = await PostgresProvider.connect(dsn, schema=schema)
    conn = await asyncpg.connect(dsn)
    try:
        p._db._on_ended = lambda *_: None  # type: ignore[method-assign]
        await _listening_for_endings(p)
        await _insert_instance(conn, schema, "i1", "Running")
        client = Client(p, ClientOptions(wait_fallback_poll=60))
        task = asyncio.create_task(client.wait_for_orchestration("i1", 60))
        await asyncio.sleep(0.2)
        listener = p._db._listen_conn
        assert listener is not None
        pid = listener.get_server_pid()
        async with conn.transaction():
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
            await conn.execute(
                f"UPDATE \"{schema}\".instances SET status = 'Completed' WHERE instance_id = 'i1'"
            )
        status = await asyncio.wait_for(task, 20)
        assert status.status == "Completed"
        assert p._db._listen_conn is not None and p._db._listen_conn.get_server_pid() != pid
    finally:
        await conn.close()
        await p.close()


class _Undo(Exception):
    """Rolls a probe's transaction back once it has read what it wanted."""


async def _queue_rows_read(conn: asyncpg.Connection, schema: str, fn: str, n: int) -> int:
    """Rows of orchestrator_queue that one call of a batched fetch function `fn` reads for a
    batch of `n`, counted by the server for this transaction only, which is then undone."""
    read = -1
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path = "{schema}"')
            tokens = [f"probe-{fn}-{k}" for k in range(n)]
            got = await conn.fetch(
                f"SELECT instance_id FROM {fn}(NULL, 30000, $1, NULL, NULL, NULL, false, 0)",
                tokens,
            )
            assert len(got) == n
            row = await conn.fetchrow(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                " FROM pg_stat_xact_user_tables"
                " WHERE schemaname = $1 AND relname = 'orchestrator_queue'",
                schema,
            )
            assert row is not None
            read = int(row[0])
            raise _Undo
    except _Undo:
        pass
    return read


async def test_a_batched_fetch_reads_the_queue_once(dsn: str) -> None:
    # Migration 0009: one walk for the batch. The function of version 7 walked the queue again
    # for every instance it took, past those it had just locked (about n*n/2 rows for n).
    n = 40
    async with fresh_schema(dsn) as schema:
        p = await PostgresProvider.connect(dsn, schema=schema, listen=False)
        conn = await asyncpg.connect(dsn)
        try:
            for i in range(n):
                await p.start_instance(ev.StartOrchestration(f"i{i:02d}", "O", None, None))
            one_walk = await _queue_rows_read(conn, schema, "durox_fetch_orchestration_batch_v3", n)
            walk_each = await _queue_rows_read(
                conn, schema, "durox_fetch_orchestration_batch_v2", n
            )
        finally:
            await conn.close()
            await p.close()
    assert 0 < one_walk <= 3 * n, one_walk  # the walk, and the update of what it took
    assert walk_each >= n * n // 4, walk_each  # the harm the one walk removes
