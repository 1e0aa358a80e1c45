"""The PostgreSQL plumbing under the store's operations: migrations, the pool, named
statements with their errors mapped, the LISTEN connection, the clock and lock tokens.

The operations (`_provider.py`) only say which named statement to run with which values; how a
connection is found, how a failure is classified and how an idle worker is woken live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from typing import Any

import asyncpg

from durox.errors import DuroxError, StoreUnavailableError
from durox.providers._base import QueueKind
from durox.providers._rows import Clock, load_migrations, wall_ms
from durox.providers._wakeups import Wakeups
from durox.providers.postgres._errors import classify
from durox.providers.postgres._queries import queries

log = logging.getLogger(__name__)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration, in order."""
    return load_migrations("durox.providers.postgres")


async def applied_migrations(dsn: str, schema: str, timeout: float) -> set[int] | None:
    """The migrations applied to `schema`, read without creating or changing anything; None
    when the schema holds no durox store."""
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            table = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".durox_migrations')
            if table is None:
                return None
            rows = await conn.fetch(f'SELECT version FROM "{schema}".durox_migrations')
            return {int(r[0]) for r in rows}
        finally:
            await conn.close()
    except Exception as exc:
        raise classify(exc) from exc


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset (no operation leaves session state behind)."""


async def open_pool(
    dsn: str, schema: str, pool_size: int, command_timeout: float, *, migrating: bool = True
) -> Any:
    """Create or migrate `schema` (unless `migrating` is False: a reader that has checked the
    schema itself), then open the pool the operations run on."""
    try:
        if migrating:
            conn = await asyncpg.connect(dsn, timeout=command_timeout)
            try:
                await migrate(conn, schema)
            finally:
                await conn.close()
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=pool_size,
            command_timeout=command_timeout,
            reset=_no_reset,
            server_settings={"search_path": schema, "application_name": "durox"},
        )
    except Exception as exc:
        raise classify(exc) from exc


async def migrate(conn: asyncpg.Connection, schema: str) -> None:
    """Apply pending migrations in one transaction under an advisory lock on the schema's name,
    so any number of workers starting together against a fresh database serialise here."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('durox-migrate/' || $1::text, 0))",
            schema,
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS durox_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM durox_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            log.info("applying postgres migration %s to schema %s", name, schema)
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO durox_migrations (version, name) VALUES ($1, $2)", version, name
            )


class Database:
    """One deployment's schema: its pool, its named statements and its wake-ups."""

    def __init__(self, dsn: str, schema: str, pool: Any, clock: Clock | None) -> None:
        self._dsn = dsn
        self._pool = pool
        self._clock = clock
        self._sql = queries(schema)
        self._channel = f"durox.{schema}"
        self.wakeups = Wakeups(self.local_now)
        self.closed = False
        self.listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._token_prefix = uuid.uuid4().hex[:16]
        self._tokens = itertools.count()

    async def listen(self, name: str, timeout: float) -> None:
        """Start the LISTEN connection and wait (up to `timeout`) until it listens."""
        self._listener = asyncio.create_task(self._listen_forever(), name=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), timeout)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self.wakeups.wake_everyone()  # let idle dispatchers see the store is closed
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), 10)

    # ---- clock and tokens --------------------------------------------------------------

    def now(self) -> int | None:
        """The injected clock, or None: the functions then read the database's clock."""
        return None if self._clock is None else self._clock()

    def local_now(self) -> int:
        return self._clock() if self._clock is not None else wall_ms()

    @property
    def database_clock(self) -> bool:
        """True when leases are timed by the database's clock (no clock was injected)."""
        return self._clock is None

    def token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    # ---- named statements --------------------------------------------------------------

    async def _call(self, method: str, name: str, *args: Any) -> Any:
        if self.closed:
            raise StoreUnavailableError("store is closed")
        sql = self._sql[name]
        try:
            async with self._pool.acquire() as conn:
                return await getattr(conn, method)(sql, *args)
        except DuroxError:
            raise
        except Exception as exc:
            raise classify(exc) from exc

    async def fetchrow(self, name: str, *args: Any) -> Any:
        """The first row of the statement `name`, or None."""
        return await self._call("fetchrow", name, *args)

    async def fetch(self, name: str, *args: Any) -> list[Any]:
        """Every row of the statement `name`."""
        rows: list[Any] = await self._call("fetch", name, *args)
        return rows

    async def fetchval(self, name: str, *args: Any) -> Any:
        """The first column of the first row of the statement `name`."""
        return await self._call("fetchval", name, *args)

    # ---- wake-ups ----------------------------------------------------------------------

    async def wait_for_work(self, kind: QueueKind, timeout_s: float) -> None:
        await self.wakeups.wait(kind, timeout_s)

    async def _listen_forever(self) -> None:
        """Hold a LISTEN connection; on loss, reconnect with backoff and wake every waiter."""
        delay = 0.1
        while not self.closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._on_notify)
                self.listening.set()
                self.wakeups.wake_everyone()  # whatever was sent while we were not listening
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 5.0)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)  # detect a silent drop
                log.warning("postgres listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postgres listener: %s; retrying in %.1fs", classify(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        kind = "orchestration" if payload[:1] == "o" else "activity"
        rest = payload[1:]
        try:
            if rest.startswith("@"):
                self.wakeups.notify(kind, visible_at=int(rest[1:]))
            else:
                self.wakeups.notify(kind, count=int(rest or "1"))
        except ValueError:
            log.debug("ignoring notification %r", payload)
