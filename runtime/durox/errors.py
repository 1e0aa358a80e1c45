"""Every exception durox raises, in one tree, each marked retryable or permanent.

    DuroxError
    ├── RetryableError            the same call may succeed later
    │   ├── StoreUnavailableError     connection lost, database busy or locked
    │   ├── StoreConflictError        serialization failure, deadlock, stale plan
    │   └── LockLostError             a lease expired or was taken by another worker
    └── PermanentError            retrying the same thing will fail the same way
        ├── StoreCorruptionError      a row the store cannot make sense of
        ├── HistoryDecodeError        an event or message this engine cannot read
        ├── ConfigurationError        bad registration, bad semver, unknown version
        ├── PayloadError              a value that JSON cannot carry
        │   └── PayloadTooLargeError      a value over the configured size limit
        ├── InstanceAlreadyExistsError
        ├── InstanceNotFoundError     no such instance (nor a start queued for it)
        ├── InstanceRunningError      delete refused for a running instance
        └── OrchestrationFailedError  raised inside an orchestration when awaited work fails
            ├── ActivityFailedError
            ├── SubOrchestrationFailedError
            ├── ActivityTimeoutError     an attempt ran past its retry policy timeout
            └── NondeterminismError

The store adapters wrap their driver's exceptions into this tree at the boundary, so the
runtime decides what to do from the class alone: back off and retry, or record a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durox.core.events import ErrorDetails


class DuroxError(Exception):
    """Base of every durox exception."""

    retryable: bool = False


class RetryableError(DuroxError):
    retryable = True


class PermanentError(DuroxError):
    retryable = False


class StoreUnavailableError(RetryableError):
    pass


class StoreConflictError(RetryableError):
    pass


class LockLostError(RetryableError):
    pass


class StoreCorruptionError(PermanentError):
    pass


class HistoryDecodeError(PermanentError):
    pass


class ConfigurationError(PermanentError):
    pass


class PayloadError(PermanentError):
    pass


class PayloadTooLargeError(PayloadError):
    """A payload whose JSON encoding is over `limit` bytes (`max_payload_bytes`); `what` says
    which payload (an input, a result, an output, a custom status)."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size} bytes of JSON, over the payload limit of {limit} bytes "
            "(max_payload_bytes)"
        )
        self.what = what
        self.size = size
        self.limit = limit


class InstanceAlreadyExistsError(PermanentError):
    pass


class InstanceNotFoundError(PermanentError):
    pass


class InstanceRunningError(PermanentError):
    pass


class OrchestrationFailedError(PermanentError):
    """Awaited durable work failed; `details` says how, as the history recorded it."""

    def __init__(self, details: ErrorDetails) -> None:
        super().__init__(str(details))
        self.details = details


class ActivityFailedError(OrchestrationFailedError):
    pass


class SubOrchestrationFailedError(OrchestrationFailedError):
    pass


class ActivityTimeoutError(OrchestrationFailedError):
    pass


class NondeterminismError(OrchestrationFailedError):
    pass
