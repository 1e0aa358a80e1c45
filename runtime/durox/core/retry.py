"""Retry policies for activities, as pure data with a pure delay function.

Retries are carried out by the orchestration itself with durable timers between attempts, so a
worker crash mid-backoff loses nothing and replay sees the same attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from durox.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """How long to wait before attempt N+1. Build with the static constructors."""

    kind: Literal["none", "fixed", "linear", "exponential"]
    base: timedelta = timedelta(0)
    multiplier: float = 2.0
    max: timedelta = timedelta(minutes=5)

    @staticmethod
    def none() -> BackoffStrategy:
        return BackoffStrategy("none")

    @staticmethod
    def fixed(delay: timedelta) -> BackoffStrategy:
        return BackoffStrategy("fixed", base=delay, max=delay)

    @staticmethod
    def linear(base: timedelta, max: timedelta = timedelta(minutes=5)) -> BackoffStrategy:
        return BackoffStrategy("linear", base=base, max=max)

    @staticmethod
    def exponential(
        base: timedelta, multiplier: float = 2.0, max: timedelta = timedelta(minutes=5)
    ) -> BackoffStrategy:
        if multiplier < 1.0:
            raise ConfigurationError("exponential backoff multiplier must be at least 1.0")
        return BackoffStrategy("exponential", base=base, multiplier=multiplier, max=max)

    def delay(self, failed_attempt: int) -> timedelta:
        """Delay after the `failed_attempt`-th attempt failed (1-based)."""
        if self.kind == "none":
            return timedelta(0)
        if self.kind == "fixed":
            d = self.base
        elif self.kind == "linear":
            d = self.base * failed_attempt
        else:
            d = self.base * (self.multiplier ** (failed_attempt - 1))
        return min(d, self.max)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`RetryPolicy(3)`: up to three attempts in all, exponential backoff from one second.

    A timeout bounds each attempt; an attempt that times out is not retried, because the
    activity may still be running and a second copy could do the work twice at once.
    """

    max_attempts: int = 3
    timeout: timedelta | None = None
    backoff: BackoffStrategy = BackoffStrategy("exponential", base=timedelta(seconds=1))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy needs max_attempts >= 1")
        if self.timeout is not None and self.timeout <= timedelta(0):
            raise ConfigurationError("RetryPolicy timeout must be positive")

    def with_timeout(self, timeout: timedelta) -> RetryPolicy:
        return replace(self, timeout=timeout)

    def with_backoff(self, backoff: BackoffStrategy) -> RetryPolicy:
        return replace(self, backoff=backoff)
