"""Registries: which orchestrations (by NAME and semver version) and activities a worker runs.

Registration is where bad configuration is cheapest to catch, so `build()` refuses duplicate
versions, malformed semver and reserved names with a message naming the culprit. The `_typed`
forms read the function's annotations once, at registration, and build pydantic adapters, so
each call only validates; a value that fails its declared type is a permanent, named failure.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import semver
from pydantic import TypeAdapter, ValidationError

from durox.core.context import OrchestrationContext
from durox.core.events import JSON
from durox.core.replay import Handler
from durox.core.versions import VersionPolicy, choose_version, parse_version
from durox.errors import ConfigurationError, PayloadError

RESERVED_PREFIX = "durox::"
DEFAULT_VERSION = semver.Version(1, 0, 0)


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """What an activity knows about the orchestration that scheduled it."""

    instance_id: str
    execution_id: int
    event_id: int
    name: str
    attempt: int
    session_id: str | None = None
    worker_id: str = ""


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{what} name must be a non-empty string, got {name!r}")
    if name.startswith(RESERVED_PREFIX):
        raise ConfigurationError(
            f"{what} name {name!r} uses the reserved prefix {RESERVED_PREFIX!r}"
        )


def _adapters(fn: Callable[..., Any], what: str) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ConfigurationError(f"cannot read type hints of {what} {fn!r}: {exc}") from exc
    params = list(inspect.signature(fn).parameters)
    if len(params) != 2:
        raise ConfigurationError(f"{what} {fn.__qualname__} must take (ctx, input)")
    in_type = hints.get(params[1], Any)
    out_type = hints.get("return", Any)
    return TypeAdapter(in_type), TypeAdapter(out_type)


def _convert_in(adapter: TypeAdapter[Any], value: JSON, what: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise PayloadError(f"input of {what} failed validation: {exc}") from None


def _convert_out(adapter: TypeAdapter[Any], value: Any, what: str) -> JSON:
    try:
        return adapter.dump_python(value, mode="json")
    except Exception as exc:
        raise PayloadError(f"output of {what} is not of its declared type: {exc}") from None


def _typed_orchestration(fn: Callable[..., Any], label: str) -> Handler:
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"orchestration {label} must be an `async def` function")
    ain, aout = _adapters(fn, f"orchestration {label}")

    async def handler(ctx: Any, raw: JSON) -> JSON:
        return _convert_out(aout, await fn(ctx, _convert_in(ain, raw, label)), label)

    return handler


def _plain_orchestration(fn: Callable[..., Any], label: str) -> Handler:
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"orchestration {label} must be an `async def` function")
    return typing.cast(Handler, fn)


@dataclass(frozen=True, slots=True)
class OrchestrationRegistry:
    """Immutable: orchestration NAME -> {version: handler}, plus a version policy per NAME."""

    handlers: dict[str, dict[semver.Version, Handler]]
    policies: dict[str, VersionPolicy]

    @staticmethod
    def builder() -> OrchestrationRegistryBuilder:
        return OrchestrationRegistryBuilder()

    def names(self) -> list[str]:
        return sorted(self.handlers)

    def versions(self, name: str) -> list[semver.Version]:
        return sorted(self.handlers.get(name, {}))

    def policy(self, name: str) -> VersionPolicy:
        return self.policies.get(name, VersionPolicy.latest())

    def with_policies(self, policies: dict[str, VersionPolicy]) -> OrchestrationRegistry:
        """A copy with these policies in force (used by live config reload)."""
        for name, pol in policies.items():
            if name not in self.handlers:
                raise ConfigurationError(f"policy for unregistered orchestration {name!r}")
            if pol.exact_version is not None and pol.exact_version not in self.handlers[name]:
                raise ConfigurationError(
                    f"policy pins {name!r} to {pol.exact_version}, which is not registered"
                )
            if pol.ramp is not None and pol.ramp.version not in self.handlers[name]:
                raise ConfigurationError(
                    f"policy ramps {name!r} to {pol.ramp.version}, which is not registered"
                )
        return OrchestrationRegistry(self.handlers, {**self.policies, **policies})

    def resolve(
        self, name: str, requested: str | None, /, instance_id: str = ""
    ) -> tuple[str, Handler] | None:
        """The version and handler a new or running execution (of `instance_id`: a policy's
        ramp picks by it) uses here, or None."""
        versions = self.handlers.get(name)
        if not versions:
            return None
        try:
            chosen = choose_version(versions.keys(), self.policy(name), requested, instance_id)
        except ConfigurationError:
            return None
        if chosen is None:
            return None
        return str(chosen), versions[chosen]


class OrchestrationRegistryBuilder:
    def __init__(self) -> None:
        self._handlers: dict[str, dict[semver.Version, Handler]] = {}
        self._policies: dict[str, VersionPolicy] = {}
        self._errors: list[str] = []

    def _add(self, name: str, version: str | semver.Version, handler: Handler) -> None:
        v = parse_version(version)
        slot = self._handlers.setdefault(name, {})
        if v in slot:
            raise ConfigurationError(f"orchestration {name!r} version {v} is registered twice")
        slot[v] = handler

    def register(self, name: str, fn: Callable[..., Any]) -> OrchestrationRegistryBuilder:
        _check_name(name, "orchestration")
        self._add(name, DEFAULT_VERSION, _plain_orchestration(fn, f"{name!r}"))
        return self

    def register_versioned(
        self, name: str, version: str, fn: Callable[..., Any]
    ) -> OrchestrationRegistryBuilder:
        _check_name(name, "orchestration")
        self._add(name, version, _plain_orchestration(fn, f"{name!r}@{version}"))
        return self

    def register_typed(self, name: str, fn: Callable[..., Any]) -> OrchestrationRegistryBuilder:
        _check_name(name, "orchestration")
        self._add(name, DEFAULT_VERSION, _typed_orchestration(fn, f"{name!r}"))
        return self

    def register_versioned_typed(
        self, name: str, version: str, fn: Callable[..., Any]
    ) -> OrchestrationRegistryBuilder:
        _check_name(name, "orchestration")
        self._add(name, version, _typed_orchestration(fn, f"{name!r}@{version}"))
        return self

    def set_policy(self, name: str, policy: VersionPolicy) -> OrchestrationRegistryBuilder:
        self._policies[name] = policy
        return self

    def build(self) -> OrchestrationRegistry:
        for name, pol in self._policies.items():
            if name not in self._handlers:
                raise ConfigurationError(f"policy set for unregistered orchestration {name!r}")
            if pol.exact_version is not None and pol.exact_version not in self._handlers[name]:
                raise ConfigurationError(
                    f"policy pins {name!r} to {pol.exact_version}, which is not registered "
                    f"(registered: {', '.join(map(str, sorted(self._handlers[name])))})"
                )
            if pol.ramp is not None and pol.ramp.version not in self._handlers[name]:
                raise ConfigurationError(
                    f"policy ramps {name!r} to {pol.ramp.version}, which is not registered "
                    f"(registered: {', '.join(map(str, sorted(self._handlers[name])))})"
                )
        return OrchestrationRegistry(
            {n: dict(v) for n, v in self._handlers.items()}, dict(self._policies)
        )


# --- activities -----------------------------------------------------------------------------

ActivityHandler = Callable[[ActivityContext, JSON], "typing.Awaitable[JSON]"]


def _is_async(fn: Callable[..., Any]) -> bool:
    """True for an `async def` function, a partial of one, or an object whose `__call__` is one:
    a callable class with an async `__call__` must be awaited, not run in a thread (where it would
    only create a coroutine that nobody awaits)."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isroutine(fn) or not callable(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)


def _activity_handler(fn: Callable[..., Any], name: str, typed: bool) -> ActivityHandler:
    is_async = _is_async(fn)
    ain, aout = _adapters(fn, f"activity {name!r}") if typed else (None, None)

    async def handler(ctx: ActivityContext, raw: JSON) -> JSON:
        value = _convert_in(ain, raw, f"activity {name!r}") if ain is not None else raw
        if is_async:
            out = await fn(ctx, value)
        else:
            out = await asyncio.to_thread(fn, ctx, value)
            if inspect.isawaitable(out):
                # A plain function that hands back an awaitable (a wrapper around an async
                # function, say): its result is what the awaitable yields, not the awaitable.
                out = await out
        return _convert_out(aout, out, f"activity {name!r}") if aout is not None else out

    return handler


@dataclass(frozen=True, slots=True)
class ActivityRegistry:
    handlers: dict[str, ActivityHandler] = field(default_factory=dict)
    session_names: frozenset[str] = frozenset()
    """Activities registered as session handlers (reported in capability records)."""

    @staticmethod
    def builder() -> ActivityRegistryBuilder:
        return ActivityRegistryBuilder()

    def names(self) -> list[str]:
        return sorted(self.handlers)

    def get(self, name: str) -> ActivityHandler | None:
        return self.handlers.get(name)


class ActivityRegistryBuilder:
    def __init__(self) -> None:
        self._handlers: dict[str, ActivityHandler] = {}
        self._sessions: set[str] = set()

    def _add(
        self, name: str, fn: Callable[..., Any], typed: bool, session: bool
    ) -> ActivityRegistryBuilder:
        _check_name(name, "activity")
        if name in self._handlers:
            raise ConfigurationError(f"activity {name!r} is registered twice")
        self._handlers[name] = _activity_handler(fn, name, typed)
        if session:
            self._sessions.add(name)
        return self

    def register(
        self, name: str, fn: Callable[..., Any], *, session: bool = False
    ) -> ActivityRegistryBuilder:
        """`session=True` marks a handler meant for `schedule_activity_on_session`."""
        return self._add(name, fn, False, session)

    def register_typed(
        self, name: str, fn: Callable[..., Any], *, session: bool = False
    ) -> ActivityRegistryBuilder:
        return self._add(name, fn, True, session)

    def register_all(
        self, items: Iterable[tuple[str, Callable[..., Any]]]
    ) -> ActivityRegistryBuilder:
        for name, fn in items:
            self._add(name, fn, False, False)
        return self

    def build(self) -> ActivityRegistry:
        return ActivityRegistry(dict(self._handlers), frozenset(self._sessions))


__all__ = [
    "ActivityContext",
    "ActivityRegistry",
    "OrchestrationContext",
    "OrchestrationRegistry",
]
