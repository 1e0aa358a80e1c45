"""The failure policy both kinds of work share: backoff, then retry or poison.

Work that no handler here can take (an unregistered activity or orchestration version, a
history that cannot be read, a replay this engine refuses) is handed back to the store with a
delay that doubles per attempt, and poisoned once it has been fetched `max_attempts` times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from durox.errors import DuroxError
from durox.runtime._options import RuntimeOptions

log = logging.getLogger("durox.runtime")
"""The whole package logs under one name, as it did when it was one module."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


def kind_of(exc: DuroxError) -> str:
    return "retryable" if exc.retryable else "permanent"


def backoff_ms(options: RuntimeOptions, attempt: int) -> int:
    """The delay before work no handler here can take is fetched again."""
    base = ms(options.unregistered_backoff)
    grown: int = base * 2 ** max(attempt - 1, 0)
    return min(grown, ms(options.unregistered_backoff_max))


async def retry_or_poison(
    options: RuntimeOptions,
    attempt: int,
    reason: str,
    extra: dict[str, Any],
    *,
    retry: Callable[[int], Awaitable[None]],
    poison: Callable[[str], Awaitable[None]],
) -> None:
    """Hand the work back with a growing delay (`retry(delay_ms)`) or, on its last attempt,
    fail it for good (`poison(reason)`)."""
    if attempt >= options.max_attempts:
        await poison(f"{reason}; gave up after {attempt} attempts")
        return
    delay = backoff_ms(options, attempt)
    log.warning(
        "%s; retrying in %d ms (attempt %d of %d)",
        reason,
        delay,
        attempt,
        options.max_attempts,
        extra=extra,
    )
    await retry(delay)
