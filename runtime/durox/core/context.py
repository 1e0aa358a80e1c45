"""The object an orchestration receives: every durable operation, and nothing else.

Each method is a thin request to the turn that owns this context; the turn decides whether the
operation is being replayed from history or is new. Nothing here reads a clock, a random source
or the network, so an orchestration that uses only this context is deterministic by design.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Never, TypeVar

from durox.core.events import JSON, ErrorDetails
from durox.core.replay import DurableFuture, _Turn
from durox.core.retry import RetryPolicy
from durox.errors import ActivityFailedError, ActivityTimeoutError

T = TypeVar("T")
_GUID_NAMESPACE = uuid.UUID("6f1c5a3e-3c1b-4c55-9d0e-2b8a9f6d7e10")


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _permanent(details: ErrorDetails) -> bool:
    """A failure no retry can mend: a poisoned activity, or a result over the payload limit."""
    return details.kind == "poison" or details.type == "PayloadTooLargeError"


class OrchestrationContext:
    """Durable operations for one execution of one orchestration instance."""

    __slots__ = ("_turn",)

    def __init__(self, turn: _Turn) -> None:
        self._turn = turn

    # ---- identity ------------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._turn.instance_id

    @property
    def execution_id(self) -> int:
        return self._turn.execution_id

    @property
    def orchestration_name(self) -> str:
        return self._turn.started.name

    @property
    def orchestration_version(self) -> str:
        return self._turn.started.version

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs a path an earlier turn already took."""
        return self._turn.replaying

    # ---- activities ----------------------------------------------------------------------

    def schedule_activity(self, name: str, input: JSON = None) -> DurableFuture[Any]:
        return self._turn.new_activity(name, input, None)

    def schedule_activity_on_session(
        self, name: str, input: JSON, session_id: str
    ) -> DurableFuture[Any]:
        """Run the activity on the worker that owns `session_id` (sticky)."""
        return self._turn.new_activity(name, input, session_id)

    def schedule_activity_with_retry(
        self, name: str, input: JSON, retry: RetryPolicy
    ) -> Coroutine[Any, Any, JSON]:
        return self._with_retry(name, input, retry, None)

    def schedule_activity_with_retry_on_session(
        self, name: str, input: JSON, retry: RetryPolicy, session_id: str
    ) -> Coroutine[Any, Any, JSON]:
        return self._with_retry(name, input, retry, session_id)

    async def _with_retry(
        self, name: str, input: JSON, retry: RetryPolicy, session_id: str | None
    ) -> JSON:
        attempt = 1
        turn = self._turn
        while True:
            act = turn.new_activity(name, input, session_id)
            try:
                if retry.timeout is None:
                    return await act
                index, value = await turn.select([act, turn.new_timer(_ms(retry.timeout))])
                if index == 1:
                    raise ActivityTimeoutError(
                        ErrorDetails(
                            "timeout",
                            "ActivityTimeoutError",
                            f"activity {name!r} attempt {attempt} ran past {retry.timeout}",
                        )
                    )
                return value
            except ActivityFailedError as exc:
                if attempt >= retry.max_attempts or _permanent(exc.details):
                    raise
                delay = retry.backoff.delay(attempt)
                if delay > timedelta(0):
                    await turn.new_timer(_ms(delay))
                attempt += 1

    # ---- timers, events, orchestrations ------------------------------------------------------

    def schedule_timer(self, delay: timedelta) -> DurableFuture[None]:
        return self._turn.new_timer(_ms(delay))

    def wait_for_event(self, name: str) -> DurableFuture[Any]:
        """The next external event raised to this instance under `name` (buffered if early)."""
        return self._turn.new_subscription(name)

    def schedule_sub_orchestration(
        self,
        name: str,
        input: JSON = None,
        *,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> DurableFuture[Any]:
        return self._turn.new_sub_orchestration(name, input, instance_id, version)

    def start_orchestration(
        self, name: str, instance_id: str, input: JSON = None, *, version: str | None = None
    ) -> None:
        """Start an independent orchestration; this one does not wait for it."""
        self._turn.new_detached(name, instance_id, input, version)

    def continue_as_new(self, input: JSON = None) -> DurableFuture[Never]:
        """End this execution and start the next one with `input`, on the policy's version."""
        return self._turn.continue_as_new(input, None)

    def continue_as_new_versioned(self, version: str, input: JSON = None) -> DurableFuture[Never]:
        """As `continue_as_new`, but the next execution runs exactly `version`."""
        from durox.core.versions import parse_version

        return self._turn.continue_as_new(input, str(parse_version(version)))

    # ---- composition -------------------------------------------------------------------

    def join(self, items: list[Any]) -> DurableFuture[Any]:
        """Wait for every item (futures or coroutines); results in item order.

        The first failure raises at once; the other items keep running.
        """
        return self._turn.join(items)

    def select(self, *items: Any) -> DurableFuture[Any]:
        """Wait for the first item to finish: `(index, result)`. Losers are cancelled."""
        return self._turn.select(items)

    # ---- deterministic helpers ---------------------------------------------------------

    def new_guid(self) -> str:
        turn = self._turn
        turn.guid_counter += 1
        key = f"{turn.instance_id}/{turn.execution_id}/{turn.guid_counter}"
        return str(uuid.uuid5(_GUID_NAMESPACE, key))

    def utc_now(self) -> datetime:
        """The time of the history event being processed: the same on every replay."""
        return datetime.fromtimestamp(self._turn.clock / 1000, tz=UTC)

    def set_custom_status(self, value: JSON) -> None:
        """Publish `value` on the instance record (`PayloadError` if JSON cannot hold it or it
        is over the payload limit)."""
        self._turn.set_custom_status(value)

    # ---- traces (silent while replaying) -----------------------------------------------

    def _trace(self, level: str, message: str) -> None:
        if not self._turn.replaying:
            self._turn.traces.append((level, message))

    def trace_debug(self, message: str) -> None:
        self._trace("debug", message)

    def trace_info(self, message: str) -> None:
        self._trace("info", message)

    def trace_warn(self, message: str) -> None:
        self._trace("warning", message)

    def trace_error(self, message: str) -> None:
        self._trace("error", message)
