"""Finding the user's registries from a `MODULE:ATTR` string.

The worker image is generic; the only thing that ties it to an application is this string. So
every way it can be wrong (no such module, an import that fails inside the user's code, no such
attribute, an object of the wrong shape) ends in one `AppLoadError` whose message says which
of these happened, because that message is what a person reads in `kubectl logs`.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durox.errors import ConfigurationError
from durox.registry import ActivityRegistry, OrchestrationRegistry


class AppLoadError(ConfigurationError):
    """`--app` does not name a usable application. Permanent: fix the image or the argument."""


@dataclass(frozen=True)
class App:
    """What `durox worker --app MODULE:ATTR` runs.

    `ATTR` is an `App`, or a function taking no arguments that returns one (called once, at
    start-up, so it may build registries from settings). Any object with `orchestrations` and
    `activities` registry attributes is accepted the same way.
    """

    orchestrations: OrchestrationRegistry
    activities: ActivityRegistry


def load_app(spec: str, *, search_path: str | Path | None = ".") -> App:
    """Import `MODULE:ATTR` and return its `App`. `search_path` is put first on `sys.path`
    (the working directory by default, so `--app myapp:app` finds `./myapp.py`)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(
            f"--app must look like MODULE:ATTR (e.g. myapp.worker:app), not {spec!r}"
        )
    if search_path is not None:
        where = str(Path(search_path).resolve())
        if where not in sys.path:
            sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(
                f"--app {spec}: no module named {exc.name!r} (sys.path starts with {sys.path[0]!r})"
            ) from exc
        raise AppLoadError(f"--app {spec}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(
            f"--app {spec}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppLoadError(
                f"--app {spec}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if callable(target) and not _looks_like_app(target):
        try:
            target = target()
        except Exception as exc:
            raise AppLoadError(
                f"--app {spec}: calling {attr}() raised {type(exc).__name__}: {exc}"
            ) from exc
    return _as_app(target, spec)


def _looks_like_app(obj: object) -> bool:
    return hasattr(obj, "orchestrations") and hasattr(obj, "activities")


def _as_app(obj: object, spec: str) -> App:
    if isinstance(obj, App):
        return obj
    if not _looks_like_app(obj):
        raise AppLoadError(
            f"--app {spec}: expected a durox.worker.App (or a function returning one), "
            f"got {type(obj).__name__}"
        )
    orchestrations = getattr(obj, "orchestrations")  # noqa: B009
    activities = getattr(obj, "activities")  # noqa: B009
    if not isinstance(orchestrations, OrchestrationRegistry):
        raise AppLoadError(
            f"--app {spec}: `orchestrations` is a {type(orchestrations).__name__}, not a built "
            "OrchestrationRegistry (did you forget .build()?)"
        )
    if not isinstance(activities, ActivityRegistry):
        raise AppLoadError(
            f"--app {spec}: `activities` is a {type(activities).__name__}, not a built "
            "ActivityRegistry (did you forget .build()?)"
        )
    return App(orchestrations=orchestrations, activities=activities)
