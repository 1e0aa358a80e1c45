"""Driver errors into the durox tree: retry (the store is busy or away), or give up."""

from __future__ import annotations

import asyncpg

from durox.errors import (
    DuroxError,
    InstanceAlreadyExistsError,
    InstanceRunningError,
    LockLostError,
    StoreConflictError,
    StoreCorruptionError,
    StoreUnavailableError,
)

_RETRYABLE_STATES = {
    "40001": StoreConflictError,  # serialization_failure
    "40P01": StoreConflictError,  # deadlock_detected
    "55P03": StoreConflictError,  # lock_not_available
    "0A000": StoreConflictError,  # feature_not_supported: "cached plan must not change result"
    "57014": StoreUnavailableError,  # query_canceled (statement timeout)
    "57P01": StoreUnavailableError,  # admin_shutdown
    "57P02": StoreUnavailableError,  # crash_shutdown
    "57P03": StoreUnavailableError,  # cannot_connect_now
    "53300": StoreUnavailableError,  # too_many_connections
}


def classify(exc: BaseException) -> DuroxError:
    """Map a driver (or socket) exception to the durox tree: retry, or give up."""
    if isinstance(exc, DuroxError):
        return exc
    if isinstance(exc, asyncpg.exceptions.InvalidCachedStatementError):
        return StoreConflictError(f"postgres: prepared statement went stale: {exc}")
    state = getattr(exc, "sqlstate", None)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError) and isinstance(state, str):
        return classify_state(state, text)
    if isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError | ConnectionError):
        return StoreUnavailableError(f"postgres connection: {text}")
    return StoreUnavailableError(f"postgres: {type(exc).__name__}: {text}")


def classify_state(state: str, text: str) -> DuroxError:
    """Map an SQLSTATE (raised, or reported per item by a batch function) to the durox tree."""
    if state == "DX001":
        return LockLostError(text)
    if state == "DX002":
        return InstanceAlreadyExistsError(text)
    if state == "DX003":
        return InstanceRunningError(text)
    if state in _RETRYABLE_STATES:
        return _RETRYABLE_STATES[state](f"postgres {state}: {text}")
    if state.startswith(("08", "53", "58")):  # connection, resources, system errors
        return StoreUnavailableError(f"postgres {state}: {text}")
    if state.startswith("23"):
        return StoreCorruptionError(f"postgres constraint violated ({state}): {text}")
    if state.startswith(("22", "XX", "42")):  # bad data, internal/corrupt, schema mismatch
        return StoreCorruptionError(f"postgres {state}: {text}")
    return StoreUnavailableError(f"postgres {state}: {text}")
