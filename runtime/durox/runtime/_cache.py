"""The instance cache: running executions kept suspended between their turns.

Without it every turn replays the execution from its first event, so a K-step execution costs
about K²/2 event deliveries over its life. With it, the worker that ran an instance's last turn
keeps the live state (`durox.core.replay.Suspended`) and feeds the next turn only its new
messages.

Kept state is used only on proof that it is current: the store records, with every
acknowledgement, the lock token of the turn that wrote the instance (`turn_token`), and a fetch
returns it. A lock token is unique to one fetch, and a state is kept only after its own turn
was acknowledged under that token, so an equal token means no other turn (another worker's, a
poison, a re-created instance) has written the instance since. The execution id, the history
length and the registry are checked besides. Anything else is a full replay from the store.

The cache is bounded by count and by an estimate of memory. Measuring a kept state exactly
(walking its coroutine frames and everything they reach) would cost more per turn than the
turn, so each entry carries a cheap, growing estimate instead: a fixed overhead plus the
encoded size of its execution's history, counted once when a cold turn builds the state and
then only for the events each kept turn appends (`kept_size`). docs/instance-cache.md says
what that leaves out and how it compares with the measured resident memory.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from durox.core import events as ev
from durox.core.codec import encoded_size
from durox.core.replay import Suspended
from durox.providers._base import OrchestrationItem
from durox.registry import OrchestrationRegistry
from durox.status import InstanceStatus

KEPT_OVERHEAD_BYTES: Final = 6 * 1024
"""What a kept state costs before its history counts: the suspended coroutine and its frame,
the engine's per-execution state, the cache entry. bench.cache_memory measured 6.4 KiB of
resident memory per kept instance for a small orchestration whose history encodes to about
0.4 KiB (docs/instance-cache.md)."""

EVICTED_BY_COUNT: Final = "count"
"""An entry evicted, least recently used, because the cache held more than its capacity."""
EVICTED_BY_BYTES: Final = "bytes"
"""An entry evicted, least recently used, because the estimates summed past the byte budget."""
NOT_KEPT_OVERSIZED: Final = "oversized"
"""A state not kept at all: its own estimate is above the whole byte budget."""


def kept_size(history: Sequence[ev.Event], new_events: Sequence[ev.Event]) -> int:
    """The estimate for a state a cold turn built: the overhead, the history it replayed and
    the events the turn appended."""
    return KEPT_OVERHEAD_BYTES + encoded_size(history) + encoded_size(new_events)


@dataclass(slots=True)
class Kept:
    """One instance's state after a turn this worker had acknowledged."""

    turn_token: str
    """The lock token the turn was acknowledged under, which the store recorded."""
    execution_id: int
    history_length: int
    registry: OrchestrationRegistry
    """The registry whose handler the state runs; a reconfigured runtime has another."""
    state: Suspended
    size_bytes: int = KEPT_OVERHEAD_BYTES
    """The estimate of the memory this state holds (`kept_size`, plus what later turns appended)."""

    def current_for(self, item: OrchestrationItem, registry: OrchestrationRegistry) -> bool:
        """Whether the store proves this state is the one `item` continues."""
        return (
            item.turn_token is not None
            and item.turn_token == self.turn_token
            and item.execution_id == self.execution_id
            and item.history_length == self.history_length
            and item.status == InstanceStatus.RUNNING
            and registry is self.registry
        )


class InstanceCache:
    """Kept states by instance id, least recently used evicted until at most `capacity` are
    kept and their estimates sum to at most `max_bytes` (either 0: none kept).

    An entry is taken out (`take`) for the turn that uses it and put back (`keep`) only after
    that turn was acknowledged: a turn that fails, loses its lock or is poisoned leaves
    nothing behind. `on_evict` hears the reason of each state dropped to hold a bound.
    """

    def __init__(
        self,
        capacity: int,
        max_bytes: int,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Kept] = OrderedDict()
        self._tokens: dict[str, str] = {}
        self._on_evict = on_evict
        self.bytes = 0
        """The sum of the kept entries' estimates."""
        self.hits = 0
        self.misses = 0
        self.evictions: Counter[str] = Counter()
        """States dropped to hold a bound, by reason (`EVICTED_BY_COUNT`, ...)."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tokens(self) -> Mapping[str, str]:
        """Instance id to the turn token each kept state stands at (what a fetch is told)."""
        return self._tokens

    def take(self, instance_id: str) -> Kept | None:
        kept = self._entries.pop(instance_id, None)
        if kept is not None:
            del self._tokens[instance_id]
            self.bytes -= kept.size_bytes
        return kept

    def keep(self, instance_id: str, kept: Kept) -> None:
        if self.capacity <= 0 or self.max_bytes <= 0:
            kept.state.close()
            return
        old = self.take(instance_id)
        if old is not None:
            old.state.close()
        if kept.size_bytes > self.max_bytes:
            kept.state.close()  # the next turn replays it from the store
            self._evicted(NOT_KEPT_OVERSIZED)
            return
        self._entries[instance_id] = kept
        self._tokens[instance_id] = kept.turn_token
        self.bytes += kept.size_bytes
        self._evict()

    def resize(self, capacity: int, max_bytes: int) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._evict()

    def _evict(self) -> None:
        while len(self._entries) > max(self.capacity, 0):
            self._drop_oldest(EVICTED_BY_COUNT)
        while self._entries and self.bytes > self.max_bytes:
            self._drop_oldest(EVICTED_BY_BYTES)

    def _drop_oldest(self, reason: str) -> None:
        evicted, entry = self._entries.popitem(last=False)
        del self._tokens[evicted]
        self.bytes -= entry.size_bytes
        entry.state.close()
        self._evicted(reason)

    def _evicted(self, reason: str) -> None:
        self.evictions[reason] += 1
        if self._on_evict is not None:
            self._on_evict(reason)

    def clear(self) -> None:
        """Drop every kept state (at shutdown, or when the registry changes)."""
        while self._entries:
            iid, entry = self._entries.popitem()
            del self._tokens[iid]
            entry.state.close()
        self.bytes = 0
