"""The embedded store: one SQLite file (or memory), zero set-up."""

from durox.providers.sqlite._provider import SqliteProvider

__all__ = ["SqliteProvider"]
