"""Named SQL (`durox.providers._sql`) and the SQLite store's `queries.sql`."""

from __future__ import annotations

import inspect
import re

import pytest

from durox.providers._sql import parse_queries
from durox.providers.sqlite import _admin, _provider


def test_blocks_are_named_and_status_words_filled_in() -> None:
    q = parse_queries(
        "-- a file comment\n"
        "-- name: one\n-- what it does\nSELECT 1\nFROM t WHERE s = {RUNNING};\n\n"
        "-- name: two\nSELECT 2 WHERE s IN ({TERMINAL}) AND x = {X}\n",
        {"{X}": "'x'"},
    )
    assert q == {
        "one": "SELECT 1 FROM t WHERE s = 'Running'",
        "two": "SELECT 2 WHERE s IN ('Cancelled', 'Completed', 'Failed') AND x = 'x'",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "defined twice"),
        ("SELECT 1;\n-- name: a\nSELECT 2;", "before the first"),
        ("-- name: a\nSELECT 1 -- one\n, 2;", "comment after SQL"),
        ("-- name: a\nSELECT {NOPE};", "unknown tokens"),
        ("-- name: a\n-- nothing\n", "empty"),
    ],
)
def test_mistakes_in_the_file_are_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_queries(text)


def test_the_sqlite_store_uses_every_query_it_names_and_names_only_queries_it_has() -> None:
    source = inspect.getsource(_provider) + inspect.getsource(_admin)
    used = set(re.findall(r'(?:q|_sql)\["([a-z_]+)"\]', source))
    used |= {f"delete_tree_{t}" for t in _admin._TREE_TABLES}
    assert used == set(_provider.QUERIES)
