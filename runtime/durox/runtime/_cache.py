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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from durox.core.replay import Suspended
from durox.providers._base import OrchestrationItem
from durox.registry import OrchestrationRegistry
from durox.status import InstanceStatus


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
    """Kept states by instance id, least recently used evicted past `capacity` (0: none kept).

    An entry is taken out (`take`) for the turn that uses it and put back (`keep`) only after
    that turn was acknowledged: a turn that fails, loses its lock or is poisoned leaves
    nothing behind.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Kept] = OrderedDict()
        self._tokens: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

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
        return kept

    def keep(self, instance_id: str, kept: Kept) -> None:
        if self.capacity <= 0:
            kept.state.close()
            return
        old = self.take(instance_id)
        if old is not None:
            old.state.close()
        self._entries[instance_id] = kept
        self._tokens[instance_id] = kept.turn_token
        self._evict()

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._evict()

    def _evict(self) -> None:
        while len(self._entries) > max(self.capacity, 0):
            evicted, entry = self._entries.popitem(last=False)
            del self._tokens[evicted]
            entry.state.close()

    def clear(self) -> None:
        """Drop every kept state (at shutdown, or when the registry changes)."""
        while self._entries:
            iid, entry = self._entries.popitem()
            del self._tokens[iid]
            entry.state.close()
