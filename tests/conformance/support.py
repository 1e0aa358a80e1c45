"""Reaching behind a built-in store's back (to corrupt a row, or count what it holds), for the
in-tree tests that check these stores' own tables. The scenarios every store must pass, and
their fake clock and builders, are in `durox.testing`."""

from __future__ import annotations

from durox.providers import Provider
from durox.testing import FakeClock

__all__ = ["FakeClock", "raw_sql", "raw_value"]


async def raw_sql(provider: Provider, sql: str) -> None:
    """Run one parameterless statement behind the provider's back (to corrupt a row, say).
    The statement must be valid in both SQLite and PostgreSQL."""
    from durox.providers import SqliteProvider

    if isinstance(provider, SqliteProvider):
        await provider._run(lambda c: c.execute(sql))
        return
    async with provider._pool.acquire() as conn:  # type: ignore[attr-defined]
        await conn.execute(sql)


async def raw_value(provider: Provider, sql: str) -> object:
    """The first column of the first row of one parameterless query, behind the provider's
    back. The query must be valid in both SQLite and PostgreSQL."""
    from durox.providers import SqliteProvider

    if isinstance(provider, SqliteProvider):
        row = await provider._run(lambda c: c.execute(sql).fetchone())
        return None if row is None else row[0]
    async with provider._pool.acquire() as conn:  # type: ignore[attr-defined]
        return await conn.fetchval(sql)
