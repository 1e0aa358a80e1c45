"""Real-PostgreSQL tier: worker processes, a killed worker, a restarted server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conformance.pg import fresh_schema, pg_dsn
from tests.integration.support import Workers, running_workers


@pytest.fixture
def dsn() -> str:
    return pg_dsn()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    async with fresh_schema(dsn) as name:
        yield name


@pytest.fixture
def workers(dsn: str, schema: str, tmp_path: Path) -> Iterator[Workers]:
    with running_workers(dsn, schema, tmp_path) as w:
        yield w
