"""The replay check against a store: which versions have executions, a bounded sample of their
histories, each replayed with the pure engine (`replay_execution`).

Only `ProviderAdmin` reads are used, so nothing is written and nothing is locked: workers may
go on running meanwhile. Time and memory are bounded: at most `max_histories` executions per
version, one history in memory at a time, and every store read under the overall deadline;
a history already being replayed finishes (a replay is pure code, it cannot be interrupted).
What was not replayed is counted, with the reason, never left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from durox.core.compat import CURRENT_ENGINE, EngineIdentity
from durox.core.versions import parse_version
from durox.errors import DuroxError
from durox.providers._base import ExecutionRef, ProviderAdmin, VersionExecutions
from durox.registry import OrchestrationRegistry
from durox.replaycheck._replay import Divergence, Skipped, replay_execution
from durox.replaycheck._report import ReplayCheckReport, VersionReport

T = TypeVar("T")

DEFAULT_MAX_HISTORIES = 50
DEFAULT_TIMEOUT = timedelta(minutes=5)
DEFAULT_ENDED_WITHIN = timedelta(hours=24)


class ReplayCheckError(DuroxError):
    """The check could not run: the store failed, or the deadline came before it listed what
    to check. Carries the store's error as its cause."""


class HasOrchestrations(Protocol):
    """An app (`durox.worker.App`, or anything with a built `orchestrations` registry)."""

    @property
    def orchestrations(self) -> OrchestrationRegistry: ...


async def replay_check(
    store: ProviderAdmin,
    app: OrchestrationRegistry | HasOrchestrations,
    *,
    max_histories: int = DEFAULT_MAX_HISTORIES,
    timeout: timedelta = DEFAULT_TIMEOUT,
    ended_within: timedelta | None = DEFAULT_ENDED_WITHIN,
    shared_store: bool = False,
    engine: EngineIdentity = CURRENT_ENGINE,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
) -> ReplayCheckReport:
    """Replay a sample of the store's histories against `app`'s code, version by version.

    Every NAME@version the app registers or the store still runs is reported. Sampled per
    version: running executions first, then executions that ended well within
    `ended_within` (None: none), alternately the longest and the most recently active, at most
    `max_histories`. Running executions at a version the app does not register are a
    `removed_version` divergence; with `shared_store` (several apps use the store), those of a
    NAME the app does not register at all are reported as left to the other apps.

    Raises `ReplayCheckError` if the store fails, or if `timeout` runs out before the store
    has said which versions it runs; a deadline reached later ends the check early with
    `timed_out` set and the rest counted as not checked.
    """
    if max_histories < 1:
        raise ValueError("max_histories must be at least 1")
    registry = app if isinstance(app, OrchestrationRegistry) else app.orchestrations
    began = clock()
    deadline = began + timeout.total_seconds()
    since = None if ended_within is None else now() - ended_within

    async def within(read: Callable[[], Awaitable[T]]) -> T:
        """`read()` under what is left of the deadline (not started once it has passed)."""
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError
        return await asyncio.wait_for(read(), left)

    try:
        in_use = await within(lambda: store.execution_versions(ended_since=since))
    except TimeoutError:
        raise ReplayCheckError(
            f"the {timeout.total_seconds():g} s deadline came before the store listed its "
            "executions"
        ) from None
    except DuroxError as exc:
        raise ReplayCheckError(f"the store failed to list its executions: {exc}") from exc

    registered = {(n, str(v)) for n in registry.names() for v in registry.versions(n)}
    counts = {(v.orchestration_name, v.orchestration_version): v for v in in_use}
    keys = sorted(registered | set(counts), key=_order)
    reports: list[VersionReport] = []
    timed_out = False
    for name, version in keys:
        load = counts.get((name, version), VersionExecutions(name, version, 0, 0))
        total = load.running + load.ended
        if (name, version) not in registered:
            reports.append(
                await _unregistered(store, registry, load, shared_store, within, timed_out)
            )
            continue
        if timed_out:
            reports.append(_not_reached(load, max_histories, registered=True))
            continue
        try:
            size = min(total, max_histories)
            sample = await within(partial(_sample, store, name, version, size, since))
        except TimeoutError:
            timed_out = True
            reports.append(_not_reached(load, max_histories, registered=True))
            continue
        except DuroxError as exc:
            raise ReplayCheckError(f"the store failed to sample {name}@{version}: {exc}") from exc
        not_checked: Counter[str] = Counter(max_histories=total - len(sample))
        divergences: list[Divergence] = []
        checked = 0
        for n, ref in enumerate(sample):
            try:
                events = await within(
                    partial(store.read_history, ref.instance_id, ref.execution_id)
                )
            except TimeoutError:
                timed_out = True
                not_checked["timeout"] += len(sample) - n
                break
            except DuroxError as exc:  # one unreadable history does not end the check
                if exc.retryable:
                    raise ReplayCheckError(f"the store failed to read a history: {exc}") from exc
                not_checked["unreadable"] += 1
                continue
            verdict = replay_execution(
                events,
                resolve=registry.resolve,
                instance_id=ref.instance_id,
                execution_id=ref.execution_id,
                engine=engine,
            )
            del events
            if isinstance(verdict, Skipped):
                not_checked[verdict.reason] += 1
                continue
            checked += 1
            if verdict is not None:
                divergences.append(verdict)
        reports.append(
            VersionReport(
                name,
                version,
                True,
                load.running,
                load.ended,
                checked,
                tuple(divergences),
                _positive(not_checked),
            )
        )
    return ReplayCheckReport(
        engine_version=engine.version,
        versions=tuple(reports),
        max_histories=max_histories,
        timeout_seconds=timeout.total_seconds(),
        ended_within_seconds=None if ended_within is None else ended_within.total_seconds(),
        elapsed_seconds=clock() - began,
        timed_out=timed_out,
    )


async def _sample(
    store: ProviderAdmin, name: str, version: str, size: int, since: datetime | None
) -> list[ExecutionRef]:
    """Up to `size` executions, alternately the longest and the most recent not yet taken."""
    if size <= 0:
        return []
    longest = await store.sample_executions(
        name, version, order="longest", limit=size, ended_since=since
    )
    recent = await store.sample_executions(
        name, version, order="recent", limit=size, ended_since=since
    )
    taken: dict[tuple[str, int], ExecutionRef] = {}
    for ref in _alternate(longest, recent):
        taken.setdefault((ref.instance_id, ref.execution_id), ref)
        if len(taken) == size:
            break
    return list(taken.values())


def _alternate(a: list[ExecutionRef], b: list[ExecutionRef]) -> Iterable[ExecutionRef]:
    for i in range(max(len(a), len(b))):
        if i < len(a):
            yield a[i]
        if i < len(b):
            yield b[i]


async def _unregistered(
    store: ProviderAdmin,
    registry: OrchestrationRegistry,
    load: VersionExecutions,
    shared_store: bool,
    within: Callable[[Callable[[], Awaitable[list[ExecutionRef]]]], Awaitable[list[ExecutionRef]]],
    timed_out: bool,
) -> VersionReport:
    """A version the app has no code for: a divergence if executions still run on it (known
    from the counts alone; a few instance ids are read to name them, time allowing)."""
    name, version = load.orchestration_name, load.orchestration_version
    known = [str(v) for v in registry.versions(name)]
    if shared_store and not known:
        return VersionReport(
            name, version, False, load.running, load.ended, 0, (), {"other_app": load.running}
        )
    if load.running == 0:  # retired properly: only ended executions are left
        return VersionReport(name, version, False, 0, load.ended, 0, ())
    refs: list[ExecutionRef] = []
    if not timed_out:
        with contextlib.suppress(TimeoutError, DuroxError):
            refs = await within(
                lambda: store.sample_executions(
                    name, version, order="recent", limit=5, ended_since=None
                )
            )
    ids = ", ".join(r.instance_id for r in refs) or "ids not read"
    first = refs[0] if refs else None
    registers = f"registers {', '.join(known)}" if known else f"registers no {name}"
    divergence = Divergence(
        "removed_version",
        name,
        version,
        first.instance_id if first else "",
        first.execution_id if first else 0,
        None,
        f"{registers}, not {version}",
        f"{load.running} running execution(s) at {version}",
        f"{load.running} execution(s) of {name} still run at {version}, which the app no longer "
        f"registers (e.g. {ids}); keep {version} registered until none runs",
    )
    return VersionReport(
        name, version, False, load.running, load.ended, 0, (divergence,), {"no_code": load.running}
    )


def _not_reached(load: VersionExecutions, max_histories: int, *, registered: bool) -> VersionReport:
    total = load.running + load.ended
    reached = min(total, max_histories)
    return VersionReport(
        load.orchestration_name,
        load.orchestration_version,
        registered,
        load.running,
        load.ended,
        0,
        (),
        _positive(Counter(timeout=reached, max_histories=total - reached)),
    )


def _positive(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counts.items()) if v > 0}


def _order(key: tuple[str, str]) -> tuple[str, tuple[int, ...], str]:
    """By NAME, then by version as semver numbers (text after, when it is not one)."""
    name, version = key
    try:
        v = parse_version(version)
    except DuroxError:
        return name, (1,), version
    return name, (0, v.major, v.minor, v.patch), version
