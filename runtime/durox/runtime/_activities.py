"""Activity work: run the handler, keep its lease renewed, acknowledge its result.

A handler that raises is a failed activity (its result carries the error); work no handler here
can take is handed back with a growing delay and poisoned after `max_attempts`, like an
orchestration's. At shutdown a running handler that is cancelled hands its item back without
counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from durox.core import events as ev
from durox.core.codec import check_payload
from durox.errors import DuroxError, LockLostError, PayloadError
from durox.providers._base import Provider, WorkItem
from durox.registry import ActivityContext, ActivityRegistry
from durox.runtime._options import RuntimeObserver, RuntimeOptions
from durox.runtime._policy import kind_of, log, ms, retry_or_poison
from durox.runtime._work import StoreWork


class ActivityRunner(StoreWork[WorkItem, ev.ActivityResult]):
    """Runs fetched activity work items (the `Work` of activity dispatch)."""

    def __init__(
        self,
        provider: Provider,
        options: RuntimeOptions,
        activities: ActivityRegistry,
        observer: RuntimeObserver,
        worker_id: str,
        *,
        batch: bool,
        stopping: Callable[[], bool],
    ) -> None:
        super().__init__(
            "activity",
            provider,
            options,
            observer,
            worker_id,
            batch=batch,
            ack_one=provider.ack_work_item,
            ack_many=provider.ack_work_items,
            abandon=provider.abandon_work_item,
        )
        self.activities = activities
        self._stopping = stopping
        self._lock_ms = ms(options.activity_lock_timeout)
        self._session_ms = ms(options.session_lock_timeout)

    async def fetch(self, count: int) -> Sequence[WorkItem]:
        return await self.provider.fetch_work_items(
            self._lock_ms,
            count,
            worker_id=self.worker_id,
            session_lock_ms=self._session_ms,
            max_sessions=self.options.max_sessions_per_runtime,
        )

    async def run(self, wi: WorkItem) -> None:
        w = wi.work
        extra = {
            "instance_id": w.instance_id,
            "execution_id": w.execution_id,
            "activity": w.name,
            "worker_id": self.worker_id,
        }
        max_attempts = self.options.max_attempts
        if wi.attempt_count > max_attempts:
            await self._finish(
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

            async def retry(delay_ms: int) -> None:
                await self._retry_later(wi, delay_ms)

            async def poison(reason: str) -> None:
                error = ev.ErrorDetails("poison", "PoisonMessage", reason)
                await self._finish(wi, error=error, extra=extra)

            reason = f"no activity {w.name!r} is registered on this worker"
            await retry_or_poison(
                self.options, wi.attempt_count, reason, extra, retry=retry, poison=poison
            )
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
        renew = asyncio.create_task(self._renew(wi, run))
        try:
            try:
                value = await asyncio.shield(run)
            finally:
                renew.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renew
        except asyncio.CancelledError:
            if run.done() and not self._stopping():
                log.info("activity cancelled: its lease was lost", extra=extra)
                return
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
            with contextlib.suppress(DuroxError):
                await asyncio.shield(self.release(wi))
            raise
        except Exception as exc:  # the user's activity failed
            error = (
                ev.ErrorDetails("validation", type(exc).__name__, str(exc))
                if isinstance(exc, PayloadError)
                else ev.ErrorDetails("application", type(exc).__name__, str(exc))
            )
            await self._finish(wi, error=error, extra=extra, began=began)
            return
        try:
            check_payload(value, self.options.max_payload_bytes, f"the result of {w.name!r}")
        except PayloadError as exc:
            # Permanent: the same handler would return as much again (retries skip it too).
            log.warning("activity result refused: %s", exc, extra=extra)
            await self._finish(
                wi,
                error=ev.ErrorDetails("validation", type(exc).__name__, f"result: {exc}"),
                extra=extra,
                began=began,
            )
            return
        await self._finish(wi, value=value, extra=extra, began=began)

    async def _renew(self, wi: WorkItem, run: asyncio.Task[Any]) -> None:
        """Renew the lease while the handler runs; cancel the handler if the lease is lost."""
        timeout = self.options.activity_lock_timeout
        every = (self.options.lock_renewal_interval or timeout / 3).total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                await self.provider.renew_work_item_lock(wi.lock_token, ms(timeout))
            except LockLostError:
                run.cancel()
                return
            except DuroxError as exc:
                log.warning("activity lease renewal failed: %s", exc)

    async def _finish(
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
            await self._ack(wi.lock_token, result)
        except LockLostError:
            log.info("activity result dropped: lease lost or activity cancelled", extra=extra)
        except DuroxError as exc:
            log.warning(
                "activity ack failed (%s): %s; it will run again", kind_of(exc), exc, extra=extra
            )
            with contextlib.suppress(DuroxError):
                await self._retry_later(wi, 1000, exc.retryable)


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
