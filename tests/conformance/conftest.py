"""The store matrix: every conformance test runs on SQLite (file and memory) and PostgreSQL.

The store-contract scenarios come from `durox.testing.conformance` and take the fixtures of
`durox.testing.fixtures`, built here on `open_store`, exactly as an out-of-tree store runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durox.providers import SqliteProvider, Store
from durox.testing import FakeClock, StoreFactory
from durox.testing.fixtures import live, store
from tests.conformance.pg import fresh_schema, pg_dsn

__all__ = ["live", "store"]  # fixtures, for the scenarios

STORES = ["sqlite-file", "sqlite-memory", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def open_store(store_kind: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Open providers on one store (a second one means a second worker, where the store can
    be shared: SQLite in memory hands back the same provider)."""
    opened: list[Store] = []
    dsn = pg_dsn() if store_kind == "postgres" else ""
    async with fresh_schema(dsn) if dsn else _nothing() as schema:

        async def make(clock: FakeClock | None) -> Store:
            p: Store
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
