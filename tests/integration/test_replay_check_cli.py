"""`durox replay-check` as a deploy pipeline runs it: a real process against a store that real
workers filled (a SQLite file, and PostgreSQL in a database of its own), judging the shop app's
candidate images. The store is compared row for row before and after: the check writes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from durox.worker import open_store
from tests.unit.replaycheck import apps
from tests.unit.replaycheck.workload import populate

ROOT = Path(__file__).resolve().parents[2]
DUROX = Path(sys.executable).with_name("durox")
APPS = "tests.unit.replaycheck.apps"
ORDER = apps.ORDER

Snapshot = dict[str, list[str]]


@dataclass
class FilledStore:
    url: str
    snapshot: Callable[[], Awaitable[Snapshot]]


def replay_check(*args: str, store: str | None, env: dict[str, str] | None = None) -> Any:
    """Run the command; (exit status, stdout, stderr lines)."""
    argv = [str(DUROX), "replay-check", *args]
    if store is not None:
        argv += ["--store", store]
    environment = {k: v for k, v in os.environ.items() if k != "DUROX_STORE_URL"}
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr.splitlines()


async def _sqlite_store(tmp_path: Path) -> AsyncGenerator[FilledStore]:
    path = tmp_path / "shop.db"
    url = f"sqlite:///{path}"

    async def snapshot() -> Snapshot:
        import sqlite3

        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            listed = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = [r[0] for r in listed]
            return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
        finally:
            conn.close()

    yield FilledStore(url, snapshot)


@asynccontextmanager
async def empty_database(dsn: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards (the command
    opens the default schema, `durox`, of the database its URL names)."""
    import asyncpg

    name = f"durox_rc_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _postgres_store(dsn: str) -> AsyncGenerator[FilledStore]:
    import asyncpg

    async def snapshot() -> Snapshot:
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'durox'"
            )
            out: Snapshot = {}
            for (table,) in tables:
                rows = await conn.fetch(f'SELECT * FROM durox."{table}"')
                out[table] = sorted(repr(tuple(r)) for r in rows)
            return out
        finally:
            await conn.close()

    async with empty_database(dsn) as url:
        yield FilledStore(url, snapshot)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def filled(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FilledStore]:
    """A store the shop app's workers left with executions waiting and completed."""
    if request.param == "sqlite":
        stores = _sqlite_store(tmp_path)
    else:
        stores = _postgres_store(request.getfixturevalue("dsn"))
    target = await anext(stores)
    store = await open_store(target.url)
    try:
        await populate(store)
    finally:
        await store.close()
    yield target
    await stores.aclose()


async def test_each_candidate_is_judged_and_the_store_is_left_as_it_was(
    filled: FilledStore,
) -> None:
    before = await filled.snapshot()
    assert before["history"] and before["executions"]

    code, out, err = replay_check("--app", f"{APPS}:unchanged", "--json", store=filled.url)
    assert code == 0 and err == [], err
    doc = json.loads(out)
    assert (doc["ok"], doc["exit_code"], doc["totals"]["histories_checked"]) == (True, 0, 5)
    assert doc["limits"] == {
        "max_histories": 50,
        "timeout_seconds": 300.0,
        "ended_within_seconds": 86400.0,
    }
    assert doc["store"] == filled.url  # no password here to redact

    code, out, err = replay_check("--app", f"{APPS}:changed_order", "--json", store=filled.url)
    assert code == 1 and len(err) == 1 and err[0].startswith("durox replay-check: DIVERGED"), err
    (order,) = [v for v in json.loads(out)["versions"] if v["version"] == "1.0.0"][:1]
    assert order["name"] == ORDER and order["histories_checked"] == 3
    assert {(d["kind"], d["event_id"], d["code"], d["history"]) for d in order["divergences"]} == {
        ("nondeterminism", 2, "scheduled activity 'Charge'", "activity 'Reserve'")
    }

    code, out, err = replay_check("--app", f"{APPS}:added_timer", "--json", store=filled.url)
    assert code == 1 and len(err) == 1, err
    found = [d for v in json.loads(out)["versions"] for d in v["divergences"]]
    assert {(d["event_id"], d["code"], d["history"]) for d in found} == {
        (4, "scheduled a timer", "activity 'Charge'")
    }

    code, out, err = replay_check("--app", f"{APPS}:removed_version", "--json", store=filled.url)
    assert code == 1 and len(err) == 1, err
    removed = [v for v in json.loads(out)["versions"] if not v["registered"]]
    assert [(v["name"], v["version"], v["running_executions"]) for v in removed] == [
        (ORDER, "1.0.0", 2)
    ]
    assert removed[0]["divergences"][0]["kind"] == "removed_version"
    assert removed[0]["not_checked"] == {"no_code": 2}

    assert await filled.snapshot() == before


async def test_the_text_report_and_the_store_url_from_the_environment(
    filled: FilledStore,
) -> None:
    code, out, err = replay_check(
        "--app", f"{APPS}:changed_order", "--max-histories", "1", "--recent-hours", "0",
        store=None,
        env={"DUROX_STORE_URL": filled.url},
    )  # fmt: skip
    assert code == 1, err
    assert f"{ORDER}@1.0.0: DIVERGED in 1 of 1 checked (2 running, 0 ended recently); " in out
    assert "not checked: max_histories 1" in out
    assert "code scheduled activity 'Charge'; history has activity 'Reserve'" in out


@pytest.mark.parametrize(
    ("args", "store", "message"),
    [
        (["--app", f"{APPS}:nope"], "sqlite:///{tmp}/shop.db", "has no attribute 'nope'"),
        (["--app", f"{APPS}:app"], "sqlite:///{tmp}/none.db", "no store at "),
        (["--app", f"{APPS}:app"], "mysql://me:s3cret@db/x", "unsupported store URL"),
        (
            ["--app", f"{APPS}:app", "--timeout", "10"],
            "postgresql://me:s3cret@127.0.0.1:1/x",
            "cannot open the store postgresql://me:***@127.0.0.1:1/x:",
        ),
        (["--app", f"{APPS}:app"], None, "--store is required"),
    ],
)
def test_what_cannot_run_exits_2_with_one_line_and_no_password(
    tmp_path: Path, args: list[str], store: str | None, message: str
) -> None:
    code, out, err = replay_check(
        *args, store=None if store is None else store.format(tmp=tmp_path)
    )
    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("durox replay-check: "), err
    assert message in err[0] and "s3cret" not in err[0]
    assert not (tmp_path / "none.db").exists()  # a missing store is not created


@pytest.mark.postgres
async def test_a_database_without_a_durox_store_is_refused_not_created(dsn: str) -> None:
    import asyncpg

    async with empty_database(dsn) as url:
        code, _, err = replay_check("--app", f"{APPS}:app", store=url)
        assert code == 2 and len(err) == 1, err
        assert err[0].endswith(" (schema durox)") and "no durox store at " in err[0]
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT to_regnamespace('durox')") is None
        finally:
            await conn.close()


@pytest.mark.postgres
async def test_a_role_that_may_only_read_is_enough(dsn: str) -> None:
    """The check needs SELECT on the store's tables and nothing more: no CREATE, no LISTEN."""
    import asyncpg

    role = f"durox_reader_{uuid.uuid4().hex[:8]}"
    async for target in _postgres_store(dsn):
        store = await open_store(target.url)
        try:
            await populate(store)
        finally:
            await store.close()
        owner = await asyncpg.connect(target.url)
        try:
            await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'r3ader'")
            database = urlsplit(target.url).path.lstrip("/")
            await owner.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
            await owner.execute(f"GRANT USAGE ON SCHEMA durox TO {role}")
            await owner.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA durox TO {role}")
            await owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            parts = urlsplit(target.url)
            reader = urlunsplit(
                parts._replace(netloc=f"{role}:r3ader@{parts.hostname}:{parts.port}")
            )
            code, out, err = replay_check("--app", f"{APPS}:added_timer", store=reader)
            assert code == 1, err
            assert "code scheduled a timer; history has activity 'Charge'" in out
            assert "r3ader" not in out and f"{role}:***@" in out
        finally:
            await owner.execute(f"DROP OWNED BY {role}")
            await owner.execute(f"DROP ROLE IF EXISTS {role}")
            await owner.close()
