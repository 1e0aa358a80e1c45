"""Replay-range filtering happens in the fetch itself: a worker never locks what it cannot run."""

from __future__ import annotations

import pytest

from durox.core.versions import SemverRange
from durox.testing.support import LOCK, Harness


@pytest.mark.parametrize(
    ("pin", "lo", "hi", "fetched"),
    [
        ("1.2.3", "1.0.0", "2.0.0", True),
        ("1.2.3", "1.2.3", "1.2.3", True),  # bounds are inclusive
        ("1.2.3", "1.2.4", "2.0.0", False),
        ("1.2.3", "0.0.0", "1.2.2", False),
        ("1.10.0", "1.9.0", "1.11.0", True),  # compared as numbers, not text
        ("1.10.0", "1.2.0", "1.9.0", False),
        ("10.0.0", "2.0.0", "9.0.0", False),
    ],
)
async def test_a_pin_is_fetched_only_inside_the_range(
    store: Harness, pin: str, lo: str, hi: str, fetched: bool
) -> None:
    await store.begin("i1", engine=pin)
    await store.event("i1")
    item = await store.p.fetch_orchestration_item(LOCK, SemverRange(lo, hi))
    assert (item is not None) is fetched


async def test_a_new_instance_has_no_pin_and_goes_to_anyone(store: Harness) -> None:
    await store.start("i1")
    item = await store.p.fetch_orchestration_item(LOCK, SemverRange("9.0.0", "9.9.9"))
    assert item is not None and item.instance_id == "i1"


async def test_an_instance_outside_the_range_does_not_hold_back_the_queue(store: Harness) -> None:
    await store.begin("old", engine="0.0.1")
    await store.begin("new", engine="0.1.0")
    await store.event("old")
    await store.event("new")
    item = await store.p.fetch_orchestration_item(LOCK, SemverRange("0.1.0", "0.1.0"))
    assert item is not None and item.instance_id == "new"
    assert await store.p.fetch_orchestration_item(LOCK, SemverRange("0.1.0", "0.1.0")) is None


async def test_filtered_out_messages_keep_their_attempt_count(store: Harness) -> None:
    await store.begin("old", engine="0.0.1")
    await store.event("old")
    for _ in range(3):
        assert await store.p.fetch_orchestration_item(LOCK, SemverRange("0.1.0", "0.2.0")) is None
    item = await store.p.fetch_orchestration_item(LOCK, SemverRange("0.0.0", "0.2.0"))
    assert item is not None and item.attempt_count == 1


async def test_without_a_range_every_pin_is_fetched(store: Harness) -> None:
    await store.begin("far", engine="99.0.0")
    await store.event("far")
    assert (await store.must_fetch()).instance_id == "far"
