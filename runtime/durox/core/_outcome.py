"""What a turn returns, and the execution statuses (part of `durox.core.replay`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from durox.core import events as ev
from durox.status import InstanceStatus

JSON = ev.JSON
Handler: TypeAlias = Callable[[Any, JSON], Awaitable[JSON]]
"""An orchestration as the engine sees it: (context, JSON input) -> JSON output."""


class Resolver(Protocol):
    """(name, requested version or None, the instance starting) -> (chosen version, handler),
    or None if not here. The instance id lets a policy's ramp pick the same side for it every
    time (`durox.core.versions.choose_version`)."""

    def __call__(
        self, name: str, requested: str | None, /, instance_id: str = ""
    ) -> tuple[str, Handler] | None: ...


STATUS_RUNNING = InstanceStatus.RUNNING
STATUS_COMPLETED = InstanceStatus.COMPLETED
STATUS_FAILED = InstanceStatus.FAILED
STATUS_CANCELLED = InstanceStatus.CANCELLED
STATUS_CONTINUED = InstanceStatus.CONTINUED_AS_NEW


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where code and history first parted, each side named (what a nondeterminism error says,
    in parts a tool can show): `event_id` is the history event at stake, None when the
    history has nothing there."""

    event_id: int | None
    code: str
    """What the code did there, e.g. "scheduled activity 'B'"."""
    history: str
    """What the history holds there, e.g. "activity 'A'"."""


@dataclass(slots=True)
class Unresolved:
    """No handler here for this orchestration and version: the caller backs off and retries."""

    name: str
    version: str | None


@dataclass(slots=True)
class TurnResult:
    """What one turn decided: new events, outgoing work, the status, and what to log."""

    instance_id: str
    execution_id: int
    name: str
    version: str
    engine_version: str | None
    """The engine version the execution is pinned to; None only for a poisoned execution
    written before pinning existed (`durox.core.poison`)."""
    parent: ev.ParentRef | None
    new_events: list[ev.Event]
    status: InstanceStatus
    output: JSON = None
    error: ev.ErrorDetails | None = None
    custom_status: JSON = None
    activities: list[ev.ActivityWork] = field(default_factory=list)
    timers: list[ev.TimerDue] = field(default_factory=list)
    messages: list[ev.Message] = field(default_factory=list)
    cancelled_activities: list[int] = field(default_factory=list)
    traces: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    started_execution: bool = False
    mismatch: Mismatch | None = None
    """Set when the turn failed with nondeterminism: the first point of divergence."""


@dataclass(slots=True)
class Dropped:
    """The messages had no execution to go to (unknown, finished or duplicate); all dropped."""

    reasons: list[str]
