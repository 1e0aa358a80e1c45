"""Test support for durox users and for store authors.

A store is proven by the conformance scenarios in `durox.testing.conformance`: the same ones
the built-in SQLite and PostgreSQL stores pass. To run them over another store, define an
`open_store` fixture (a `StoreFactory`) and bring in the fixtures and the scenarios:

    # conftest.py
    from durox.testing.fixtures import live, store  # noqa: F401  (fixtures)

    @pytest.fixture
    async def open_store(tmp_path):
        opened = []
        async def make(clock):           # clock: a FakeClock, or None for the wall clock
            opened.append(await MyStore.open(tmp_path / "db", clock=clock))
            return opened[-1]
        yield make
        for s in opened:
            await s.close()

    # test_conformance.py
    from durox.testing.conformance import *  # noqa: F403

The scenarios need pytest and pytest-asyncio (asyncio_mode = "auto"). docs/providers.md has
the whole contract.
"""

from durox.testing.support import (
    ENGINE,
    LOCK,
    T0,
    FakeClock,
    Harness,
    StoreFactory,
    first_turn,
    next_turn,
    result,
    started,
)

__all__ = [
    "ENGINE",
    "LOCK",
    "T0",
    "FakeClock",
    "Harness",
    "StoreFactory",
    "first_turn",
    "next_turn",
    "result",
    "started",
]
