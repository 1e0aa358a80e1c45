"""How a runtime is configured (`RuntimeOptions`) and observed (`RuntimeObserver`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from durox._version import __version__
from durox.core.codec import DEFAULT_MAX_PAYLOAD_BYTES, check_max_payload_bytes
from durox.core.versions import SemverRange
from durox.errors import ConfigurationError

DEFAULT_INSTANCE_CACHE_MAX_BYTES = 64 * 1024 * 1024
"""64 MiB. The default count bound (1,000) of small instances is about 6.4 MiB measured, so this
budget bites only when kept instances average more than 64 KiB each (large inputs, or
orchestrations that hold large results), and then caps the cache at about what 10,000 small
kept instances were measured to cost (+63 MiB resident, bench.cache_memory)."""


def check_instance_cache_max_bytes(value: object) -> None:
    """`ConfigurationError` unless `value` is a whole number of bytes, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"instance_cache_max_bytes must be an int of 0 or more: {value!r}")


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime works. Every duration is a `timedelta`."""

    orchestration_concurrency: int = 16
    activity_concurrency: int = 32
    orchestration_lock_timeout: timedelta = timedelta(seconds=30)
    activity_lock_timeout: timedelta = timedelta(seconds=60)
    lock_renewal_interval: timedelta | None = None
    """How often a running activity's lease is renewed; default a third of its timeout."""
    max_attempts: int = 10
    """Fetches of the same message before it is poisoned (the instance or activity fails)."""
    unregistered_backoff: timedelta = timedelta(seconds=1)
    """First delay before retrying work no handler here can take; doubles up to a minute."""
    unregistered_backoff_max: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(milliseconds=200)
    """Fallback poll when no wake-up arrives (work enqueued by another process)."""
    worker_node_id: str | None = None
    """A stable identity (a pod name) so a restarted worker reclaims what it owned."""
    pool: str = "default"
    """The worker pool this runtime belongs to (reported in its capability record)."""
    supported_replay_versions: SemverRange | None = None
    """Pinned engine versions this runtime fetches; None: 0.0.0 up to this engine."""
    session_lock_timeout: timedelta = timedelta(seconds=30)
    """How long a session stays pinned to this worker without a heartbeat (say, if it dies)."""
    session_idle_timeout: timedelta = timedelta(minutes=5)
    """A session with no activity for this long is no longer renewed, and unpins."""
    max_sessions_per_runtime: int | None = None
    """Cap on sessions this runtime owns at once; None: no cap; 0: it takes no session work."""
    heartbeat_interval: timedelta = timedelta(seconds=5)
    """How often the capability record and session locks are refreshed."""
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """The largest payload (UTF-8 JSON bytes) this runtime's orchestrations and activities may
    hand over: an activity result, an orchestration output, a custom status, the input of an
    activity, sub-orchestration or continue_as_new. Larger ones fail with
    `PayloadTooLargeError` (docs/payloads.md)."""
    instance_cache_size: int = 1000
    """Running instances kept suspended in memory after their last turn on this worker, least
    recently used evicted; 0 keeps none (every turn replays the history). Used only on a store
    that proves a kept state current (`Provider.proves_turn_state`)."""
    instance_cache_max_bytes: int = DEFAULT_INSTANCE_CACHE_MAX_BYTES
    """A budget for the kept instances' estimated memory, least recently used evicted past it;
    an instance whose own estimate is larger is not kept (its next turn replays). The estimate
    is a fixed overhead plus the encoded size of the history (docs/instance-cache.md); 0 keeps
    none."""
    sticky_window: timedelta = timedelta(seconds=2)
    """How long the next turn of an instance whose state a worker keeps waits for that worker
    before any worker takes it (measured from when its message became visible); zero: no
    preference."""
    verify_cached_turns: bool = False
    """Debugging: replay every turn that ran on a kept state cold as well, from the stored
    history, and fail the turn (logged, retried cold) if the two decided differently."""

    def __post_init__(self) -> None:
        if self.orchestration_concurrency < 1 or self.activity_concurrency < 0:
            raise ConfigurationError("concurrency must be positive")
        if self.instance_cache_size < 0:
            raise ConfigurationError("instance_cache_size must be 0 or more")
        check_instance_cache_max_bytes(self.instance_cache_max_bytes)
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        check_max_payload_bytes(self.max_payload_bytes)
        if self.heartbeat_interval * 2 >= self.session_lock_timeout:
            raise ConfigurationError(
                "session_lock_timeout must be more than twice heartbeat_interval, or sessions "
                "would lapse between heartbeats"
            )

    def initial_replay_range(self, engine_version: str = __version__) -> SemverRange:
        """The range a runtime starts with: `supported_replay_versions`, else every engine
        version up to its own. `Runtime.replay_range` is the one in force, which `reconfigure`
        may change; a store's `replay_range` argument is that same range, passed to a fetch."""
        return self.supported_replay_versions or SemverRange("0.0.0", engine_version)


class RuntimeObserver:
    """Hooks for metrics; every method is a no-op here. Keep overrides cheap: they run inline."""

    def on_turn(self, name: str, version: str, status: str, started: bool, seconds: float) -> None:
        """A turn was acknowledged; `status` is the execution's status after it."""

    def on_activity(self, name: str, outcome: str, seconds: float) -> None:
        """An activity finished: `outcome` is completed, failed or poisoned."""

    def on_poison(self, kind: str, reason: str) -> None:
        """An orchestration (`kind="orchestration"`) was poisoned."""

    def on_instance_cache(self, kept: bool) -> None:
        """A turn ran on a kept state (`kept`) or replayed its history, with the cache on."""

    def on_instance_cache_eviction(self, reason: str) -> None:
        """A kept state was dropped to hold a bound: `count` or `bytes` (the least recently
        used, evicted), or `oversized` (a state larger than the whole byte budget, not kept)."""
