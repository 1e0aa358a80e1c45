"""The store matrix: every conformance test runs on SQLite (file and memory) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from durox.providers import Provider, SqliteProvider
from tests.conformance.pg import fresh_schema, pg_dsn
from tests.conformance.support import FakeClock, Store

STORES = ["sqlite-file", "sqlite-memory", "postgres"]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def open_store(
    store_kind: str, tmp_path: Path
) -> AsyncIterator[Callable[[FakeClock | None], Awaitable[Provider]]]:
    """Open providers on one store (a second one means a second worker, where the store can
    be shared: SQLite in memory hands back the same provider)."""
    opened: list[Provider] = []
    dsn = pg_dsn() if store_kind == "postgres" else ""
    async with fresh_schema(dsn) if dsn else _nothing() as schema:

        async def make(clock: FakeClock | None) -> Provider:
            p: Provider
            if store_kind == "sqlite-memory":
                if opened:
                    return opened[0]
                p = await SqliteProvider.in_memory(clock=clock)
            elif store_kind == "sqlite-file":
                p = await SqliteProvider.open(tmp_path / "store.db", clock=clock)
            else:
                from durox.providers import PostgresProvider

                p = await PostgresProvider.connect(dsn, schema=schema, pool_size=4, clock=clock)
            opened.append(p)
            return p

        try:
            yield make
        finally:
            for p in reversed(opened):
                await p.close()


class _nothing:
    async def __aenter__(self) -> str:
        return ""

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
async def store(
    open_store: Callable[[FakeClock | None], Awaitable[Provider]], store_kind: str
) -> Store:
    """A provider on a fake clock (leases and delays are driven by `store.clock.advance`)."""
    clock = FakeClock()
    return Store(await open_store(clock), clock, store_kind)


@pytest.fixture
async def live(open_store: Callable[[FakeClock | None], Awaitable[Provider]]) -> Provider:
    """A provider on the real clock, for a real runtime (timers use wall time)."""
    return await open_store(None)
