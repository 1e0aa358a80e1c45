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
import socket
import uuid
from typing import Any, Final

import asyncpg

from durox.errors import DuroxError, StoreUnavailableError
from durox.providers._completions import Completions, CompletionWatch
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
        conn = await connect(dsn, timeout)
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


KEEPALIVE_IDLE: Final = 10
"""Seconds a connection may sit idle before TCP keepalive probes start (both ends)."""
KEEPALIVE_INTERVAL: Final = 3
KEEPALIVE_COUNT: Final = 3
"""Unanswered probes after which a silent peer is declared gone: an idle connection across a
partition is noticed within about 10 + 3 x 3 = 19 s."""
USER_TIMEOUT_MS: Final = 20_000
"""How long data the worker sent may stay unacknowledged before the kernel drops the
connection (Linux `TCP_USER_TIMEOUT`): a request into a partition fails in 20 s rather than
hanging for the kernel's 15 minutes of retransmissions. `command_timeout` bounds it as well."""

SERVER_KEEPALIVES: Final = {
    "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
    "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
    "tcp_keepalives_count": str(KEEPALIVE_COUNT),
}
"""The server's side of the same rule, so a backend whose worker vanished is ended too."""


def set_keepalive(sock: socket.socket | None) -> None:
    """Turn on TCP keepalives and a send timeout on one connection's socket (not on Unix
    sockets, and only the options this platform has)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class KeepaliveConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose socket has keepalives and a send timeout (asyncpg has no
    option for them; `connection_class` is its documented hook)."""

    def __init__(self, protocol: Any, transport: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, transport, *args, **kwargs)
        set_keepalive(transport.get_extra_info("socket"))


async def connect(dsn: str, timeout: float, **kwargs: Any) -> asyncpg.Connection:
    """One connection with keepalives on both ends (migrations, the listener)."""
    return await asyncpg.connect(
        dsn,
        timeout=timeout,
        connection_class=KeepaliveConnection,
        server_settings=SERVER_KEEPALIVES,
        **kwargs,
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool release hook: nothing to reset (no operation leaves session state behind)."""


async def open_pool(
    dsn: str, schema: str, pool_size: int, command_timeout: float, *, migrating: bool = True
) -> Any:
    """Create or migrate `schema` (unless `migrating` is False: a reader that has checked the
    schema itself), then open the pool the operations run on."""
    try:
        if migrating:
            conn = await connect(dsn, command_timeout)
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
            connection_class=KeepaliveConnection,
            server_settings={
                "search_path": schema,
                "application_name": "durox",
                **SERVER_KEEPALIVES,
            },
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
        self._ended_channel = f"durox.{schema}.ended"
        """Where migration 0008's trigger announces an instance that ended (its id)."""
        self.wakeups = Wakeups(self.store_now)
        self.completions = Completions(pushed=lambda: self._ended_listening)
        self._ended_wanted = False
        self._ended_listening = False
        self._listen_conn: asyncpg.Connection | None = None
        self._ended_task: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()
        """One operation at a time on the listening connection (its pings, a late LISTEN)."""
        self._offset_ms = 0
        """The database's clock minus this host's, as last measured (`sync_clock`)."""
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
        for task in (self._listener, self._ended_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.wakeups.wake_everyone()  # let idle dispatchers see the store is closed
        self.completions.wake_everyone()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), 10)

    # ---- clock and tokens --------------------------------------------------------------

    def now(self) -> int | None:
        """The injected clock, or None: the functions then read the database's clock."""
        return None if self._clock is None else self._clock()

    def store_now(self) -> int:
        """The injected clock, or the database's clock as this host can tell it (its own wall
        clock plus the offset last measured): for the times a worker writes (a timer's due
        time) and the local timers that wait for the database's `visible_at`."""
        return self._clock() if self._clock is not None else wall_ms() + self._offset_ms

    async def first_clock_sync(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                await self.sync_clock(conn)
        except Exception as exc:
            raise classify(exc) from exc

    async def sync_clock(self, conn: Any) -> None:
        """Measure the database's clock against this host's over one round trip."""
        before = wall_ms()
        theirs = await conn.fetchval(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", timeout=5
        )
        after = wall_ms()
        offset = int(theirs) - (before + after) // 2
        if abs(offset - self._offset_ms) > 1000:
            log.warning(
                "this host's clock is %.1f s %s the database's; times are taken from the "
                "database's",
                abs(offset) / 1000,
                "behind" if offset > 0 else "ahead of",
            )
        self._offset_ms = offset

    @property
    def database_clock(self) -> bool:
        """True when leases are timed by the database's clock (no clock was injected)."""
        return self._clock is None

    def token(self) -> str:
        return f"{self._token_prefix}{next(self._tokens):x}"

    @property
    def token_prefix(self) -> str:
        """What every lock token this driver makes begins with."""
        return self._token_prefix

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

    def watch_ended(self, instance_id: str) -> CompletionWatch | None:
        """A `CompletionWatch` for `instance_id`, or None when this store does not listen.

        The ended channel is listened to from the first wait on, not from connect: a worker
        that never waits for an instance would otherwise receive a notification for every
        instance that ends anywhere in the deployment. Until the LISTEN is in effect the
        watch polls on the short schedule, and every waiter is woken once it is, so a status
        read made before it is repeated after it."""
        if self._listener is None or self.closed:
            return None
        watch = self.completions.watch(instance_id)
        if not self._ended_wanted:
            self._ended_wanted = True
            conn = self._listen_conn
            if conn is not None:
                self._ended_task = asyncio.create_task(self._listen_ended(conn))
        return watch

    async def _listen_ended(self, conn: asyncpg.Connection) -> None:
        async with self._listen_lock:
            current = self._listen_conn
            if current is None or current is not conn:
                return  # lost meanwhile: the new connection listens for endings too
            try:
                await current.add_listener(self._ended_channel, self._on_ended)
            except Exception as exc:  # a broken connection: the reconnect listens again
                log.warning("could not listen for endings: %s", classify(exc))
                return
            self._ended_listening = True
        self.completions.wake_everyone()

    def _on_ended(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload:
            self.completions.ended(payload)
        else:  # an id too long for a notification: everyone looks
            self.completions.wake_everyone()

    async def _listen_forever(self) -> None:
        """Hold a LISTEN connection; on loss, reconnect with backoff and wake every waiter."""
        delay = 0.1
        while not self.closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._dsn, 10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                async with self._listen_lock:
                    await self.sync_clock(conn)
                    await conn.add_listener(self._channel, self._on_notify)
                    if self._ended_wanted:
                        await conn.add_listener(self._ended_channel, self._on_ended)
                        self._ended_listening = True
                    self._listen_conn = conn
                self.listening.set()
                self.wakeups.wake_everyone()  # whatever was sent while we were not listening
                self.completions.wake_everyone()
                delay = 0.1
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 5.0)
                    except TimeoutError:
                        async with self._listen_lock:
                            await self.sync_clock(conn)  # and so detect a silent drop
                log.warning("postgres listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postgres listener: %s; retrying in %.1fs", classify(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self.listening.clear()
                self._listen_conn = None
                self._ended_listening = False
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
