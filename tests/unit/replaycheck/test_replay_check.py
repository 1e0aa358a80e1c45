"""`durox.replay_check` on a store holding real executions of the shop app (an in-memory SQLite
store; tests/integration runs the command on SQLite files and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

import durox
from durox.providers import SqliteProvider
from durox.replaycheck import REPORT_FORMAT, ReplayCheckReport, replay_check
from tests.unit.replaycheck import apps
from tests.unit.replaycheck.workload import populate

ORDER, REFUND = apps.ORDER, apps.REFUND


@pytest.fixture
async def store() -> AsyncIterator[SqliteProvider]:
    s = await SqliteProvider.in_memory()
    try:
        await populate(s)
        yield s
    finally:
        await s.close()


async def snapshot(store: SqliteProvider) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""

    def read(c: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(c.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}

    rows: dict[str, list[tuple[Any, ...]]] = await store._run(read)
    return rows


def by_version(report: ReplayCheckReport) -> dict[str, Any]:
    return {f"{v.name}@{v.version}": v for v in report.versions}


async def test_an_unchanged_app_passes_every_version(store: SqliteProvider) -> None:
    report = await durox.replay_check(store, apps.unchanged)
    assert report.ok and report.exit_code == 0 and report.divergences == []
    v = by_version(report)
    assert list(v) == [f"{ORDER}@1.0.0", f"{ORDER}@1.1.0", f"{REFUND}@1.0.0"]
    assert (v[f"{ORDER}@1.0.0"].running, v[f"{ORDER}@1.0.0"].ended) == (2, 1)
    assert v[f"{ORDER}@1.0.0"].checked == 3 and v[f"{ORDER}@1.1.0"].checked == 1
    assert v[f"{REFUND}@1.0.0"].checked == 1  # completed recently: replayed to its end
    assert report.histories_checked == 5 and report.not_checked == 0


async def test_swapped_activities_fail_the_version_that_changed(store: SqliteProvider) -> None:
    report = await replay_check(store, apps.changed_order)
    assert report.exit_code == 1 and not report.ok
    v = by_version(report)
    diverged = v[f"{ORDER}@1.0.0"]
    assert diverged.checked == 3 and len(diverged.divergences) == 3
    assert {d.instance_id for d in diverged.divergences} == {
        "order-waiting-a",
        "order-waiting-b",
        "order-shipped",
    }
    first = diverged.divergences[0]
    assert (first.kind, first.event_id, first.code, first.history) == (
        "nondeterminism",
        2,
        "scheduled activity 'Charge'",
        "activity 'Reserve'",
    )
    assert v[f"{ORDER}@1.1.0"].ok and v[f"{REFUND}@1.0.0"].ok


async def test_an_added_timer_is_caught(store: SqliteProvider) -> None:
    report = await replay_check(store, apps.added_timer)
    found = by_version(report)[f"{ORDER}@1.0.0"].divergences
    assert report.exit_code == 1 and len(found) == 3
    assert {(d.event_id, d.code, d.history) for d in found} == {
        (4, "scheduled a timer", "activity 'Charge'")
    }


async def test_a_version_removed_while_executions_run_on_it_is_a_divergence(
    store: SqliteProvider,
) -> None:
    report = await replay_check(store, apps.removed_version)
    assert report.exit_code == 1
    removed = by_version(report)[f"{ORDER}@1.0.0"]
    assert not removed.registered and removed.checked == 0
    assert removed.not_checked == {"no_code": 2}
    (d,) = removed.divergences
    assert d.kind == "removed_version" and d.instance_id in {"order-waiting-a", "order-waiting-b"}
    assert (d.code, d.history) == ("registers 1.1.0, not 1.0.0", "2 running execution(s) at 1.0.0")
    assert "order-waiting-a" in d.message and "order-waiting-b" in d.message


async def test_a_name_the_app_does_not_know_is_a_removal_unless_the_store_is_shared(
    store: SqliteProvider,
) -> None:
    only_refund = durox.OrchestrationRegistry.builder().register(REFUND, apps.refund).build()
    strict = await replay_check(store, only_refund)
    assert strict.exit_code == 1
    assert {d.kind for d in strict.divergences} == {"removed_version"}
    shared = await replay_check(store, only_refund, shared_store=True)
    assert shared.exit_code == 0
    left = by_version(shared)[f"{ORDER}@1.0.0"]
    assert left.not_checked == {"other_app": 2} and not left.registered


async def test_the_sample_is_bounded_and_the_rest_reported(store: SqliteProvider) -> None:
    report = await replay_check(store, apps.changed_order, max_histories=1, ended_within=None)
    v = by_version(report)[f"{ORDER}@1.0.0"]
    assert (v.running, v.ended, v.checked) == (2, 0, 1)
    assert v.not_checked == {"max_histories": 1}
    assert report.not_checked == 1


async def test_a_deadline_ends_the_check_early_and_says_what_was_left(
    store: SqliteProvider,
) -> None:
    ticks = iter(range(1000))

    def clock() -> float:  # each look at the clock is one second later
        return float(next(ticks))

    report = await replay_check(store, apps.unchanged, timeout=timedelta(seconds=4), clock=clock)
    assert report.timed_out and report.exit_code == 2 and not report.ok
    total = sum(v.running + v.ended for v in report.versions)
    assert report.histories_checked < total
    assert report.histories_checked + report.not_checked == total
    assert any("timeout" in v.not_checked for v in report.versions)


async def test_the_check_writes_nothing(store: SqliteProvider) -> None:
    before = await snapshot(store)
    assert before["history"] and before["instances"]
    for app in (apps.unchanged, apps.changed_order, apps.added_timer, apps.removed_version):
        await replay_check(store, app)
    assert await snapshot(store) == before


async def test_the_json_document_has_its_documented_fields(store: SqliteProvider) -> None:
    doc = (await replay_check(store, apps.changed_order)).to_json(store="sqlite:///x.db")
    assert list(doc) == [
        "format",
        "ok",
        "exit_code",
        "store",
        "engine_version",
        "limits",
        "timed_out",
        "elapsed_seconds",
        "totals",
        "versions",
    ]
    assert doc["format"] == REPORT_FORMAT == "durox.replay-check/v1"
    assert (doc["ok"], doc["exit_code"], doc["store"]) == (False, 1, "sqlite:///x.db")
    assert list(doc["limits"]) == ["max_histories", "timeout_seconds", "ended_within_seconds"]
    assert doc["totals"] == {
        "versions": 3,
        "histories_checked": 5,
        "divergences": 3,
        "not_checked": 0,
    }
    version = doc["versions"][0]
    assert list(version) == [
        "name",
        "version",
        "registered",
        "running_executions",
        "ended_executions",
        "histories_checked",
        "not_checked",
        "divergences",
    ]
    assert list(version["divergences"][0]) == [
        "kind",
        "instance_id",
        "execution_id",
        "event_id",
        "code",
        "history",
        "message",
    ]


async def test_the_text_report_names_both_sides(store: SqliteProvider) -> None:
    text = (await replay_check(store, apps.changed_order)).to_text(store="sqlite:///x.db")
    assert f"{ORDER}@1.0.0: DIVERGED in 3 of 3 checked" in text
    assert (
        "nondeterminism: order-waiting-a execution 1, event 2: code scheduled activity "
        "'Charge'; history has activity 'Reserve'"
    ) in text
    assert text.splitlines()[-1].startswith("DIVERGED: 3 divergence(s)")


async def test_the_text_report_names_both_inputs_of_a_changed_input(
    store: SqliteProvider,
) -> None:
    text = (await replay_check(store, apps.changed_input)).to_text(store="sqlite:///x.db")
    assert f"{ORDER}@1.0.0: DIVERGED in 3 of 3 checked" in text
    assert (
        "nondeterminism: order-waiting-a execution 1, event 2: code scheduled activity "
        '\'Reserve\' with input {"item":"order-waiting-a","quantity":2}; history has activity '
        "'Reserve' with input \"order-waiting-a\""
    ) in text
    assert f"{REFUND}@1.0.0: ok, 1 checked" in text


async def test_max_histories_must_be_positive(store: SqliteProvider) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await replay_check(store, apps.unchanged, max_histories=0)
