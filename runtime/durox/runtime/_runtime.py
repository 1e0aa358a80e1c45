"""The runtime's lifecycle: start, heartbeat, live reconfiguration and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from datetime import UTC, datetime, timedelta

from durox.core.compat import CURRENT_ENGINE, EngineIdentity
from durox.core.versions import SemverRange, VersionPolicy
from durox.errors import ConfigurationError, DuroxError
from durox.providers._base import OrchestrationItem, Provider, WorkerRecord, WorkItem
from durox.registry import ActivityRegistry, OrchestrationRegistry
from durox.runtime._activities import ActivityRunner
from durox.runtime._dispatch import Dispatcher, Tasks
from durox.runtime._options import (
    RuntimeObserver,
    RuntimeOptions,
    check_instance_cache_max_bytes,
)
from durox.runtime._orchestrations import TurnRunner
from durox.runtime._policy import kind_of, log, ms


class Runtime:
    """`runtime = await Runtime.start(provider, activities, orchestrations, options)`."""

    def __init__(
        self,
        provider: Provider,
        activities: ActivityRegistry,
        orchestrations: OrchestrationRegistry,
        options: RuntimeOptions,
        engine: EngineIdentity = CURRENT_ENGINE,
        observer: RuntimeObserver | None = None,
        config_revision: str = "0",
    ) -> None:
        self.provider = provider
        self.activities = activities
        self.options = options
        self.worker_id = options.worker_node_id or f"durox-{uuid.uuid4().hex[:12]}"
        self.engine = engine
        self.observer = observer or RuntimeObserver()
        self.config_revision = config_revision
        self.config_rejected: str | None = None
        """Why the newest config was rejected (set by the worker), reported in the record."""
        self.started_at = datetime.now(UTC)
        self._heartbeat: asyncio.Task[None] | None = None
        self._beat_now = asyncio.Event()
        self._tasks = Tasks()
        batch = provider.batches_in_one_round_trip
        poll = options.poll_interval.total_seconds()
        self._turns = TurnRunner(
            provider,
            options,
            engine,
            self.observer,
            self.worker_id,
            orchestrations,
            options.initial_replay_range(engine.version),
            batch=batch,
        )
        self._activity_runs = ActivityRunner(
            provider,
            options,
            activities,
            self.observer,
            self.worker_id,
            batch=batch,
            stopping=lambda: self._tasks.stopping,
        )
        self._orchestration_dispatch: Dispatcher[OrchestrationItem] = Dispatcher(
            "orchestration",
            self._turns,
            options.orchestration_concurrency,
            self._tasks,
            batch=batch,
            poll_seconds=poll,
        )
        self._activity_dispatch: Dispatcher[WorkItem] = Dispatcher(
            "activity",
            self._activity_runs,
            options.activity_concurrency,
            self._tasks,
            batch=batch,
            poll_seconds=poll,
        )

    @classmethod
    async def start(
        cls,
        provider: Provider,
        activities: ActivityRegistry,
        orchestrations: OrchestrationRegistry,
        options: RuntimeOptions | None = None,
        *,
        engine: EngineIdentity = CURRENT_ENGINE,
        observer: RuntimeObserver | None = None,
        config_revision: str = "0",
    ) -> Runtime:
        """Start dispatching. `engine` exists for tests that simulate other engine releases;
        `config_revision` names the configuration the caller started with, so the first
        capability record already carries it (an operator never sees a revision that was never
        in force)."""
        rt = cls(
            provider,
            activities,
            orchestrations,
            options or RuntimeOptions(),
            engine,
            observer,
            config_revision,
        )
        await rt._beat()
        rt._heartbeat = asyncio.create_task(rt._heartbeat_loop(), name="durox-heartbeat")
        rt._orchestration_dispatch.spawn("durox-orch")
        rt._activity_dispatch.spawn("durox-act")
        log.info(
            "runtime %s started: engine %s, replay range %s, %d orchestration and %d activity "
            "dispatchers",
            rt.worker_id,
            engine.version,
            rt.replay_range,
            rt.options.orchestration_concurrency,
            rt.options.activity_concurrency,
            extra={"worker_id": rt.worker_id},
        )
        return rt

    @property
    def orchestrations(self) -> OrchestrationRegistry:
        """The orchestration registry (with its version policies) turns resolve against now."""
        return self._turns.registry

    @orchestrations.setter
    def orchestrations(self, registry: OrchestrationRegistry) -> None:
        if registry is not self._turns.registry:
            self._turns.forget()  # kept states run the old registry's handlers
        self._turns.registry = registry

    @property
    def replay_range(self) -> SemverRange:
        """The pinned engine versions this runtime fetches now."""
        return self._turns.replay_range

    def reconfigure(
        self,
        *,
        policies: dict[str, VersionPolicy] | None = None,
        supported_replay_versions: SemverRange | None = None,
        reset_replay_range: bool = False,
        revision: str | None = None,
        instance_cache_size: int | None = None,
        sticky_window: timedelta | None = None,
        instance_cache_max_bytes: int | None = None,
    ) -> None:
        """Apply new version policies and replay range live, without dropping in-flight work.

        Turns already running finish with what they started with; the next fetch and the next
        execution start see the new settings. Raises `ConfigurationError` (and changes
        nothing) if a policy names an unregistered orchestration or version. New policies
        drop the kept instance states (they replay once from the store);
        `instance_cache_size`, `instance_cache_max_bytes` and `sticky_window` resize the cache
        and change the window.
        """
        if instance_cache_size is not None and instance_cache_size < 0:
            raise ConfigurationError("instance_cache_size must be 0 or more")
        if instance_cache_max_bytes is not None:
            check_instance_cache_max_bytes(instance_cache_max_bytes)
        registry = self.orchestrations
        if policies:
            registry = registry.with_policies(policies)
        self.orchestrations = registry
        if supported_replay_versions is not None:
            self._turns.replay_range = supported_replay_versions
        elif reset_replay_range:
            self._turns.replay_range = SemverRange("0.0.0", self.engine.version)
        if revision is not None:
            self.config_revision = revision
        self._turns.tune(
            instance_cache_size,
            None if sticky_window is None else int(sticky_window.total_seconds() * 1000),
            instance_cache_max_bytes,
        )
        self._beat_now.set()  # report the new settings now, not at the next heartbeat
        log.info(
            "runtime %s reconfigured: revision %s, replay range %s, policies %s",
            self.worker_id,
            self.config_revision,
            self.replay_range,
            {n: str(self.orchestrations.policy(n)) for n in self.orchestrations.names()},
            extra={"worker_id": self.worker_id},
        )

    def report_config_rejected(self, reason: str | None) -> None:
        """Say in the capability record (at once) why the newest config was rejected while
        the previous revision serves on; None once a config applies again."""
        if reason != self.config_rejected:
            self.config_rejected = reason
            self._beat_now.set()

    def capability_record(self) -> WorkerRecord:
        """What this runtime can do, as other workers and the operator will read it."""
        now = datetime.now(UTC)
        reg = self.orchestrations
        return WorkerRecord(
            worker_id=self.worker_id,
            node_id=self.options.worker_node_id,
            pool=self.options.pool,
            engine_version=self.engine.version,
            replay_min=str(self.replay_range.min),
            replay_max=str(self.replay_range.max),
            orchestrations={
                name: {
                    "versions": [str(v) for v in reg.versions(name)],
                    "policy": str(reg.policy(name)),
                }
                for name in reg.names()
            },
            activities=self.activities.names(),
            session_activities=sorted(self.activities.session_names),
            config_revision=self.config_revision,
            config_rejected=self.config_rejected,
            started_at=self.started_at,
            heartbeat_at=now,
        )

    async def _beat(self) -> None:
        await self.provider.upsert_worker(self.capability_record())
        await self.provider.renew_sessions(
            self.worker_id,
            ms(self.options.session_lock_timeout),
            ms(self.options.session_idle_timeout),
        )

    async def _heartbeat_loop(self) -> None:
        every = self.options.heartbeat_interval.total_seconds()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), every)
            self._beat_now.clear()
            try:
                await self._beat()
            except DuroxError as exc:
                log.warning("heartbeat failed (%s): %s", kind_of(exc), exc)

    async def shutdown(self, timeout: timedelta | float = timedelta(seconds=30)) -> None:
        """Stop fetching; wait for in-flight work up to `timeout` (a `timedelta`, or seconds),
        then release the rest. A bad `timeout` raises `ConfigurationError` and changes nothing:
        the runtime keeps running and a later shutdown works as if this one never happened."""
        seconds = _timeout_seconds(timeout)
        if self._tasks.stopping:
            return
        await self._tasks.stop(seconds)
        await self._activity_runs.drained()
        await self._turns.drained()
        self._turns.forget()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        try:
            await self.provider.remove_worker(self.worker_id)
        except DuroxError as exc:
            log.warning("could not remove the capability record: %s", exc)
        log.info("runtime %s stopped", self.worker_id, extra={"worker_id": self.worker_id})


def _timeout_seconds(timeout: timedelta | float) -> float:
    """A shutdown timeout in seconds; `ConfigurationError` unless it is a `timedelta` or a
    number of seconds, finite and not negative."""
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise ConfigurationError(
            f"shutdown timeout must be a timedelta or a number of seconds, not {timeout!r}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"shutdown timeout must be finite and not negative: {timeout!r}")
    return seconds
