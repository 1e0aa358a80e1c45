"""The client: start, signal, cancel and observe orchestrations through a store.

A client never runs user code and needs no registry; it writes messages and reads instance
records. The version of a new execution is chosen by the worker that starts it (its policy),
unless the caller asks for one explicitly.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from durox._version import __version__
from durox.core import events as ev
from durox.core.codec import DEFAULT_MAX_PAYLOAD_BYTES, check_max_payload_bytes, check_payload
from durox.core.versions import SemverRange, parse_version
from durox.errors import ConfigurationError, InstanceNotFoundError
from durox.providers._base import (
    DrainEntry,
    ExecutionInfo,
    InstanceInfo,
    QueueDepths,
    Store,
    StoreObservation,
    SystemMetrics,
    WorkerRecord,
)
from durox.providers._completions import POLL_FIRST_S, POLL_MAX_S
from durox.status import TERMINAL, InstanceStatus, status_filter


@dataclass(frozen=True, slots=True)
class OrchestrationStatus:
    """`status` is an `InstanceStatus` (Running, ContinuedAsNew between executions, Completed,
    Failed, Cancelled), or NotFound, or Pending (started, not yet picked up by a worker)."""

    instance_id: str
    status: str
    output: ev.JSON = None
    error: ev.ErrorDetails | None = None
    custom_status: ev.JSON = None
    orchestration_version: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def _check_id(instance_id: str) -> None:
    if not isinstance(instance_id, str) or not instance_id or len(instance_id) > 512:
        raise ConfigurationError(f"instance id must be a 1-512 character string: {instance_id!r}")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client works."""

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """The largest orchestration input or event data (UTF-8 JSON bytes) the client sends;
    larger ones raise `PayloadTooLargeError` and send nothing (docs/payloads.md). Keep it the
    same as the workers' `RuntimeOptions.max_payload_bytes`."""

    wait_fallback_poll: float | None = None
    """Seconds between status reads while `wait_for_orchestration` waits on a store that can
    wake it (None: the store's schedule, see there). The reads only find what a missed wake-up
    would have told; a store that cannot wake anyone is polled on its own schedule."""

    def __post_init__(self) -> None:
        check_max_payload_bytes(self.max_payload_bytes)
        if self.wait_fallback_poll is not None and not self.wait_fallback_poll > 0:
            raise ConfigurationError("wait_fallback_poll must be a positive number of seconds")


class Client:
    def __init__(self, provider: Store, options: ClientOptions | None = None) -> None:
        self.provider = provider
        self.options = options or ClientOptions()

    async def start_orchestration(self, instance_id: str, name: str, input: ev.JSON = None) -> None:
        """Start `name` at the version its policy picks on the worker that starts it."""
        await self._start(instance_id, name, None, input)

    async def start_orchestration_versioned(
        self, instance_id: str, name: str, version: str, input: ev.JSON = None
    ) -> None:
        """Start `name` at exactly `version`; a worker without it retries, then poisons."""
        await self._start(instance_id, name, str(parse_version(version)), input)

    async def _start(
        self, instance_id: str, name: str, version: str | None, input: ev.JSON
    ) -> None:
        _check_id(instance_id)
        if not name:
            raise ConfigurationError("orchestration name must not be empty")
        check_payload(input, self.options.max_payload_bytes, "the orchestration input")
        await self.provider.start_instance(ev.StartOrchestration(instance_id, name, version, input))

    async def raise_event(self, instance_id: str, name: str, data: ev.JSON = None) -> None:
        """Send event `name` with `data` to an instance; its `wait_for_event(name)` receives
        it, now or later (an event nobody waits for yet is kept). An instance started but not
        yet picked up by a worker receives it in its first turn.

        `InstanceNotFoundError` if there is no such instance and no start queued for it
        (nothing is sent then); `PayloadError` if JSON cannot hold `data`,
        `PayloadTooLargeError` if it is over `max_payload_bytes`. An instance that has
        already ended accepts the event and ignores it."""
        _check_id(instance_id)
        check_payload(data, self.options.max_payload_bytes, f"the data of event {name!r}")
        if not await self.provider.enqueue_event(ev.ExternalEvent(instance_id, name, data)):
            raise InstanceNotFoundError(
                f"no instance {instance_id!r} (nor a start queued for it) to raise {name!r} to"
            )

    async def cancel_instance(self, instance_id: str, reason: str = "cancelled by client") -> None:
        """Cancel an instance; its running sub-orchestrations are cancelled with it. An
        instance started but not yet picked up is cancelled in its first turn; one that has
        already ended ignores it. `InstanceNotFoundError` if there is no such instance and no
        start queued for it (nothing is sent then)."""
        _check_id(instance_id)
        if not await self.provider.enqueue_event(ev.CancelRequest(instance_id, reason)):
            raise InstanceNotFoundError(
                f"no instance {instance_id!r} (nor a start queued for it) to cancel"
            )

    async def get_orchestration_status(self, instance_id: str) -> OrchestrationStatus:
        info = await self.provider.get_instance(instance_id)
        if info is None:
            pending = await self.provider.start_pending(instance_id)
            return OrchestrationStatus(instance_id, "Pending" if pending else "NotFound")
        return OrchestrationStatus(
            instance_id,
            info.status,
            info.output,
            info.error,
            info.custom_status,
            info.orchestration_version,
        )

    async def wait_for_orchestration(
        self, instance_id: str, timeout: timedelta | float = 30.0
    ) -> OrchestrationStatus:
        """Wait until the instance is Completed, Failed or Cancelled (ContinuedAsNew is not an
        end: the wait goes on into the next execution); `TimeoutError` if it is not within
        `timeout`.

        A store that can (`ProviderAdmin.watch_completion`) wakes the wait when the instance
        ends: SQLite for endings committed through the same provider object, PostgreSQL for
        every ending (a NOTIFY). The status is still read now and then in case a wake-up is
        missed (an ending committed by another process on the same SQLite file; a dropped
        PostgreSQL listener): every 5 ms growing to 250 ms, or every 2 s on PostgreSQL while
        its listener listens (`ClientOptions.wait_fallback_poll` overrides it). A store that
        cannot wake anyone is polled on the 5-250 ms schedule."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        deadline = time.monotonic() + seconds
        watch = self.provider.watch_completion(instance_id)  # before the read: see its doc
        try:
            delay: float | None = None
            while True:
                status = await self.get_orchestration_status(instance_id)
                if status.is_terminal:
                    return status
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"instance {instance_id!r} is still {status.status} after {seconds:g}s"
                    )
                if watch is None:
                    first, longest = POLL_FIRST_S, POLL_MAX_S
                elif self.options.wait_fallback_poll is not None:
                    first = longest = self.options.wait_fallback_poll
                else:
                    first, longest = watch.poll_schedule()
                delay = first if delay is None else min(max(delay * 1.5, first), longest)
                if watch is None:
                    await asyncio.sleep(min(delay, left))
                elif await watch.wait(min(delay, left)):
                    delay = None  # woken: the next sleep starts the schedule again
        finally:
            if watch is not None:
                watch.close()

    async def get_instance_info(self, instance_id: str) -> InstanceInfo:
        info = await self.provider.get_instance(instance_id)
        if info is None:
            raise InstanceNotFoundError(f"no instance {instance_id!r}")
        return info

    async def list_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        version: str | None = None,
        pin: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[InstanceInfo]:
        """Instances matching every filter given, oldest first, after skipping `offset`.
        `status` is an `InstanceStatus` or its exact word (`ConfigurationError` if unknown);
        `pin` the pinned engine version; `created_after` is inclusive, `created_before` not."""
        if limit < 1 or offset < 0:
            raise ConfigurationError("limit must be at least 1 and offset at least 0")
        return await self.provider.list_instances(
            status=status_filter(status),
            name=name,
            version=version,
            pin=pin,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
        )

    async def list_executions(self, instance_id: str) -> list[ExecutionInfo]:
        return await self.provider.list_executions(instance_id)

    async def read_execution_history(self, instance_id: str, execution_id: int) -> list[ev.Event]:
        return await self.provider.read_history(instance_id, execution_id)

    async def list_workers(
        self, pool: str | None = None, *, stale_after: timedelta = timedelta(seconds=30)
    ) -> list[WorkerRecord]:
        """Live runtimes and what they can do; records without a recent heartbeat are dropped.

        For example, "does every live worker of pool P have session handler H?" is
        `all(w.has_session_handler(H) for w in await client.list_workers(P))`.
        """
        return await self.provider.list_workers(pool, int(stale_after.total_seconds() * 1000))

    async def observe_store(
        self,
        pool: str | None = None,
        *,
        failed_since: datetime | None = None,
        stale_after: timedelta = timedelta(seconds=30),
    ) -> StoreObservation:
        """The store as a rollout is decided from, in one consistent read: which versions and
        engine pins still have instances (and since when), what failed or was poisoned since
        `failed_since` (default: the last hour), and `pool`'s workers, live or stale.

        One call rather than several, so the counts, the failures and the workers agree with
        each other. It writes nothing: an operator may use a read-only database role.
        """
        since = failed_since or datetime.now(UTC) - timedelta(hours=1)
        return await self.provider.observe(
            pool=pool,
            failed_since=since,
            stale_after_ms=int(stale_after.total_seconds() * 1000),
        )

    async def get_drain_report(self, range: SemverRange | None = None) -> DrainReport:
        """Executions pinned to engine versions outside `range` (default: 0.0.0 up to this
        engine), per orchestration NAME and pinned version. A drain is complete when the
        report shows nothing running and nothing queued outside the range."""
        wanted = range or SemverRange("0.0.0", __version__)
        return DrainReport(wanted, await self.provider.drain_report(wanted))

    # ---- management ------------------------------------------------------------------------

    async def delete_instance(self, instance_id: str, *, force: bool = False) -> int:
        """Delete an instance, its history and its sub-orchestrations; returns how many
        instances went. `InstanceRunningError` if any is still running, unless `force`;
        `InstanceNotFoundError` if there is no such instance."""
        _check_id(instance_id)
        deleted = await self.provider.delete_instance(instance_id, force)
        if deleted == 0:
            raise InstanceNotFoundError(f"no instance {instance_id!r}")
        return deleted

    async def delete_instances(
        self,
        *,
        status: InstanceStatus | str | None = None,
        name: str | None = None,
        completed_before: datetime | None = None,
    ) -> int:
        """Delete finished instances matching every filter given; returns how many went."""
        return await self.provider.delete_instances(
            status=status_filter(status), name=name, completed_before=completed_before
        )

    async def prune_executions(self, instance_id: str, *, keep_last: int = 1) -> int:
        """Drop all but the newest `keep_last` executions of a long-lived (continue_as_new)
        instance; the current one always stays. Returns how many were dropped."""
        if keep_last < 1:
            raise ConfigurationError("keep_last must be at least 1")
        return await self.provider.prune_executions(instance_id, keep_last)

    async def get_queue_depths(self) -> QueueDepths:
        return await self.provider.queue_depths()

    async def get_system_metrics(self) -> SystemMetrics:
        return await self.provider.system_metrics()


@dataclass(frozen=True, slots=True)
class DrainReport:
    range: SemverRange
    entries: list[DrainEntry]

    @property
    def complete(self) -> bool:
        """Nothing outside the range is still running or waiting in the queue."""
        return all(e.running_instances == 0 and e.queued_messages == 0 for e in self.entries)

    @property
    def poisoned(self) -> int:
        return sum(e.poisoned_instances for e in self.entries)
