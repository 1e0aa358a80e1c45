"""PostgreSQL helpers shared by every system: round trips from pg_stat_statements, by role.

The driver of a durox case connects as `bench_client` and its workers as the DSN's role, so the
statements a worker sends (BEGIN and COMMIT included, `track_utility` is on) are counted apart
from the driver's starts.
"""

from __future__ import annotations

import os


async def pg_round_trips(dsn: str, reset: bool) -> dict[str, int]:
    """Statement calls by role since the last reset (pg_stat_statements counts BEGIN/COMMIT
    too). Workers connect as the DSN's role, the driver as `bench_client`."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return {}
        rows = await conn.fetch(
            "SELECT r.rolname, sum(s.calls)::bigint AS calls FROM pg_stat_statements s"
            " JOIN pg_roles r ON r.oid = s.userid"
            " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " GROUP BY r.rolname"
        )
        return {row["rolname"]: int(row["calls"]) for row in rows}
    finally:
        await conn.close()


def client_dsn(dsn: str) -> str:
    """The same server and database as `dsn`, as role `bench_client` (trust auth)."""
    scheme, rest = dsn.split("://", 1)
    _, host = rest.split("@", 1) if "@" in rest else ("", rest)
    return f"{scheme}://bench_client@{host}"


async def prepare_pg(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'bench_client'")
        if not exists:
            await conn.execute("CREATE ROLE bench_client LOGIN SUPERUSER")
    finally:
        await conn.close()


def role_of(dsn: str) -> str:
    rest = dsn.split("://", 1)[1]
    return rest.split("@", 1)[0].split(":", 1)[0] if "@" in rest else os.environ.get("USER", "")


async def pg_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
