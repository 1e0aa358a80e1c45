"""The pytest fixtures the conformance scenarios take, built on the `open_store` fixture the
store under test defines (a `StoreFactory`). Import them into your conftest.py."""

from __future__ import annotations

import pytest

from durox.providers import Store
from durox.testing.support import FakeClock, Harness, StoreFactory


@pytest.fixture
async def store(open_store: StoreFactory) -> Harness:
    """The store under test on a fake clock (leases and delays move with `store.clock`)."""
    clock = FakeClock()
    return Harness(await open_store(clock), clock)


@pytest.fixture
async def live(open_store: StoreFactory) -> Store:
    """The store under test on the wall clock, for a real runtime (timers use wall time)."""
    return await open_store(None)
