"""What the conformance scenarios are written with: a fake clock, a harness around the store
under test, and builders for messages and turn commits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from durox.core import events as ev
from durox.providers import InstanceUpdate, OrchestrationItem, Store, TurnCommit, WorkItem
from durox.status import InstanceStatus

T0 = 1_800_000_000_000
LOCK = 30_000
ENGINE = "0.1.0"

S = InstanceStatus


@dataclass
class FakeClock:
    """Milliseconds since the epoch, moved only by the test."""

    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


StoreFactory = Callable[[FakeClock | None], Awaitable[Store]]
"""Opens the store under test on a clock (None: the wall clock). A second call opens a second
worker's view of the same store (or hands back the first, where the store cannot be shared)."""


@dataclass
class Harness:
    """The store under test on a `FakeClock`, with shortcuts for the common steps."""

    provider: Store
    clock: FakeClock

    @property
    def p(self) -> Store:
        return self.provider

    async def fetch(self, lock_ms: int = LOCK) -> OrchestrationItem | None:
        return await self.provider.fetch_orchestration_item(lock_ms)

    async def must_fetch(self, lock_ms: int = LOCK) -> OrchestrationItem:
        item = await self.provider.fetch_orchestration_item(lock_ms)
        assert item is not None, "expected an orchestration item"
        return item

    async def start(self, instance_id: str, name: str = "O", input: ev.JSON = None) -> None:
        await self.provider.start_instance(ev.StartOrchestration(instance_id, name, None, input))

    async def event(self, instance_id: str, name: str = "e", data: ev.JSON = None) -> None:
        await self.provider.enqueue_orchestrator_message(ev.ExternalEvent(instance_id, name, data))

    async def begin(
        self,
        instance_id: str,
        *,
        name: str = "O",
        status: InstanceStatus = S.RUNNING,
        activities: int = 0,
        parent: str | None = None,
        engine: str = ENGINE,
    ) -> OrchestrationItem:
        """Start an instance and acknowledge its first turn; returns the item that was acked."""
        await self.start(instance_id, name)
        item = await self.must_fetch()
        assert item.instance_id == instance_id
        await self.provider.ack_orchestration_item(
            item.lock_token,
            first_turn(
                instance_id,
                name=name,
                status=status,
                activities=activities,
                parent=parent,
                engine=engine,
                ts=self.clock.now,
            ),
        )
        return item

    async def continue_as_new(self, instance_id: str, execution_id: int) -> None:
        """Acknowledge a turn that ends `execution_id` and queues the next execution's start,
        then start that execution (with one activity scheduled)."""
        await self.event(instance_id, "next")
        item = await self.must_fetch()
        assert item.execution_id == execution_id
        commit = next_turn(
            item,
            ev.OrchestrationContinuedAsNew(item.history_length + 1, 0, execution_id + 1, None),
            status=S.CONTINUED_AS_NEW,
            messages=[
                ev.StartOrchestration(instance_id, "O", "1.0.0", execution_id + 1, execution_id + 1)
            ],
        )
        await self.provider.ack_orchestration_item(item.lock_token, commit)
        start = await self.must_fetch()
        assert start.status == S.CONTINUED_AS_NEW and start.history == []
        await self.provider.ack_orchestration_item(
            start.lock_token, first_turn(instance_id, execution_id=execution_id + 1, activities=1)
        )

    async def work(self, n: int = 1, session: str | None = None) -> None:
        """Start instance "i1" with `n` activities queued (in `session`, if given)."""
        await self.start("i1")
        item = await self.must_fetch()
        commit = first_turn("i1", activities=n)
        commit.activities = [
            ev.ActivityWork(w.instance_id, w.execution_id, w.event_id, w.name, w.input, session)
            for w in commit.activities
        ]
        await self.provider.ack_orchestration_item(item.lock_token, commit)

    async def take(
        self,
        lock_ms: int = 1000,
        *,
        worker_id: str = "",
        session_lock_ms: int = 30_000,
        max_sessions: int | None = None,
    ) -> WorkItem:
        wi = await self.provider.fetch_work_item(
            lock_ms,
            worker_id=worker_id,
            session_lock_ms=session_lock_ms,
            max_sessions=max_sessions,
        )
        assert wi is not None, "expected a work item"
        return wi


def started(ts: int = T0, name: str = "O", engine: str = ENGINE) -> ev.OrchestrationStarted:
    return ev.OrchestrationStarted(1, ts, name, "1.0.0", None, engine)


def first_turn(
    instance_id: str,
    *,
    name: str = "O",
    status: InstanceStatus = S.RUNNING,
    activities: int = 0,
    parent: str | None = None,
    engine: str = ENGINE,
    execution_id: int = 1,
    ts: int = T0,
) -> TurnCommit:
    events: list[ev.Event] = [started(ts, name, engine)]
    work = []
    for n in range(activities):
        events.append(ev.ActivityScheduled(2 + n, ts, "A", n))
        work.append(ev.ActivityWork(instance_id, execution_id, 2 + n, "A", n))
    if status == S.COMPLETED:
        events.append(ev.OrchestrationCompleted(len(events) + 1, ts, "done"))
    return TurnCommit(
        execution_id=execution_id,
        new_events=events,
        instance=InstanceUpdate(
            name=name,
            version="1.0.0",
            status=status,
            output="done" if status == S.COMPLETED else None,
            parent_instance_id=parent,
            engine_version=engine,
            started_execution=True,
        ),
        activities=work,
    )


def next_turn(
    item: OrchestrationItem,
    *events: ev.Event,
    status: InstanceStatus = S.RUNNING,
    output: ev.JSON = None,
    messages: list[ev.Message] | None = None,
    timers: list[ev.TimerDue] | None = None,
    activities: list[ev.ActivityWork] | None = None,
    cancelled_activities: list[int] | None = None,
) -> TurnCommit:
    """A later turn of the same execution, appending `events` after the stored history."""
    return TurnCommit(
        execution_id=item.execution_id,
        new_events=list(events),
        instance=InstanceUpdate(
            name=item.orchestration_name or "O",
            version=item.orchestration_version or "1.0.0",
            status=status,
            output=output,
            engine_version=item.pinned_engine_version,
        ),
        activities=activities or [],
        timers=timers or [],
        messages=messages or [],
        cancelled_activities=cancelled_activities or [],
    )


def result(instance_id: str, event_id: int, value: ev.JSON = None) -> ev.ActivityResult:
    return ev.ActivityResult(instance_id, 1, event_id, value)
