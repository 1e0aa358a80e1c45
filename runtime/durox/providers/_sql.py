"""Named SQL: a store keeps its statements in one `queries.sql`, each under a `-- name:` line,
and its operations use them by name. Reading the SQL of an operation then means reading one
block of SQL, not string pieces scattered through Python.

Status words are not spelt in the file: `{RUNNING}`, `{FAILED}` and `{TERMINAL}` stand for
`durox.status`'s words and are filled in when the file is loaded, so the SQL cannot drift from
the vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

from durox.status import TERMINAL, InstanceStatus, sql_list

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
_WORDS = {
    "{RUNNING}": f"'{InstanceStatus.RUNNING.value}'",
    "{FAILED}": f"'{InstanceStatus.FAILED.value}'",
    "{TERMINAL}": sql_list(TERMINAL),
}


def parse_queries(text: str, words: Mapping[str, str] | None = None) -> dict[str, str]:
    """name -> statement for each `-- name: NAME` block of `text`; other comments are dropped.
    `words` fills in further `{TOKEN}`s. A name given twice, SQL before the first name, or a
    comment after SQL on one line (the lines are joined) is a mistake in the file."""
    fill = {**_WORDS, **(words or {})}
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _NAME.match(line.strip())
        if m:
            if m.group(1) in queries:
                raise ValueError(f"query {m.group(1)!r} is defined twice")
            current = queries[m.group(1)] = []
        elif line.strip().startswith("--") or not line.strip():
            continue
        elif current is None:
            raise ValueError(f"SQL before the first '-- name:' line: {line.strip()!r}")
        elif "--" in line:
            raise ValueError(f"a comment after SQL on one line: {line.strip()!r}")
        else:
            current.append(line.strip())
    out = {}
    for name, lines in queries.items():
        sql = " ".join(lines).rstrip(";").strip()
        for token, word in fill.items():
            sql = sql.replace(token, word)
        unknown = re.findall(r"\{[A-Z_]+\}", sql)
        if unknown:
            raise ValueError(f"query {name!r} has unknown tokens {unknown}")
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        out[name] = sql
    return out


def load_queries(package: str, words: Mapping[str, str] | None = None) -> dict[str, str]:
    """The named statements of `package/queries.sql`."""
    return parse_queries(resources.files(package).joinpath("queries.sql").read_text(), words)
