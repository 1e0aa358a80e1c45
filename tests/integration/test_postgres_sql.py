"""The PostgreSQL store's SQL files, read without a server: every named statement is used and
every statement used is named."""

from __future__ import annotations

import re
from pathlib import Path

from durox.providers.postgres import _provider
from durox.providers.postgres._driver import migrations
from durox.providers.postgres._queries import queries, raw_queries


def test_every_named_statement_is_used_and_every_use_is_named() -> None:
    source = Path(_provider.__file__).read_text()
    used = set(re.findall(r"\.fetch(?:val|row)?\(\s*\"([a-z_0-9]+)\"", source))
    assert used == set(raw_queries())


def test_placeholders_are_all_filled() -> None:
    for name, sql in queries("s").items():
        assert not re.findall(r"\{[a-z_]+\}", sql), name
        assert "\n" in sql or not sql.startswith("--"), f"{name} has no statement"


# ---- migrations a rolling upgrade survives (docs/postgres.md, "Upgrading durox") ----------

_CREATE = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|TYPE)\s+(\w+)", re.IGNORECASE)
_ALTER = re.compile(r"\bALTER\s+(FUNCTION|TYPE)\s+(\w+)", re.IGNORECASE)
_DROP = re.compile(r"\bDROP\s+(FUNCTION|TYPE)\s+(?:IF\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
_VERSIONED = re.compile(r"^(\w+?)(?:_v(\d+))?$")

# Released before the rule: 0002 replaced the orchestration fetch in place (same signature and
# result, a cheaper walk of the queue). Nothing may be added here.
_REPLACED_BEFORE_THE_RULE = {("0002_fetch_in_queue_order.sql", "durox_fetch_orchestration")}


def _version(name: str) -> tuple[str, int]:
    """`durox_x_v2` -> ("durox_x", 2); a name without a suffix is version 1."""
    match = _VERSIONED.match(name)
    assert match is not None, name
    return match[1], int(match[2] or 1)


def _uncommented(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def migration_violations(files: list[tuple[str, str]]) -> list[str]:
    """What in these (file name, SQL) migrations, in order, would change a function or type an
    older worker may still call: a name created twice (replaced in place, or re-created after a
    drop, or overloaded), altered, or dropped before a later version of it existed."""
    created: dict[str, str] = {}  # name -> file that created it
    problems = []
    for file, raw in files:
        sql = _uncommented(raw)
        for kind, name in _ALTER.findall(sql):
            problems.append(f"{file}: ALTER {kind.upper()} {name}: create a new version instead")
        for kind, name in _DROP.findall(sql):
            base, version = _version(name)
            newer = [n for n, f in created.items() if f != file and _version(n)[0] == base]
            if not any(_version(n)[1] > version for n in newer):
                problems.append(
                    f"{file}: DROP {kind.upper()} {name} before an earlier migration created"
                    " its next version"
                )
        for replace, kind, name in _CREATE.findall(sql):
            if (file, name) in _REPLACED_BEFORE_THE_RULE:
                continue
            if replace:
                problems.append(f"{file}: CREATE OR REPLACE {kind.upper()} {name}")
            elif name in created:
                problems.append(f"{file}: {name} was created by {created[name]} already")
            created.setdefault(name, file)
    return problems


def test_no_migration_changes_a_function_or_type_in_place() -> None:
    assert migration_violations([(file, sql) for _, file, sql in migrations()]) == []


def test_the_rule_catches_each_way_of_changing_a_function_in_place() -> None:
    first = ("0001_a.sql", "CREATE FUNCTION durox_f(p int) RETURNS int AS $$ 1 $$;")
    cases = {
        "CREATE OR REPLACE FUNCTION durox_f(p int) RETURNS int AS $$ 2 $$;": "OR REPLACE",
        "CREATE FUNCTION durox_f(p int, q int) RETURNS int AS $$ 2 $$;": "created by",
        "DROP FUNCTION durox_f(int); CREATE FUNCTION durox_f(p int) AS $$ 2 $$;": "DROP",
        "ALTER FUNCTION durox_f(int) RENAME TO durox_g;": "ALTER",
        "CREATE FUNCTION durox_f_v2(p int) RETURNS int AS $$ 2 $$; DROP FUNCTION durox_f(int);": (
            "DROP"
        ),
    }
    for sql, problem in cases.items():
        found = migration_violations([first, ("0002_b.sql", sql)])
        assert any(problem in p for p in found), (sql, found)
    # The allowed way: a new version, and the old one dropped by a later migration.
    allowed = [
        first,
        ("0002_b.sql", "CREATE FUNCTION durox_f_v2(p int) RETURNS int AS $$ 2 $$;"),
        ("0003_c.sql", "-- CREATE OR REPLACE in a comment\nDROP FUNCTION durox_f(int);"),
    ]
    assert migration_violations(allowed) == []


def test_this_release_calls_the_newest_version_of_each_function() -> None:
    created = {
        name for _, _, sql in migrations() for _, _, name in _CREATE.findall(_uncommented(sql))
    }
    newest: dict[str, int] = {}
    for name in created:
        base, version = _version(name)
        newest[base] = max(newest.get(base, 0), version)
    for name, sql in raw_queries().items():
        for called in re.findall(r"\{schema\}\.(durox_\w+)\(", sql):
            assert called in created, (name, called)
            base, version = _version(called)
            assert version == newest[base], f"{name} calls {called}, not the newest version"
