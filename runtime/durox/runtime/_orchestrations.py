"""Orchestration work: lock an instance's messages, run one turn, acknowledge it atomically.

What cannot be processed here is handed back with a growing delay, or poisoned (the instance
fails for good, as `durox.core.poison` decides) once it has been fetched `max_attempts` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from durox.core.codec import encoded_size
from durox.core.compat import EngineIdentity
from durox.core.context import OrchestrationContext
from durox.core.poison import poison_turn
from durox.core.replay import (
    STATUS_FAILED,
    Dropped,
    Suspended,
    TurnResult,
    Unresolved,
    run_turn,
    run_turn_keeping,
)
from durox.core.versions import SemverRange
from durox.errors import DuroxError, HistoryDecodeError, LockLostError
from durox.providers._base import InstanceUpdate, OrchestrationItem, Provider, TurnCommit
from durox.registry import OrchestrationRegistry
from durox.runtime._cache import InstanceCache, Kept, kept_size
from durox.runtime._options import RuntimeObserver, RuntimeOptions
from durox.runtime._policy import backoff_ms, kind_of, log, ms, retry_or_poison
from durox.runtime._work import StoreWork
from durox.status import InstanceStatus

trace_log = logging.getLogger("durox.orchestration")


class TurnRunner(StoreWork[OrchestrationItem, TurnCommit]):
    """Runs fetched orchestration items, one turn each (the `Work` of orchestration dispatch).

    `registry` and `replay_range` are read at each fetch and turn, so `Runtime.reconfigure`
    changes them live: turns already running finish with what they started with.

    On a store that proves turn state, running instances are kept suspended after their turns
    (`cache`, see `durox.runtime._cache`) and a later turn on one resumes it when the store
    proves it current; everything else replays from the store's history.
    """

    def __init__(
        self,
        provider: Provider,
        options: RuntimeOptions,
        engine: EngineIdentity,
        observer: RuntimeObserver,
        worker_id: str,
        registry: OrchestrationRegistry,
        replay_range: SemverRange,
        *,
        batch: bool,
    ) -> None:
        super().__init__(
            "orchestration",
            provider,
            options,
            observer,
            worker_id,
            batch=batch,
            ack_one=provider.ack_orchestration_item,
            ack_many=provider.ack_orchestration_items,
            abandon=provider.abandon_orchestration_item,
        )
        self.engine = engine
        self.registry = registry
        self.replay_range = replay_range
        self._lock_ms = ms(options.orchestration_lock_timeout)
        self._sticky_ms = ms(options.sticky_window)
        self._cache_size = options.instance_cache_size
        self._cache_bytes = options.instance_cache_max_bytes
        self.cache: InstanceCache | None = None
        self._size_cache()
        self.divergences: list[str] = []
        """Turns whose kept and cold runs decided differently (`verify_cached_turns`)."""

    async def fetch(self, count: int) -> Sequence[OrchestrationItem]:
        kept = None
        if self.cache is not None and not self.options.verify_cached_turns:
            kept = self.cache.tokens  # the store may then leave those histories unread
        return await self.provider.fetch_orchestration_items(
            self._lock_ms, self.replay_range, count, kept=kept, sticky_ms=self._sticky_ms
        )

    def tune(
        self,
        instance_cache_size: int | None,
        sticky_window_ms: int | None,
        instance_cache_max_bytes: int | None = None,
    ) -> None:
        """Resize the cache (0: keep nothing), change its byte budget (0: keep nothing) and the
        sticky window, live; None leaves a setting as it is."""
        if sticky_window_ms is not None:
            self._sticky_ms = max(0, sticky_window_ms)
        if instance_cache_size is None and instance_cache_max_bytes is None:
            return
        if instance_cache_size is not None:
            self._cache_size = instance_cache_size
        if instance_cache_max_bytes is not None:
            self._cache_bytes = instance_cache_max_bytes
        self._size_cache()

    def _size_cache(self) -> None:
        if self._cache_size <= 0 or self._cache_bytes <= 0 or not self.provider.proves_turn_state:
            self.forget()
            self.cache = None
        elif self.cache is None:
            self.cache = InstanceCache(
                self._cache_size, self._cache_bytes, self.observer.on_instance_cache_eviction
            )
        else:
            self.cache.resize(self._cache_size, self._cache_bytes)

    def forget(self) -> None:
        """Drop every kept state (the registry changed, or the runtime stops)."""
        if self.cache is not None:
            self.cache.clear()

    async def run(self, item: OrchestrationItem) -> None:
        extra = {
            "instance_id": item.instance_id,
            "execution_id": item.execution_id,
            "worker_id": self.worker_id,
        }
        registry = self.registry
        kept: Kept | None = None
        state: Suspended | None = None  # closed unless handed to the cache
        try:
            if self.cache is not None:
                kept = self.cache.take(item.instance_id)
                if kept is not None and not kept.current_for(item, registry):
                    log.debug("kept state is not current: full replay", extra=extra)
                    kept.state.close()
                    kept = None
            if item.history_skipped and (
                kept is None
                or item.history_error is not None
                or item.attempt_count > self.options.max_attempts
            ):
                # The store left the history out for a state this turn cannot use (or did
                # not keep): read it, under the lock this turn holds.
                if kept is not None:
                    kept.state.close()
                    kept = None
                try:
                    item.history = await self.provider.read_turn_history(
                        item.instance_id, item.execution_id
                    )
                except HistoryDecodeError as exc:
                    item.history_error = str(exc)
                item.history_skipped = False
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
            if item.status == InstanceStatus.RUNNING:
                ok, why = self.engine.replays(item.pinned_engine_version)
                if not ok:
                    await self._retry_or_poison(item, f"replay refused: {why}", extra)
                    return
            began = time.perf_counter()
            now_ms = self.provider.clock_ms()
            result: TurnResult | Unresolved | Dropped
            kept_bytes: int | None = None  # the kept state's estimate, on a turn that used it
            if kept is not None:
                self.cache.hits += 1  # type: ignore[union-attr]
                self.observer.on_instance_cache(True)
                suspended, kept_bytes, kept = kept.state, kept.size_bytes, None
                result, state = suspended.resume(item.messages, now_ms)
                if self.options.verify_cached_turns:
                    result, state = self._verify(item, registry, now_ms, result, state, extra)
            elif self.cache is not None:
                self.cache.misses += 1
                self.observer.on_instance_cache(False)
                result, state = run_turn_keeping(**self._turn_args(item, registry, now_ms))
            else:
                result = run_turn(**self._turn_args(item, registry, now_ms))
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
                await self._ack(item.lock_token, TurnCommit(execution_id=item.execution_id))
                return
            await self._commit(item, result, keeps=state is not None and self.cache is not None)
            if state is not None and self.cache is not None:
                if kept_bytes is not None:  # grows by what this turn appended only
                    size = kept_bytes + encoded_size(result.new_events)
                else:
                    replayed = () if result.started_execution else item.history
                    size = kept_size(replayed, result.new_events)
                self.cache.keep(
                    item.instance_id,
                    Kept(
                        turn_token=item.lock_token,
                        execution_id=result.execution_id,
                        history_length=state.history_length,
                        registry=registry,
                        state=state,
                        size_bytes=size,
                    ),
                )
                state = None
            self.observer.on_turn(
                result.name, result.version, result.status, result.started_execution, took
            )
        except LockLostError as exc:
            log.warning("turn discarded, lock lost: %s", exc, extra=extra)
        except asyncio.CancelledError:
            with contextlib.suppress(DuroxError):
                await asyncio.shield(self.release(item))
            raise
        except DuroxError as exc:
            log.warning("turn failed (%s): %s", kind_of(exc), exc, extra=extra)
            with contextlib.suppress(DuroxError):
                await self._retry_later(
                    item, backoff_ms(self.options, item.attempt_count), exc.retryable
                )
        except Exception:
            log.exception("turn crashed; the messages will be retried", extra=extra)
            with contextlib.suppress(DuroxError):
                await self._retry_later(item, backoff_ms(self.options, item.attempt_count))
        finally:
            if kept is not None:
                kept.state.close()
            if state is not None:
                state.close()

    def _turn_args(
        self, item: OrchestrationItem, registry: OrchestrationRegistry, now_ms: int
    ) -> dict[str, Any]:
        return {
            "instance_id": item.instance_id,
            "execution_id": item.execution_id,
            "history": item.history,
            "messages": item.messages,
            "resolve": registry.resolve,
            "now_ms": now_ms,
            "engine_version": self.engine.version,
            "context_factory": OrchestrationContext,
            "max_payload_bytes": self.options.max_payload_bytes,
        }

    def _verify(
        self,
        item: OrchestrationItem,
        registry: OrchestrationRegistry,
        now_ms: int,
        warm: TurnResult,
        state: Suspended | None,
        extra: dict[str, Any],
    ) -> tuple[TurnResult | Unresolved | Dropped, Suspended | None]:
        """Replay the turn cold from the stored history as well; on any difference, log it,
        record it in `divergences` and go on with the cold result, keeping nothing."""
        cold = run_turn(**self._turn_args(item, registry, now_ms))
        if isinstance(cold, TurnResult) and _decisions(cold) == _decisions(warm):
            return warm, state
        what = (
            f"turn on a kept state of {item.instance_id} (execution {item.execution_id}, "
            f"{item.history_length} events) decided {_decisions(warm)!r}; a cold replay "
            f"decided {_decisions(cold) if isinstance(cold, TurnResult) else cold!r}"
        )
        log.error("instance cache divergence: %s", what, extra=extra)
        self.divergences.append(what)
        if state is not None:
            state.close()
        return cold, None

    async def _commit(self, item: OrchestrationItem, r: TurnResult, *, keeps: bool) -> None:
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
        await self._ack(item.lock_token, _turn_commit(r, keeps))
        if r.status == STATUS_FAILED and r.error is not None:
            log.warning("orchestration failed: %s", r.error, extra=extra)

    async def _retry_or_poison(
        self, item: OrchestrationItem, reason: str, extra: dict[str, Any]
    ) -> None:
        async def retry(delay_ms: int) -> None:
            await self._retry_later(item, delay_ms)

        async def poison(why: str) -> None:
            await self._poison(item, why, extra)

        await retry_or_poison(
            self.options, item.attempt_count, reason, extra, retry=retry, poison=poison
        )

    async def _poison(self, item: OrchestrationItem, reason: str, extra: dict[str, Any]) -> None:
        """Fail the instance for good (`poison_turn` decides what its history gets)."""
        log.error("poisoned: %s", reason, extra=extra)
        self.observer.on_poison("orchestration", reason)
        turn = poison_turn(
            reason,
            instance_id=item.instance_id,
            running=item.status == InstanceStatus.RUNNING,
            execution_id=item.execution_id,
            history=item.history,
            history_length=item.history_length,
            messages=item.messages,
            name=item.orchestration_name,
            version=item.orchestration_version,
            pinned_engine_version=item.pinned_engine_version,
            engine_version=self.engine.version,
            now_ms=self.provider.clock_ms(),
        )
        if turn is None:  # nothing to fail: the messages are dropped
            await self._ack(item.lock_token, TurnCommit(execution_id=item.execution_id))
            return
        await self._ack(item.lock_token, _turn_commit(turn, False))


def _decisions(r: TurnResult) -> tuple[Any, ...]:
    """Everything a turn decides that leaves it (what a cold and a kept run must agree on)."""
    return (
        r.execution_id,
        r.new_events,
        r.status,
        r.output,
        r.error,
        r.custom_status,
        r.activities,
        r.timers,
        r.messages,
        r.cancelled_activities,
        r.traces,
        r.dropped,
        r.started_execution,
    )


def _turn_commit(r: TurnResult, keeps: bool) -> TurnCommit:
    """What a turn decided, as the store applies it in one transaction."""
    return TurnCommit(
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
        keeps_state=keeps,
    )
