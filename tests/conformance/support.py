"""Small builders for conformance scenarios: a fake clock, messages, and turn commits."""

from __future__ import annotations

from dataclasses import dataclass, field

from durox.core import events as ev
from durox.providers import InstanceUpdate, OrchestrationItem, Provider, TurnCommit

T0 = 1_800_000_000_000
LOCK = 30_000
ENGINE = "0.1.0"


@dataclass
class FakeClock:
    """Milliseconds since the epoch, moved only by the test."""

    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@dataclass
class Store:
    provider: Provider
    clock: FakeClock
    kind: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def p(self) -> Provider:
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
        status: str = "Running",
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


def started(ts: int = T0, name: str = "O", engine: str = ENGINE) -> ev.OrchestrationStarted:
    return ev.OrchestrationStarted(1, ts, name, "1.0.0", None, engine)


def first_turn(
    instance_id: str,
    *,
    name: str = "O",
    status: str = "Running",
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
    if status == "Completed":
        events.append(ev.OrchestrationCompleted(len(events) + 1, ts, "done"))
    return TurnCommit(
        execution_id=execution_id,
        new_events=events,
        instance=InstanceUpdate(
            name=name,
            version="1.0.0",
            status=status,
            output="done" if status == "Completed" else None,
            parent_instance_id=parent,
            engine_version=engine,
            started_execution=True,
        ),
        activities=work,
    )


def next_turn(
    item: OrchestrationItem,
    *events: ev.Event,
    status: str = "Running",
    output: ev.JSON = None,
    **more: object,
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
        **more,  # type: ignore[arg-type]
    )


def result(instance_id: str, event_id: int, value: ev.JSON = None) -> ev.ActivityResult:
    return ev.ActivityResult(instance_id, 1, event_id, value)


async def raw_sql(provider: Provider, sql: str) -> None:
    """Run one parameterless statement behind the provider's back (to corrupt a row, say).
    The statement must be valid in both SQLite and PostgreSQL."""
    from durox.providers import SqliteProvider

    if isinstance(provider, SqliteProvider):
        await provider._run(lambda c: c.execute(sql))
        return
    async with provider._pool.acquire() as conn:  # type: ignore[attr-defined]
        await conn.execute(sql)


async def raw_value(provider: Provider, sql: str) -> object:
    """The first column of the first row of one parameterless query, behind the provider's
    back. The query must be valid in both SQLite and PostgreSQL."""
    from durox.providers import SqliteProvider

    if isinstance(provider, SqliteProvider):
        row = await provider._run(lambda c: c.execute(sql).fetchone())
        return None if row is None else row[0]
    async with provider._pool.acquire() as conn:  # type: ignore[attr-defined]
        return await conn.fetchval(sql)
