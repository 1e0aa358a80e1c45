"""The instance cache's two bounds, count and estimated bytes, on the cache alone.

A kept state here is a stand-in that only records that it was closed: the bounds look at
nothing but the entries' order and estimates, and a dropped state must always be closed (its
coroutines would otherwise linger until garbage collection).
"""

from __future__ import annotations

from typing import cast

from durox import OrchestrationRegistry
from durox.core.replay import Suspended
from durox.runtime._cache import (
    EVICTED_BY_BYTES,
    EVICTED_BY_COUNT,
    NOT_KEPT_OVERSIZED,
    InstanceCache,
    Kept,
)

REG = OrchestrationRegistry.builder().build()
KIB = 1024


class _State:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def kept(size: int, token: str = "t") -> tuple[Kept, _State]:
    state = _State()
    entry = Kept(
        turn_token=token,
        execution_id=1,
        history_length=3,
        registry=REG,
        state=cast(Suspended, state),
        size_bytes=size,
    )
    return entry, state


def test_the_least_recently_used_goes_first_when_the_bytes_run_over() -> None:
    heard: list[str] = []
    cache = InstanceCache(100, 30 * KIB, heard.append)
    states = {}
    for iid in "abc":
        entry, states[iid] = kept(10 * KIB)
        cache.keep(iid, entry)
    assert len(cache) == 3 and cache.bytes == 30 * KIB and not heard
    used = cache.take("a")  # a turn on `a`: it becomes the most recently used
    assert used is not None and cache.bytes == 20 * KIB
    cache.keep("a", used)
    entry, states["d"] = kept(10 * KIB)
    cache.keep("d", entry)
    assert list(cache.tokens) == ["c", "a", "d"]  # b, the least recently used, went
    assert states["b"].closed and not any(states[i].closed for i in "acd")
    assert cache.bytes == 30 * KIB
    assert heard == [EVICTED_BY_BYTES] and cache.evictions == {EVICTED_BY_BYTES: 1}


def test_a_large_entry_evicts_as_many_as_it_needs() -> None:
    cache = InstanceCache(100, 30 * KIB)
    for iid in "abc":
        cache.keep(iid, kept(10 * KIB)[0])
    cache.keep("big", kept(25 * KIB)[0])
    assert list(cache.tokens) == ["big"] and cache.bytes == 25 * KIB
    assert cache.evictions == {EVICTED_BY_BYTES: 3}


def test_an_instance_larger_than_the_whole_budget_is_not_kept() -> None:
    heard: list[str] = []
    cache = InstanceCache(100, 30 * KIB, heard.append)
    small, small_state = kept(10 * KIB)
    cache.keep("small", small)
    old, old_state = kept(20 * KIB, "old")
    cache.keep("huge", old)
    grown, grown_state = kept(30 * KIB + 1, "new")
    cache.keep("huge", grown)  # its turn appended past the budget
    assert "huge" not in cache.tokens and grown_state.closed and old_state.closed
    assert list(cache.tokens) == ["small"] and not small_state.closed  # nobody else paid
    assert cache.bytes == 10 * KIB
    assert heard == [NOT_KEPT_OVERSIZED]
    exactly, _ = kept(30 * KIB)
    cache.keep("fits", exactly)  # the budget itself still fits, alone
    assert list(cache.tokens) == ["fits"] and cache.bytes == 30 * KIB


def test_both_bounds_hold_together_and_count_their_own_evictions() -> None:
    cache = InstanceCache(3, 40 * KIB)
    for iid in "abcd":
        cache.keep(iid, kept(5 * KIB)[0])
    assert list(cache.tokens) == ["b", "c", "d"]  # by count: at most 3
    assert cache.evictions == {EVICTED_BY_COUNT: 1}
    cache.keep("e", kept(31 * KIB)[0])  # by count drops b, then by bytes drops c
    assert list(cache.tokens) == ["d", "e"] and cache.bytes == 36 * KIB
    assert cache.evictions == {EVICTED_BY_COUNT: 2, EVICTED_BY_BYTES: 1}


def test_a_smaller_budget_applies_at_once_and_zero_keeps_nothing() -> None:
    cache = InstanceCache(10, 40 * KIB)
    for iid in "abcd":
        cache.keep(iid, kept(10 * KIB)[0])
    cache.resize(10, 15 * KIB)
    assert list(cache.tokens) == ["d"] and cache.bytes == 10 * KIB
    cache.resize(10, 0)
    entry, state = kept(1)
    cache.keep("e", entry)
    assert "e" not in cache.tokens and state.closed
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
