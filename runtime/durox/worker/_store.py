"""Turning a store URL into a provider.

The URL arrives from a Secret, so it may carry a password: it is never logged whole, only in
its `redacted` form. PostgreSQL support is an optional extra; a worker image built without it
says so instead of failing with an ImportError from deep inside.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from durox.errors import ConfigurationError
from durox.providers._base import Store
from durox.providers.sqlite import SqliteProvider

SQLITE_PREFIX = "sqlite:///"


class StoreUrlError(ConfigurationError):
    """The store URL is malformed or names a store this image cannot open."""


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
