"""Real-PostgreSQL tier: worker processes, a killed worker, a restarted server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conformance.pg import fresh_schema, pg_dsn
from tests.integration.support import Workers, running_workers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here that uses the server (through `dsn`) carries the `postgres` marker."""
    for item in items:
        if "dsn" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


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
