"""Reading the worker's configuration file, and applying a new one to a running runtime.

Kubernetes mounts a ConfigMap as a folder whose files are symlinks through `..data` to a
timestamped directory, and swaps that symlink atomically on update. A file watcher keyed on the
link's mtime or inode misses some swaps and fires on others that change nothing, so the watcher
here reads through the links and compares content digests: a reload happens exactly when the
bytes a reader would see have changed.

A new file is applied only whole: if any part is invalid (bad YAML, a schema error, a policy
naming a version this image does not register) nothing changes and the last good revision
stays in force. Settings that shape the process itself (pool, concurrency, timeouts, port)
cannot change under a running runtime; they are reported as needing a restart, not ignored
silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from durox.core.versions import SemverRange, VersionPolicy
from durox.errors import ConfigurationError
from durox.runtime import Runtime, RuntimeOptions
from durox.worker_config import RESTART_FIELDS, WorkerConfig

log = logging.getLogger(__name__)

DRAIN_RANGE: Final = SemverRange("0.0.0", "99999.0.0")
"""The replay range in drain mode: every pinned engine version is fetched. What this engine
cannot replay faithfully is refused per execution and poisoned after `max_attempts`."""


class ConfigFileError(ConfigurationError):
    """The configuration file cannot be read or does not validate. Permanent until edited."""


def parse_config(text: str, source: str = "<config>") -> WorkerConfig:
    """Validate YAML or JSON text (JSON is YAML) into a `WorkerConfig`."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{source}: not valid YAML or JSON: {_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigFileError(f"{source}: the file is empty (write {{}} for all defaults)")
    if not isinstance(data, dict):
        raise ConfigFileError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    try:
        return WorkerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigFileError(f"{source}: {problems}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message on one line: what is wrong and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem or exc.context} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def read_config(path: str | Path) -> tuple[WorkerConfig, str]:
    """The file's config and the digest of the bytes it was parsed from."""
    raw = _read(path)
    return _parse_bytes(raw, str(path)), _digest(raw)


def _parse_bytes(raw: bytes, source: str) -> WorkerConfig:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{source}: not UTF-8 text: {exc}") from exc
    return parse_config(text, source)


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()  # follows ConfigMap's ..data symlinks to the content
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def config_json_schema() -> dict[str, Any]:
    """The JSON schema of the file, as documented in docs/worker.md."""
    return WorkerConfig.model_json_schema()


def dump_schema() -> str:
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


# -- what a config means to a runtime ---------------------------------------------------------


def requested_replay_range(config: WorkerConfig) -> SemverRange | None:
    """The range a config asks for; None means this engine's default (0.0.0 up to itself)."""
    if config.drain:
        return DRAIN_RANGE
    r = config.supported_replay_versions
    return None if r is None else SemverRange(r.min, r.max)


def version_policies(
    config: WorkerConfig, defaults: dict[str, VersionPolicy]
) -> dict[str, VersionPolicy]:
    """A policy for every registered NAME: the config's where it has one, else the app's own.

    Passing every NAME (not just the listed ones) is what makes removing a pin from the file
    take effect: the NAME goes back to the policy its registry was built with.
    """
    policies = dict(defaults)
    for p in config.orchestrations:
        policy = VersionPolicy.latest() if p.version is None else VersionPolicy.exact(p.version)
        if p.ramp is not None:
            policy = policy.with_ramp(p.ramp.version, p.ramp.percent)
        policies[p.name] = policy
    return policies


def runtime_options(config: WorkerConfig, node_id: str | None) -> RuntimeOptions:
    lock = timedelta(seconds=config.lock_timeout_seconds)
    return RuntimeOptions(
        orchestration_concurrency=config.orchestration_concurrency,
        activity_concurrency=config.activity_concurrency,
        orchestration_lock_timeout=lock,
        activity_lock_timeout=lock,
        max_attempts=config.max_attempts,
        worker_node_id=node_id,
        pool=config.pool,
        supported_replay_versions=requested_replay_range(config),
        instance_cache_size=config.instance_cache_size,
        instance_cache_max_bytes=config.instance_cache_max_bytes,
        sticky_window=timedelta(seconds=config.sticky_window_seconds),
        max_payload_bytes=config.max_payload_bytes,
    )


def needs_restart(running: WorkerConfig, new: WorkerConfig) -> list[str]:
    """The start-up-only settings that differ, as `field: old -> new`."""
    return [
        f"{f}: {getattr(running, f)} -> {getattr(new, f)}"
        for f in RESTART_FIELDS
        if getattr(running, f) != getattr(new, f)
    ]


@dataclass
class LiveConfig:
    """The config in force on one runtime, and how to move it to a new revision."""

    runtime: Runtime
    started_with: WorkerConfig
    """The config the process started with: start-up-only settings are compared to this."""
    defaults: dict[str, VersionPolicy]
    """The app's own policy per NAME, before any config touched it."""
    current: WorkerConfig
    rejected: str | None = None
    """Why the last revision handed to `apply` was refused, or None if it applied."""

    def apply(self, new: WorkerConfig) -> bool:
        """Apply the live parts of `new`; False (nothing changed) if the runtime refuses it."""
        try:
            rng = requested_replay_range(new)
            self.runtime.reconfigure(
                policies=version_policies(new, self.defaults),
                supported_replay_versions=rng,
                reset_replay_range=rng is None,
                revision=new.revision,
                instance_cache_size=new.instance_cache_size,
                instance_cache_max_bytes=new.instance_cache_max_bytes,
                sticky_window=timedelta(seconds=new.sticky_window_seconds),
            )
        except ConfigurationError as exc:
            log.error(
                "config revision %s rejected: %s; revision %s stays in force",
                new.revision,
                exc,
                self.current.revision,
            )
            self.rejected = f"revision {new.revision}: {exc}"
            return False
        self.current = new
        self.rejected = None
        log.info(
            "config revision %s applied: replay range %s%s",
            new.revision,
            self.runtime.replay_range,
            " (drain mode)" if new.drain else "",
        )
        stale = needs_restart(self.started_with, new)
        if stale:
            log.warning(
                "config revision %s changes settings that need a restart to take effect "
                "(running with the old values): %s",
                new.revision,
                ", ".join(stale),
            )
        return True


class ConfigWatcher:
    """Polls a config file's content and hands each new valid version to `on_change`."""

    def __init__(
        self,
        path: str | Path,
        digest: str,
        on_change: Callable[[WorkerConfig], object],
        interval: float = 1.0,
        on_reject: Callable[[str], object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self._digest = digest
        self._on_change = on_change
        self._on_reject = on_reject or (lambda _reason: None)
        self._unreadable = False

    def poll(self) -> bool:
        """Check once; True if a new valid config was handed over."""
        try:
            raw = _read(self.path)
        except ConfigFileError as exc:
            if not self._unreadable:  # say it once, not every second
                log.error("%s; the last good config stays in force", exc)
                self._unreadable = True
                self._on_reject(str(exc))
            return False
        if self._unreadable:
            self._unreadable = False
            self._digest = ""  # readable again: judge (and apply) what it holds afresh
        digest = _digest(raw)
        if digest == self._digest:
            return False
        self._digest = digest  # a bad file is reported once, not on every poll
        try:
            config = _parse_bytes(raw, str(self.path))
        except ConfigFileError as exc:
            log.error("new config rejected: %s; the last good config stays in force", exc)
            self._on_reject(str(exc))
            return False
        self._on_change(config)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll()
