"""Store-side checks the fault tests share: what completed, and that nothing ran twice."""

from __future__ import annotations

from pathlib import Path

from durox.core import events as ev
from durox.providers import PostgresProvider


async def completed(provider: PostgresProvider, prefix: str = "") -> int:
    infos = await provider.list_instances(limit=100_000)
    return sum(1 for i in infos if i.status == "Completed" and i.instance_id.startswith(prefix))


async def duplicated_completions(provider: PostgresProvider, ids: list[str]) -> int:
    """Activity results recorded more than once for one scheduled activity (must be 0), and
    executions that completed more than once."""
    dup = 0
    for iid in ids:
        history = await provider.read_history(iid, 1)
        done = [e.source_event_id for e in history if isinstance(e, ev.ActivityCompleted)]
        dup += len(done) - len(set(done))
        dup += max(0, sum(isinstance(e, ev.OrchestrationCompleted) for e in history) - 1)
    return dup


def marks(logs: Path, what: str, worker: str = "") -> list[str]:
    """Marker files the `Nap` activity left: `started.<instance>.<worker>.<attempt>`."""
    return [
        p.name
        for p in (logs / "marks").glob(f"{what}.*")
        if not worker or p.name.split(".")[2] == worker
    ]
