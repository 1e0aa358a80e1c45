"""Where the PostgreSQL tests find their server, and a fresh schema per test.

A missing server is a failure, never a skip: the conformance suite exists to prove every store
behaves the same, and a suite that quietly ran on SQLite alone would prove nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

HOW_TO_START = (
    "PostgreSQL tests need a server: set DUROX_TEST_PG_DSN, or start a throw-away one with\n"
    '    eval "$(bash scripts/pg.sh start)"\n'
    "(scripts/test.sh does this for you; under CI=true a missing server fails the run)."
)


def pg_dsn() -> str:
    dsn = os.environ.get("DUROX_TEST_PG_DSN", "").strip()
    if not dsn:
        pytest.fail(HOW_TO_START, pytrace=False)
    return dsn


@asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[str]:
    """A schema name nobody uses; dropped (with everything in it) afterwards."""
    import asyncpg

    schema = f"durox_t_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
