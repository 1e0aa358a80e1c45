"""The worker process behind `durox worker`: what a Kubernetes pod runs.

The runtime is a library; this package is the one place that owns a process around it: it
reads the configuration file an operator writes (and re-reads it when the mounted ConfigMap is
swapped), serves probes and metrics over HTTP, formats logs, and turns SIGTERM into a graceful
shutdown. Nothing in the runtime imports it. See docs/worker.md.
"""

from durox.worker._app import App, AppLoadError, load_app
from durox.worker._config_file import (
    DRAIN_RANGE,
    ConfigFileError,
    ConfigWatcher,
    LiveConfig,
    config_json_schema,
    needs_restart,
    parse_config,
    read_config,
    requested_replay_range,
    runtime_options,
    version_policies,
)
from durox.worker._logging import JsonFormatter, TextFormatter, configure_logging
from durox.worker._metrics import WorkerMetrics
from durox.worker._store import (
    StoreUrlError,
    open_existing_store,
    open_store,
    redacted,
    scrubbed,
)
from durox.worker._worker import Worker, WorkerSettings, serve
from durox.worker_config import RESTART_FIELDS

__all__ = [
    "DRAIN_RANGE",
    "RESTART_FIELDS",
    "App",
    "AppLoadError",
    "ConfigFileError",
    "ConfigWatcher",
    "JsonFormatter",
    "LiveConfig",
    "StoreUrlError",
    "TextFormatter",
    "Worker",
    "WorkerMetrics",
    "WorkerSettings",
    "config_json_schema",
    "configure_logging",
    "load_app",
    "needs_restart",
    "open_existing_store",
    "open_store",
    "parse_config",
    "read_config",
    "redacted",
    "requested_replay_range",
    "runtime_options",
    "scrubbed",
    "serve",
    "version_policies",
]
