"""Acknowledgement on every built-in store: the scenarios of
`durox.testing.conformance.acknowledgement`, and how a row corrupted behind the store's back
(in these stores' own tables) is reported."""

from __future__ import annotations

from durox.testing import Harness
from durox.testing.conformance.acknowledgement import *  # noqa: F403
from tests.conformance.support import raw_sql


async def test_an_unreadable_event_is_reported_not_raised(store: Harness) -> None:
    await store.begin("i1")
    await raw_sql(store.p, 'UPDATE history SET data = \'{"k":"FromTheFuture"}\' WHERE event_id = 1')
    await store.event("i1")
    item = await store.must_fetch()
    assert item.history == [] and item.history_error is not None
    assert "FromTheFuture" in item.history_error
    assert item.history_length == 1


async def test_an_unreadable_message_is_reported_not_raised(store: Harness) -> None:
    await store.begin("i1")
    await store.event("i1")
    await raw_sql(store.p, "UPDATE orchestrator_queue SET data = 'not json'")
    item = await store.must_fetch()
    assert item.history_error is not None and item.history == []
