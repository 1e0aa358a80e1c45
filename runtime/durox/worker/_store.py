"""Turning a store URL into a provider.

The URL arrives from a Secret, so it may carry a password: it is never logged whole, only in
its `redacted` form. PostgreSQL support is an optional extra; a worker image built without it
says so instead of failing with an ImportError from deep inside.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from durox.errors import ConfigurationError
from durox.providers._base import Store
from durox.providers.sqlite import SqliteProvider

SQLITE_PREFIX = "sqlite:///"


class StoreUrlError(ConfigurationError):
    """The store URL is malformed or names a store this image cannot open."""


def scrubbed(text: str, url: str) -> str:
    """`text` (an error message, say) with the URL's password, if any, replaced by `***`."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


def redacted(url: str) -> str:
    """The URL with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable store URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_store(url: str) -> Store:
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` or `postgresql://...`.

    Raises `StoreUrlError` for a URL this image cannot use, and the store's own `durox.errors`
    (e.g. `StoreUnavailableError`, retryable) when it cannot be reached.
    """
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise StoreUrlError(
                "a sqlite store URL needs a file path (sqlite:///relative.db or "
                "sqlite:////absolute.db); an in-memory store cannot be shared with clients"
            )
        return await SqliteProvider.open(path)
    scheme = url.partition("://")[0].lower()
    if scheme in ("postgresql", "postgres"):
        try:
            from durox.providers.postgres import PostgresProvider
        except ImportError as exc:
            raise StoreUrlError(
                f"a PostgreSQL store needs the postgres extra (pip install 'durox[postgres]'): "
                f"{exc}"
            ) from exc
        return await PostgresProvider.connect(url)
    raise StoreUrlError(
        f"unsupported store URL {redacted(url)!r}: expected sqlite:///PATH or postgresql://..."
    )


async def open_existing_store(url: str, *, timeout: float = 30.0) -> Store:
    """`open_store` for a tool that only reads (`durox replay-check`): the store must exist
    and be migrated by this release already, so opening it creates and changes nothing (on
    PostgreSQL a role with SELECT on the schema's tables is enough). `StoreUrlError` says what
    is missing (no file, no durox store there, migrations behind)."""
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if path and path != ":memory:":
            await asyncio.to_thread(_sqlite_up_to_date, path)
    elif url.partition("://")[0].lower() in ("postgresql", "postgres"):
        try:
            from durox.providers.postgres import PostgresProvider
            from durox.providers.postgres._driver import applied_migrations as pg_applied
            from durox.providers.postgres._driver import migrations as pg_migrations
        except ImportError as exc:
            raise StoreUrlError(
                f"a PostgreSQL store needs the postgres extra (pip install 'durox[postgres]'): "
                f"{exc}"
            ) from exc
        applied = await pg_applied(url, "durox", timeout)
        _up_to_date(applied, pg_migrations(), f"{redacted(url)} (schema durox)")
        return await PostgresProvider.connect(
            url, pool_size=2, command_timeout=timeout, listen=False, migrate=False
        )
    return await open_store(url)


def _sqlite_up_to_date(path: str) -> None:
    from durox.providers.sqlite._executor import applied_migrations, migrations

    if not Path(path).is_file():
        raise StoreUrlError(f"no store at {path}: there is no such file")
    _up_to_date(applied_migrations(path), migrations(), path)


def _up_to_date(applied: set[int] | None, known: list[tuple[int, str, str]], where: str) -> None:
    if applied is None:
        raise StoreUrlError(f"no durox store at {where}")
    missing = [name for version, name, _ in known if version not in applied]
    if missing:
        raise StoreUrlError(
            f"the store at {where} lacks migrations {', '.join(missing)}; it is opened read-only "
            "here, so let a worker of this release migrate it first"
        )
