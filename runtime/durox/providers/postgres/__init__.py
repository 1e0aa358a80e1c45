"""The shared store: PostgreSQL through asyncpg (`pip install durox[postgres]`)."""

from durox.providers.postgres._provider import PostgresProvider

__all__ = ["PostgresProvider"]
