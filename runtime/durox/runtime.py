"""The runtime: dispatcher loops that move work between the store and the pure engine.

Dispatcher loops run on the event loop, for orchestrations (lock an instance's messages, run one
turn, acknowledge it atomically) and for activities (run the handler, acknowledge its result).
On a store whose batch operations cost one round trip (`Provider.batches_in_one_round_trip`:
PostgreSQL), a loop claims every free slot of its kind and fetches that many items in one store
call, running each as its own task; other loops fetch meanwhile as further slots free, so fetches
overlap as they did one item at a time. Acknowledgements are batched too: whatever finished while
the previous batch was on its way goes in the next. A busy worker so pays one round trip for
several items, and an idle one waits for none. On other stores (SQLite, whose group commit
already gathers concurrent operations into one transaction) each loop handles one item at a
time, which costs less Python per item there.

All policy about failure lives here: what is retried with backoff, what is poisoned after
`max_attempts`, what is released at shutdown. The engine itself never sees the store, and the
store never sees user code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from durox._version import __version__
from durox.core import events as ev
from durox.core.codec import encode_json
from durox.core.compat import CURRENT_ENGINE, EngineIdentity
from durox.core.context import OrchestrationContext
from durox.core.poison import poison_turn
from durox.core.replay import (
    STATUS_FAILED,
    Dropped,
    TurnResult,
    Unresolved,
    run_turn,
)
from durox.core.versions import SemverRange, VersionPolicy
from durox.errors import (
    ConfigurationError,
    DuroxError,
    LockLostError,
    PayloadError,
)
from durox.providers._base import (
    InstanceUpdate,
    OrchestrationItem,
    Provider,
    QueueKind,
    TurnCommit,
    WorkerRecord,
    WorkItem,
)
from durox.registry import ActivityContext, ActivityRegistry, OrchestrationRegistry

log = logging.getLogger(__name__)
_T = TypeVar("_T")
trace_log = logging.getLogger("durox.orchestration")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


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

    def __post_init__(self) -> None:
        if self.orchestration_concurrency < 1 or self.activity_concurrency < 0:
            raise ConfigurationError("concurrency must be positive")
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if self.heartbeat_interval * 2 >= self.session_lock_timeout:
            raise ConfigurationError(
                "session_lock_timeout must be more than twice heartbeat_interval, or sessions "
                "would lapse between heartbeats"
            )

    def replay_range(self, engine_version: str = __version__) -> SemverRange:
        return self.supported_replay_versions or SemverRange("0.0.0", engine_version)


class RuntimeObserver:
    """Hooks for metrics; every method is a no-op here. Keep overrides cheap: they run inline."""

    def on_turn(self, name: str, version: str, status: str, started: bool, seconds: float) -> None:
        """A turn was acknowledged; `status` is the execution's status after it."""

    def on_activity(self, name: str, outcome: str, seconds: float) -> None:
        """An activity finished: `outcome` is completed, failed or poisoned."""

    def on_poison(self, kind: str, reason: str) -> None:
        """An orchestration (`kind="orchestration"`) was poisoned."""


@dataclass
class _Loop:
    """A dispatcher. Only an idle one (waiting for a wake-up) may be cancelled at shutdown: one
    cancelled inside a fetch could leave a lease taken in the store with nobody to use it."""

    task: asyncio.Task[None]
    idle: bool = False


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
    ) -> None:
        self.provider = provider
        self.activities = activities
        self.orchestrations = orchestrations
        self.options = options
        self.worker_id = options.worker_node_id or f"durox-{uuid.uuid4().hex[:12]}"
        self._stopping = False
        self._loops: list[_Loop] = []
        self.engine = engine
        self.observer = observer or RuntimeObserver()
        self.config_revision = "0"
        self.started_at = datetime.now(UTC)
        self._heartbeat: asyncio.Task[None] | None = None
        self._beat_now = asyncio.Event()
        self._replay_range = options.replay_range(engine.version)
        self._running: dict[QueueKind, set[asyncio.Task[None]]] = {
            "orchestration": set(),
            "activity": set(),
        }
        self._slot_free: dict[QueueKind, asyncio.Event] = {
            "orchestration": asyncio.Event(),
            "activity": asyncio.Event(),
        }
        self._claimed: dict[QueueKind, int] = {"orchestration": 0, "activity": 0}
        self._started: set[str] = set()
        self._batch = provider.batches_in_one_round_trip
        self._acks = _AckBatcher(provider.ack_work_items)
        self._turn_acks = _AckBatcher(provider.ack_orchestration_items)

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
    ) -> Runtime:
        """Start dispatching. `engine` exists for tests that simulate other engine releases."""
        rt = cls(
            provider, activities, orchestrations, options or RuntimeOptions(), engine, observer
        )
        await rt._beat()
        rt._heartbeat = asyncio.create_task(rt._heartbeat_loop(), name="durox-heartbeat")
        for i in range(rt.options.orchestration_concurrency):
            rt._spawn(rt._orchestration_loop, f"durox-orch-{i}")
        for i in range(rt.options.activity_concurrency):
            rt._spawn(rt._activity_loop, f"durox-act-{i}")
        log.info(
            "runtime %s started: engine %s, replay range %s, %d orchestration and %d activity "
            "dispatchers",
            rt.worker_id,
            engine.version,
            rt._replay_range,
            rt.options.orchestration_concurrency,
            rt.options.activity_concurrency,
            extra={"worker_id": rt.worker_id},
        )
        return rt

    @property
    def replay_range(self) -> SemverRange:
        """The pinned engine versions this runtime fetches now."""
        return self._replay_range

    def reconfigure(
        self,
        *,
        policies: dict[str, VersionPolicy] | None = None,
        supported_replay_versions: SemverRange | None = None,
        reset_replay_range: bool = False,
        revision: str | None = None,
    ) -> None:
        """Apply new version policies and replay range live, without dropping in-flight work.

        Turns already running finish with what they started with; the next fetch and the next
        execution start see the new settings. Raises `ConfigurationError` (and changes
        nothing) if a policy names an unregistered orchestration or version.
        """
        registry = self.orchestrations
        if policies:
            registry = registry.with_policies(policies)
        self.orchestrations = registry
        if supported_replay_versions is not None:
            self._replay_range = supported_replay_versions
        elif reset_replay_range:
            self._replay_range = SemverRange("0.0.0", self.engine.version)
        if revision is not None:
            self.config_revision = revision
        self._beat_now.set()  # report the new settings now, not at the next heartbeat
        log.info(
            "runtime %s reconfigured: revision %s, replay range %s, policies %s",
            self.worker_id,
            self.config_revision,
            self._replay_range,
            {n: str(self.orchestrations.policy(n)) for n in self.orchestrations.names()},
            extra={"worker_id": self.worker_id},
        )

    def capability_record(self) -> WorkerRecord:
        """What this runtime can do, as other workers and the operator will read it."""
        now = datetime.now(UTC)
        reg = self.orchestrations
        return WorkerRecord(
            worker_id=self.worker_id,
            node_id=self.options.worker_node_id,
            pool=self.options.pool,
            engine_version=self.engine.version,
            replay_min=str(self._replay_range.min),
            replay_max=str(self._replay_range.max),
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
            started_at=self.started_at,
            heartbeat_at=now,
        )

    async def _beat(self) -> None:
        await self.provider.upsert_worker(self.capability_record())
        await self.provider.renew_sessions(
            self.worker_id,
            _ms(self.options.session_lock_timeout),
            _ms(self.options.session_idle_timeout),
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
                log.warning("heartbeat failed (%s): %s", _kind(exc), exc)

    def _spawn(self, body: Any, name: str) -> None:
        loop = _Loop(task=None)  # type: ignore[arg-type]
        loop.task = asyncio.create_task(body(loop), name=name)
        self._loops.append(loop)

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop fetching; wait for in-flight work up to `timeout`, then release the rest."""
        if self._stopping:
            return
        self._stopping = True
        for loop in list(self._loops):
            if loop.idle:
                loop.task.cancel()
        # Activities fetched by a fetch that was in flight start after this point: wait for
        # whatever is running each time round, not for a snapshot.
        deadline = time.monotonic() + timeout
        while tasks := [lp.task for lp in self._loops if not lp.task.done()]:
            left = deadline - time.monotonic()
            if left > 0:
                await asyncio.wait(tasks, timeout=left)
                continue
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
        await self._acks.drained()
        await self._turn_acks.drained()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        try:
            await self.provider.remove_worker(self.worker_id)
        except DuroxError as exc:
            log.warning("could not remove the capability record: %s", exc)
        log.info("runtime %s stopped", self.worker_id, extra={"worker_id": self.worker_id})

    # ---- orchestrations ------------------------------------------------------------------

    async def _orchestration_loop(self, loop: _Loop) -> None:
        idle = self.options.poll_interval.total_seconds()
        lock_ms = _ms(self.options.orchestration_lock_timeout)
        failures = 0
        while not self._stopping:
            free = await self._claim(loop, "orchestration") if self._batch else 1
            if not free:
                continue
            items = []
            try:
                items = await self.provider.fetch_orchestration_items(
                    lock_ms, self._replay_range, free
                )
            except DuroxError as exc:
                failures += 1
                log.warning("orchestration fetch failed (%s): %s", _kind(exc), exc)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))
                continue
            finally:
                if self._batch:
                    self._unclaim("orchestration", free, len(items))
            failures = 0
            if not items:
                await self._idle(loop, "orchestration", idle)
                continue
            if not self._batch:
                await self._process(items[0])  # one at a time, in this loop
                continue
            for item in items:
                self._start(
                    "orchestration",
                    self._process(item),
                    item.lock_token,
                    functools.partial(
                        self.provider.abandon_orchestration_item,
                        item.lock_token,
                        ignore_attempt=True,
                    ),
                )

    async def _claim(self, loop: _Loop, kind: QueueKind) -> int:
        """Claim every free slot of `kind` for one fetch (release with `_unclaim`); when none
        is free, wait (cancellably) until one frees and return 0."""
        capacity = (
            self.options.orchestration_concurrency
            if kind == "orchestration"
            else self.options.activity_concurrency
        )
        free = capacity - len(self._running[kind]) - self._claimed[kind]
        if free > 0:
            self._claimed[kind] += free
            return free
        loop.idle = True  # nothing fetched: safe to cancel while waiting for a slot
        try:
            await self._slot_free[kind].wait()
        finally:
            loop.idle = False
        self._slot_free[kind].clear()
        return 0

    def _unclaim(self, kind: QueueKind, claimed: int, used: int) -> None:
        """Give back a fetch's claim. A fetch that found some work but fewer items than slots
        wakes another loop, so fetches overlap while work keeps coming. An empty fetch wakes
        nobody: the queue is empty, and waking the next loop would only chain empty fetches
        through every loop. That keeps one loop of a kind polling an idle store while the
        others sleep until a slot frees."""
        self._claimed[kind] -= claimed
        if 0 < used < claimed:
            self._slot_free[kind].set()

    def _start(
        self,
        kind: QueueKind,
        body: Coroutine[Any, Any, None],
        token: str,
        release: Callable[[], Awaitable[None]],
    ) -> None:
        """Run one fetched item as its own task, counted as running work at shutdown."""
        started = self._started

        async def run() -> None:
            started.add(token)
            await body

        entry = _Loop(task=asyncio.create_task(run(), name=f"durox-{kind} {token}"))
        self._loops.append(entry)
        self._running[kind].add(entry.task)

        def finished(task: asyncio.Task[None]) -> None:
            self._running[kind].discard(task)
            self._loops.remove(entry)
            self._slot_free[kind].set()
            if token in started:
                started.discard(token)
            else:
                body.close()  # never ran
                if task.cancelled():
                    # Cancelled before its first step (shutdown ran out of time): hand it back.
                    self._acks.track(release())
            if not task.cancelled() and task.exception() is not None:
                log.error("%s task crashed", kind, exc_info=task.exception())

        entry.task.add_done_callback(finished)

    async def _ack_turn(self, lock_token: str, commit: TurnCommit) -> None:
        if not self._batch:
            await self.provider.ack_orchestration_item(lock_token, commit)
            return
        failed = await self._turn_acks.ack(lock_token, commit)
        if failed is not None:
            raise failed

    async def _idle(self, loop: _Loop, kind: QueueKind, seconds: float) -> None:
        if self._stopping:
            return
        loop.idle = True
        try:
            await self.provider.wait_for_work(kind, seconds)
        finally:
            loop.idle = False

    def _backoff_ms(self, attempt: int) -> int:
        base = _ms(self.options.unregistered_backoff)
        grown: int = base * 2 ** max(attempt - 1, 0)
        return min(grown, _ms(self.options.unregistered_backoff_max))

    async def _process(self, item: OrchestrationItem) -> None:
        extra = {
            "instance_id": item.instance_id,
            "execution_id": item.execution_id,
            "worker_id": self.worker_id,
        }
        try:
            if item.history_error is not None:
                await self._retry_or_poison(
                    item, f"history cannot be read: {item.history_error}", extra
                )
                return
            if item.attempt_count > self.options.max_attempts:
                await self._poison(
                    item,
                    f"messages were fetched {item.attempt_count} times without being "
                    f"acknowledged (max_attempts={self.options.max_attempts})",
                    extra,
                )
                return
            if item.status == "Running":
                ok, why = self.engine.replays(item.pinned_engine_version)
                if not ok:
                    await self._retry_or_poison(item, f"replay refused: {why}", extra)
                    return
            began = time.perf_counter()
            result = run_turn(
                instance_id=item.instance_id,
                execution_id=item.execution_id,
                history=item.history,
                messages=item.messages,
                resolve=self.orchestrations.resolve,
                now_ms=_now_ms(),
                engine_version=self.engine.version,
                context_factory=OrchestrationContext,
            )
            took = time.perf_counter() - began
            if isinstance(result, Unresolved):
                await self._retry_or_poison(
                    item,
                    f"no orchestration {result.name!r} version "
                    f"{result.version or '(by policy)'} is registered on this worker",
                    extra,
                )
                return
            if isinstance(result, Dropped):
                for reason in result.reasons:
                    log.info("dropped message: %s", reason, extra=extra)
                await self._ack_turn(item.lock_token, TurnCommit(execution_id=item.execution_id))
                return
            await self._commit(item, result)
            self.observer.on_turn(
                result.name, result.version, result.status, result.started_execution, took
            )
        except LockLostError as exc:
            log.warning("turn discarded, lock lost: %s", exc, extra=extra)
        except asyncio.CancelledError:
            with contextlib.suppress(DuroxError):
                await asyncio.shield(
                    self.provider.abandon_orchestration_item(item.lock_token, ignore_attempt=True)
                )
            raise
        except DuroxError as exc:
            log.warning("turn failed (%s): %s", _kind(exc), exc, extra=extra)
            with contextlib.suppress(DuroxError):
                await self.provider.abandon_orchestration_item(
                    item.lock_token, self._backoff_ms(item.attempt_count)
                )
        except Exception:
            log.exception("turn crashed; the messages will be retried", extra=extra)
            with contextlib.suppress(DuroxError):
                await self.provider.abandon_orchestration_item(
                    item.lock_token, self._backoff_ms(item.attempt_count)
                )

    async def _commit(self, item: OrchestrationItem, r: TurnResult) -> None:
        extra = {
            "instance_id": r.instance_id,
            "execution_id": r.execution_id,
            "orchestration_name": r.name,
            "orchestration_version": r.version,
            "worker_id": self.worker_id,
        }
        for level, message in r.traces:
            trace_log.log(logging.getLevelName(level.upper()), message, extra=extra)
        for reason in r.dropped:
            log.debug("dropped message: %s", reason, extra=extra)
        commit = TurnCommit(
            execution_id=r.execution_id,
            new_events=r.new_events,
            instance=InstanceUpdate(
                name=r.name,
                version=r.version,
                status=r.status,
                output=r.output,
                error=r.error,
                custom_status=r.custom_status,
                parent_instance_id=r.parent.instance_id if r.parent else None,
                engine_version=r.engine_version,
                started_execution=r.started_execution,
            ),
            activities=r.activities,
            timers=r.timers,
            messages=r.messages,
            cancelled_activities=r.cancelled_activities,
        )
        await self._ack_turn(item.lock_token, commit)
        if r.status == STATUS_FAILED and r.error is not None:
            log.warning("orchestration failed: %s", r.error, extra=extra)

    async def _retry_or_poison(
        self, item: OrchestrationItem, reason: str, extra: dict[str, Any]
    ) -> None:
        if item.attempt_count >= self.options.max_attempts:
            await self._poison(
                item, f"{reason}; gave up after {item.attempt_count} attempts", extra
            )
            return
        delay = self._backoff_ms(item.attempt_count)
        log.warning(
            "%s; retrying in %d ms (attempt %d of %d)",
            reason,
            delay,
            item.attempt_count,
            self.options.max_attempts,
            extra=extra,
        )
        await self.provider.abandon_orchestration_item(item.lock_token, delay)

    async def _poison(self, item: OrchestrationItem, reason: str, extra: dict[str, Any]) -> None:
        """Fail the instance for good (`poison_turn` decides what its history gets)."""
        log.error("poisoned: %s", reason, extra=extra)
        self.observer.on_poison("orchestration", reason)
        turn = poison_turn(
            reason,
            running=item.status == "Running",
            execution_id=item.execution_id,
            history=item.history,
            history_length=item.history_length,
            messages=item.messages,
            name=item.orchestration_name,
            version=item.orchestration_version,
            pinned_engine_version=item.pinned_engine_version,
            engine_version=self.engine.version,
            now_ms=_now_ms(),
        )
        if turn is None:  # nothing to fail: the messages are dropped
            await self._ack_turn(item.lock_token, TurnCommit(execution_id=item.execution_id))
            return
        commit = TurnCommit(
            execution_id=turn.execution_id,
            new_events=turn.new_events,
            instance=InstanceUpdate(
                name=turn.name,
                version=turn.version,
                status=turn.status,
                error=turn.error,
                parent_instance_id=turn.parent.instance_id if turn.parent else None,
                engine_version=turn.engine_version,
                started_execution=turn.started_execution,
            ),
            messages=turn.messages,
        )
        await self._ack_turn(item.lock_token, commit)

    # ---- activities --------------------------------------------------------------------

    async def _activity_loop(self, loop: _Loop) -> None:
        idle = self.options.poll_interval.total_seconds()
        lock_ms = _ms(self.options.activity_lock_timeout)
        session_ms = _ms(self.options.session_lock_timeout)
        failures = 0
        while not self._stopping:
            free = await self._claim(loop, "activity") if self._batch else 1
            if not free:
                continue
            items = []
            try:
                items = await self.provider.fetch_work_items(
                    lock_ms,
                    free,
                    worker_id=self.worker_id,
                    session_lock_ms=session_ms,
                    max_sessions=self.options.max_sessions_per_runtime,
                )
            except DuroxError as exc:
                failures += 1
                log.warning("activity fetch failed (%s): %s", _kind(exc), exc)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))
                continue
            finally:
                if self._batch:
                    self._unclaim("activity", free, len(items))
            failures = 0
            if not items:
                await self._idle(loop, "activity", idle)
                continue
            if not self._batch:
                await self._run_activity(items[0])  # one at a time, in this loop
                continue
            for wi in items:
                self._start(
                    "activity",
                    self._run_activity(wi),
                    wi.lock_token,
                    functools.partial(
                        self.provider.abandon_work_item, wi.lock_token, ignore_attempt=True
                    ),
                )

    async def _run_activity(self, wi: WorkItem) -> None:
        w = wi.work
        extra = {
            "instance_id": w.instance_id,
            "execution_id": w.execution_id,
            "activity": w.name,
            "worker_id": self.worker_id,
        }
        max_attempts = self.options.max_attempts
        if wi.attempt_count > max_attempts:
            await self._finish_activity(
                wi,
                error=ev.ErrorDetails(
                    "poison",
                    "PoisonMessage",
                    f"activity {w.name!r} was fetched {wi.attempt_count} times without completing "
                    f"(max_attempts={max_attempts})",
                ),
                extra=extra,
            )
            return
        handler = self.activities.get(w.name)
        if handler is None:
            reason = f"no activity {w.name!r} is registered on this worker"
            if wi.attempt_count >= max_attempts:
                await self._finish_activity(
                    wi,
                    error=ev.ErrorDetails(
                        "poison",
                        "PoisonMessage",
                        f"{reason}; gave up after {wi.attempt_count} attempts",
                    ),
                    extra=extra,
                )
                return
            delay = self._backoff_ms(wi.attempt_count)
            log.warning(
                "%s; retrying in %d ms (attempt %d of %d)",
                reason,
                delay,
                wi.attempt_count,
                max_attempts,
                extra=extra,
            )
            await self.provider.abandon_work_item(wi.lock_token, delay)
            return
        ctx = ActivityContext(
            w.instance_id,
            w.execution_id,
            w.event_id,
            w.name,
            wi.attempt_count,
            w.session_id,
            self.worker_id,
        )
        began = time.perf_counter()
        run: asyncio.Task[Any] = asyncio.create_task(
            _as_coroutine(handler(ctx, w.input)), name=f"activity {w.name}"
        )
        renew = asyncio.create_task(self._renew_activity(wi, run))
        try:
            try:
                value = await asyncio.shield(run)
            finally:
                renew.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renew
        except asyncio.CancelledError:
            if run.done() and not self._stopping:
                log.info("activity cancelled: its lease was lost", extra=extra)
                return
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
            with contextlib.suppress(DuroxError):
                await asyncio.shield(
                    self.provider.abandon_work_item(wi.lock_token, ignore_attempt=True)
                )
            raise
        except Exception as exc:  # the user's activity failed
            error = (
                ev.ErrorDetails("validation", type(exc).__name__, str(exc))
                if isinstance(exc, PayloadError)
                else ev.ErrorDetails("application", type(exc).__name__, str(exc))
            )
            await self._finish_activity(wi, error=error, extra=extra, began=began)
            return
        try:
            encode_json(value)
        except PayloadError as exc:
            await self._finish_activity(
                wi,
                error=ev.ErrorDetails("validation", "PayloadError", f"result: {exc}"),
                extra=extra,
                began=began,
            )
            return
        await self._finish_activity(wi, value=value, extra=extra, began=began)

    async def _renew_activity(self, wi: WorkItem, run: asyncio.Task[Any]) -> None:
        timeout = self.options.activity_lock_timeout
        every = (self.options.lock_renewal_interval or timeout / 3).total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                await self.provider.renew_work_item_lock(wi.lock_token, _ms(timeout))
            except LockLostError:
                run.cancel()
                return
            except DuroxError as exc:
                log.warning("activity lease renewal failed: %s", exc)

    async def _finish_activity(
        self,
        wi: WorkItem,
        *,
        value: Any = None,
        error: ev.ErrorDetails | None = None,
        extra: dict[str, Any],
        began: float | None = None,
    ) -> None:
        w = wi.work
        outcome = (
            "completed" if error is None else "poisoned" if error.kind == "poison" else "failed"
        )
        self.observer.on_activity(
            w.name, outcome, 0.0 if began is None else time.perf_counter() - began
        )
        result = ev.ActivityResult(w.instance_id, w.execution_id, w.event_id, value, error)
        try:
            if self._batch:
                failed = await self._acks.ack(wi.lock_token, result)
                if failed is not None:
                    raise failed
            else:
                await self.provider.ack_work_item(wi.lock_token, result)
        except LockLostError:
            log.info("activity result dropped: lease lost or activity cancelled", extra=extra)
        except DuroxError as exc:
            log.warning(
                "activity ack failed (%s): %s; it will run again", _kind(exc), exc, extra=extra
            )
            with contextlib.suppress(DuroxError):
                await self.provider.abandon_work_item(wi.lock_token, 1000)


class _AckBatcher(Generic[_T]):
    """Gathers acknowledgements into batch calls (`ack_work_items`, `ack_orchestration_items`).

    The first result goes out at once; those that finish while a call is in flight wait for it
    and go together in the next. So no result waits longer than one store round trip, and the
    number of round trips falls as the load rises.
    """

    MAX_BATCH = 128

    def __init__(
        self, send: Callable[[Sequence[tuple[str, _T]]], Awaitable[list[DuroxError | None]]]
    ) -> None:
        self._send = send
        self._queue: list[tuple[str, _T, asyncio.Future[DuroxError | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[Any]] = set()

    async def ack(self, lock_token: str, result: _T) -> DuroxError | None:
        """Acknowledge one item; returns the error it met (it does not raise it)."""
        future: asyncio.Future[DuroxError | None] = asyncio.get_running_loop().create_future()
        self._queue.append((lock_token, result, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="durox-ack-flush")
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self.MAX_BATCH]
            del self._queue[: self.MAX_BATCH]
            outcomes: list[DuroxError | None]
            try:
                outcomes = await self._send([(t, r) for t, r, _ in batch])
            except DuroxError as exc:
                outcomes = [exc] * len(batch)
            except BaseException as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def track(self, release: Awaitable[None]) -> None:
        """Run a release in the background; `drained` waits for it."""

        async def quietly() -> None:
            with contextlib.suppress(DuroxError):
                await release

        task = asyncio.create_task(quietly())
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def drained(self) -> None:
        """Wait for acknowledgements and releases still on their way (at shutdown)."""
        waiting = [*self._side, *([self._flusher] if self._flusher else [])]
        if waiting:
            await asyncio.wait(waiting)


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _kind(exc: DuroxError) -> str:
    return "retryable" if exc.retryable else "permanent"
