"""Durable futures and the hand-driven tasks that await them (part of `durox.core.replay`)."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, Protocol, TypeVar, cast

T_co = TypeVar("T_co", covariant=True)


class Scheduler(Protocol):
    """What a future needs of the turn that drives it: the queue of tasks ready to step."""

    @property
    def ready(self) -> deque[TurnTask]: ...


class DurableFuture(Generic[T_co]):
    """A durable operation's result, completed only by the history. Await it in orchestrations."""

    __slots__ = (
        "_callbacks",
        "_waiter",
        "cancelled",
        "children",
        "done",
        "error",
        "event_id",
        "kind",
        "value",
    )

    def __init__(self, kind: str, event_id: int = 0) -> None:
        self.kind = kind
        self.event_id = event_id
        self.done = False
        self.cancelled = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.children: list[DurableFuture[Any]] = []
        self._waiter: TurnTask | None = None
        self._callbacks: list[Callable[[DurableFuture[Any]], None]] = []

    def __await__(self) -> Generator[DurableFuture[Any], None, T_co]:
        if not self.done:
            yield self
        if self.error is not None:
            raise self.error
        return cast(T_co, self.value)

    def _resolve(
        self, turn: Scheduler, value: Any = None, error: BaseException | None = None
    ) -> None:
        if self.done:
            return
        self.done = True
        self.value = value
        self.error = error
        if self._waiter is not None:
            turn.ready.append(self._waiter)
            self._waiter = None
        for cb in self._callbacks:
            cb(self)
        self._callbacks.clear()


class TurnTask:
    __slots__ = ("coro", "done_future", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], done_future: DurableFuture[Any]) -> None:
        self.coro = coro
        self.done_future = done_future
        self.waiting: DurableFuture[Any] | None = None


class StopTurn(BaseException):
    """Unwinds the turn once the orchestration has reached a terminal decision."""


def close_task(task: TurnTask) -> None:
    """Close a coroutine we stop driving; a `finally:` that awaits cannot run here."""
    with contextlib.suppress(Exception):
        task.coro.close()
