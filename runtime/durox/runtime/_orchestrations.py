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

from durox.core.compat import EngineIdentity
from durox.core.context import OrchestrationContext
from durox.core.poison import poison_turn
from durox.core.replay import STATUS_FAILED, Dropped, TurnResult, Unresolved, run_turn
from durox.core.versions import SemverRange
from durox.errors import DuroxError, LockLostError
from durox.providers._base import InstanceUpdate, OrchestrationItem, Provider, TurnCommit
from durox.registry import OrchestrationRegistry
from durox.runtime._options import RuntimeObserver, RuntimeOptions
from durox.runtime._policy import backoff_ms, kind_of, log, ms, retry_or_poison
from durox.runtime._work import StoreWork
from durox.status import InstanceStatus

trace_log = logging.getLogger("durox.orchestration")


class TurnRunner(StoreWork[OrchestrationItem, TurnCommit]):
    """Runs fetched orchestration items, one turn each (the `Work` of orchestration dispatch).

    `registry` and `replay_range` are read at each fetch and turn, so `Runtime.reconfigure`
    changes them live: turns already running finish with what they started with.
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

    async def fetch(self, count: int) -> Sequence[OrchestrationItem]:
        return await self.provider.fetch_orchestration_items(
            self._lock_ms, self.replay_range, count
        )

    async def run(self, item: OrchestrationItem) -> None:
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
            if item.status == InstanceStatus.RUNNING:
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
                resolve=self.registry.resolve,
                now_ms=self.provider.clock_ms(),
                engine_version=self.engine.version,
                context_factory=OrchestrationContext,
                max_payload_bytes=self.options.max_payload_bytes,
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
                await self._ack(item.lock_token, TurnCommit(execution_id=item.execution_id))
                return
            await self._commit(item, result)
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
        await self._ack(item.lock_token, _turn_commit(r))
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
        await self._ack(item.lock_token, _turn_commit(turn))


def _turn_commit(r: TurnResult) -> TurnCommit:
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
    )
