"""The store's SQL, by name: `queries.sql` parsed once, its placeholders filled per schema.

Keeping every statement in one file, each under a name, lets a reader see all the SQL the store
sends in one place and lets a test check that each name is used and each use is named.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from durox.providers._rows import EXECUTION_COLUMNS, INSTANCE_COLUMNS
from durox.status import TERMINAL, InstanceStatus, sql_list

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def raw_queries() -> dict[str, str]:
    """Every statement of `queries.sql` by name, placeholders still in."""
    text = resources.files("durox.providers.postgres").joinpath("queries.sql").read_text()
    parts = _NAME.split(text)  # [preamble, name, body, name, body, ...]
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in out:
            raise ValueError(f"queries.sql names {name!r} twice")
        out[name] = body.strip()
    return out


def queries(schema: str) -> dict[str, str]:
    """Every statement by name, ready for `schema` (an identifier checked by the caller)."""
    fill = {
        "{schema}": f'"{schema}"',
        "{instance_columns}": INSTANCE_COLUMNS,
        "{execution_columns}": EXECUTION_COLUMNS,
        "{terminal}": sql_list(TERMINAL),
        "{failed}": f"'{InstanceStatus.FAILED.value}'",
    }
    out = {}
    for name, sql in raw_queries().items():
        for key, value in fill.items():
            sql = sql.replace(key, value)
        out[name] = sql
    return out
