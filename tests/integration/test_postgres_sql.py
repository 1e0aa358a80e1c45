"""The PostgreSQL store's SQL files, read without a server: every named statement is used and
every statement used is named."""

from __future__ import annotations

import re
from pathlib import Path

from durox.providers.postgres import _provider
from durox.providers.postgres._queries import queries, raw_queries


def test_every_named_statement_is_used_and_every_use_is_named() -> None:
    source = Path(_provider.__file__).read_text()
    used = set(re.findall(r"\.fetch(?:val|row)?\(\s*\"([a-z_0-9]+)\"", source))
    assert used == set(raw_queries())


def test_placeholders_are_all_filled() -> None:
    for name, sql in queries("s").items():
        assert "{schema}" not in sql and "_columns}" not in sql, name
        assert "\n" in sql or not sql.startswith("--"), f"{name} has no statement"
