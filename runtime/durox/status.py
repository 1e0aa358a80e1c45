"""The one vocabulary of instance and execution statuses, shared by the engine, the stores and
the client.

A store writes these words into its rows and SQL, the engine decides them, a client filters by
them; defining them once here (beside `durox.errors`, below every layer) keeps the three from
drifting. `TERMINAL` is the set an instance does not leave: it may be deleted, and a client
waiting for it stops. `ContinuedAsNew` ends an execution, not the instance, so it is not in it.
"""

from __future__ import annotations

from enum import StrEnum

from durox.errors import ConfigurationError


class InstanceStatus(StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    """Between executions: the instance goes on as a new execution."""

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @classmethod
    def parse(cls, value: InstanceStatus | str) -> InstanceStatus:
        """`value` as a status; `ConfigurationError` naming the known ones if it is none of
        them. Case matters, as it does in the store: "completed" is refused, with a hint."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            pass
        known = ", ".join(s.value for s in cls)
        hint = next(
            (f" (did you mean {s.value!r}?)" for s in cls if s.lower() == str(value).lower()), ""
        )
        raise ConfigurationError(f"unknown instance status {value!r}{hint}; known: {known}")


TERMINAL: frozenset[InstanceStatus] = frozenset(
    {InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED}
)
"""Statuses an instance does not leave."""


def status_filter(value: InstanceStatus | str | None) -> InstanceStatus | None:
    """A status filter as given to a list or delete operation: None (no filter) or a status."""
    return None if value is None else InstanceStatus.parse(value)


def sql_list(statuses: frozenset[InstanceStatus]) -> str:
    """`'A', 'B'` for an SQL `IN (...)`, in a stable order."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))
