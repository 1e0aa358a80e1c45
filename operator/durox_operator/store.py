"""The operator's door to each registry's store: one cached read-only connection pool per
registry, one `observe` per reconcile pass.

The reconciler is synchronous (kopf runs its handlers in threads); the store's driver is
asyncio. So one private event loop runs in a daemon thread and every call is handed to it.
A pool is opened the first time a registry is observed, kept while its URL stays the same,
and closed when the registry goes (`forget`) or when a read fails (the next pass reconnects).

Nothing here writes to the store, and nothing here migrates it: the pool is opened directly,
so a role with only USAGE and SELECT on the schema can observe (docs/operator.md, "Reading
the store"). Every failure becomes a `StoreUnobservable` with a StoreObserved reason; the pass
then goes on from Kubernetes alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from durox.providers import StoreObservation

logger = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_PREFIX = "sqlite:///"
DEFAULT_SCHEMA = "durox"


class StoreUnobservable(Exception):
    """The store could not be observed this pass; `reason` is a StoreObserved reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable store URL>"
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class StoreObserver:
    """Observes registries' stores; `key` is the registry's (namespace, name)."""

    def __init__(
        self,
        stale_after: timedelta = timedelta(seconds=30),
        timeout: float = 10.0,
        schema: str = DEFAULT_SCHEMA,
        retry_after: float = 30.0,
    ) -> None:
        self.stale_after = stale_after
        self.timeout = timeout
        self.schema = schema
        self.retry_after = retry_after
        self._failed: dict[tuple[str, str], tuple[str, float, StoreUnobservable]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._open: dict[tuple[str, str], tuple[str, Any]] = {}

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._guard:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="durox-store-observer", daemon=True
                )
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(self.timeout + 5)

    def observe(self, key: tuple[str, str], url: str, pool: str) -> StoreObservation:
        """One observation of the store at `url`, its workers narrowed to `pool`."""
        if url.startswith(SQLITE_PREFIX):
            raise StoreUnobservable(
                "StoreNotObservable",
                "the store is a SQLite file inside the workers' pods; the operator cannot read "
                "it and decides from Kubernetes alone (use PostgreSQL to let it see the workers)",
            )
        if url.partition("://")[0].lower() not in ("postgresql", "postgres"):
            raise StoreUnobservable(
                "StoreNotObservable", f"unsupported store URL {redacted(url)!r}"
            )
        with self._guard:
            failed = self._failed.get(key)
        if failed is not None and failed[0] == url and time.monotonic() < failed[1]:
            # A store that just failed to answer is not dialled again on every event: a pass
            # waits for no connect timeout, and the condition keeps the first failure's words.
            raise failed[2]
        try:
            seen = self._run(self._observe(key, url, pool))
        except Exception as exc:
            self.forget(key)  # the next attempt reconnects
            error = StoreUnobservable(*_classify(exc, url, self.schema))
            if error.reason == "StoreUnreachable" or _sqlstates(exc) & LOGIN_REFUSED_STATES:
                # Only a store that did not answer, or refused the login (a wrong password is
                # not retried on every event), is left alone for a while. One that answered
                # "no" (no schema yet, no grant) costs no timeout to ask again, and its answer
                # changes as soon as the first worker migrates the schema: a new registry is
                # created with its store, and its first upgrade may come within seconds, long
                # before a back-off would end.
                with self._guard:
                    self._failed[key] = (url, time.monotonic() + self.retry_after, error)
            raise error from exc
        with self._guard:
            self._failed.pop(key, None)
        return seen

    async def _observe(self, key: tuple[str, str], url: str, pool: str) -> StoreObservation:
        with self._guard:
            have = self._open.get(key)
        if have is not None and have[0] != url:
            await _close(have[1])
            have = None
        if have is None:
            have = (url, await self._connect(url))
            with self._guard:
                self._open[key] = have
        provider = have[1]
        since = datetime.now(UTC) - timedelta(hours=1)
        seen: StoreObservation = await asyncio.wait_for(
            provider.observe(
                pool=pool,
                failed_since=since,
                stale_after_ms=int(self.stale_after.total_seconds() * 1000),
            ),
            self.timeout,
        )
        return seen

    async def _connect(self, url: str) -> Any:
        import asyncpg

        from durox.providers.postgres import PostgresProvider

        pg_pool = await asyncpg.create_pool(
            url,
            min_size=0,
            max_size=1,
            timeout=self.timeout,
            command_timeout=self.timeout,
            server_settings={"search_path": self.schema, "application_name": "durox-operator"},
        )
        # Not `PostgresProvider.connect`: that migrates the schema, which needs write grants
        # the operator's read-only role does not have (the workers migrate it).
        return PostgresProvider(url, self.schema, pg_pool, None)

    def call(self, key: tuple[str, str], use: Callable[[Any], Awaitable[T]]) -> T:
        """Run `use(provider)` on the registry's open connection (the one its last `observe`
        opened), within the timeout. A gate's start and the ramp's reads go this way, so they
        cost no connection of their own; a failure is a `StoreUnobservable`."""
        with self._guard:
            have = self._open.get(key)
        if have is None:
            raise StoreUnobservable("StoreUnreachable", "the store was not observed this pass")
        provider = have[1]

        async def bounded() -> T:
            return await asyncio.wait_for(use(provider), self.timeout)

        try:
            return self._run(bounded())
        except Exception as exc:
            raise StoreUnobservable(*_classify(exc, have[0])) from exc

    def forget(self, key: tuple[str, str]) -> None:
        """Close the registry's pool, if one is open (the registry was deleted)."""
        with self._guard:
            have = self._open.pop(key, None)
            loop = self._loop
            self._failed.pop(key, None)
        if have is not None and loop is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_close(have[1]), loop).result(self.timeout + 5)

    def open_keys(self) -> set[tuple[str, str]]:
        with self._guard:
            return set(self._open)

    def close(self) -> None:
        """Close every pool and stop the loop."""
        for key in self.open_keys():
            self.forget(key)
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.timeout)
            loop.close()


async def _close(provider: Any) -> None:
    with contextlib.suppress(Exception):
        await provider.close()


def _sqlstates(exc: BaseException) -> set[str]:
    """The PostgreSQL error codes along `exc`'s cause chain (the provider wraps the driver's)."""
    states: set[str] = set()
    seen: BaseException | None = exc
    while seen is not None and len(states) < 10:
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str):
            states.add(state)
        seen = seen.__cause__ or seen.__context__
    return states


SCHEMA_MISSING_STATES = frozenset({"3F000", "42P01"})
"""invalid_schema_name, undefined_table: the schema (or its tables) is not there."""
LOGIN_REFUSED_STATES = frozenset({"28P01", "28000"})
"""invalid_password, invalid_authorization_specification (no pg_hba.conf entry, no such role)."""


def _classify(exc: BaseException, url: str, schema: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """(StoreObserved reason, message) for a failed observation. No schema yet is
    SchemaMissing (no worker has migrated this store, or the URL names another database); a
    refused login, a refused grant or another missing object is NotObservable (the role or
    the URL needs fixing); anything else, Unreachable."""
    text = f"{type(exc).__name__}: {exc}".replace(url, redacted(url))
    lowered = text.lower()
    if _sqlstates(exc) & SCHEMA_MISSING_STATES or any(
        f"postgres {s}" in text for s in SCHEMA_MISSING_STATES
    ):
        return "SchemaMissing", (
            f"the store has no {schema!r} schema yet: no worker has started on it (the first "
            "worker creates it); if workers run, the operator's Secret names another database "
            f"than theirs ({text})"
        )[:1000]
    if _sqlstates(exc) & LOGIN_REFUSED_STATES:
        return "StoreNotObservable", (
            "the store refused the operator's login (check the user and password in the URL "
            f"of the Secret it reads, and that the server lets this host in): {text}"
        )[:1000]
    if "permission denied" in lowered or "does not exist" in lowered:
        return "StoreNotObservable", f"the operator's role cannot observe the store: {text}"[:1000]
    return "StoreUnreachable", f"cannot reach the store: {text}"[:1000]
