"""The embedded store's schema: its migrations, applied in order, give exactly schema.sql."""

from __future__ import annotations

import sqlite3
from importlib import resources

from durox.providers.sqlite._executor import _migrate, _statements, migrations


def _schema(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        " AND name != 'durox_migrations'"
    ).fetchall()
    return {(t, n, " ".join(sql.split())) for t, n, sql in rows}


def test_migrations_give_the_schema_file() -> None:
    migrated = sqlite3.connect(":memory:", isolation_level=None)
    _migrate(migrated)
    expected = sqlite3.connect(":memory:", isolation_level=None)
    schema = resources.files("durox.providers.sqlite").joinpath("schema.sql").read_text()
    for statement in _statements(schema):
        expected.execute(statement)
    assert _schema(migrated) == _schema(expected)
    _migrate(migrated)  # applying again is a no-op
    applied = migrated.execute("SELECT count(*) FROM durox_migrations").fetchone()[0]
    assert applied == len(migrations()) >= 2
