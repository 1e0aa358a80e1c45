"""The runtime: dispatch loops that move work between the store and the pure engine.

Orchestration dispatch locks an instance's messages, runs one turn and acknowledges it
atomically; activity dispatch runs the handler, keeping its lease renewed, and acknowledges its
result. Both kinds run the same loop (`_dispatch`): on a store whose batch operations cost one
round trip (`Provider.batches_in_one_round_trip`: PostgreSQL) a loop claims every free slot of
its kind, fetches that many items in one store call and runs each as its own task, and
acknowledgements are batched too (`_acks`): whatever finished while the previous batch was on
its way goes in the next. A busy worker so pays one round trip for several items, and an idle
one waits for none. On other stores (SQLite, whose group commit already gathers concurrent
operations into one transaction) each loop handles one item at a time, which costs less Python
per item there.

All policy about failure lives here: what is retried with backoff, what is poisoned after
`max_attempts` (`_policy`; what a poisoned instance's history gets is decided in
`durox.core.poison`), what is released at shutdown. The engine itself never sees the store, and
the store never sees user code.

Modules: `_runtime` (`Runtime`: lifecycle, heartbeat, reconfiguration, shutdown); `_dispatch`
(the loop and its slot accounting, knowing no store); `_orchestrations` (turns) and
`_activities` (handlers, lease renewal) on `_work` (what both share: releases and acks, with
`_acks`); `_policy` (backoff, retry or poison) and `_options` under all of them.
"""

from durox.runtime._options import RuntimeObserver, RuntimeOptions
from durox.runtime._runtime import Runtime

__all__ = ["Runtime", "RuntimeObserver", "RuntimeOptions"]
