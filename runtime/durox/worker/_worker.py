"""One worker process: an app, a store, a runtime, a config file, and the HTTP endpoints.

The order of start-up is chosen for Kubernetes. The HTTP server comes up first, so the
liveness probe passes while the store is still unreachable (a database that starts after the
workers is normal, and restarting the pod would not help); readiness follows only once the
store answered and the runtime runs. Shutdown is the reverse: readiness drops first, the
runtime stops fetching and lets in-flight work finish within the grace period, what is left is
released without counting an attempt so another worker takes it at once, and the runtime
removes its capability record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from durox.core.compat import CURRENT_ENGINE
from durox.errors import ConfigurationError, DuroxError
from durox.providers._base import Store
from durox.runtime import Runtime
from durox.worker._app import App, load_app
from durox.worker._config_file import (
    ConfigWatcher,
    LiveConfig,
    read_config,
    runtime_options,
    version_policies,
)
from durox.worker._http import HttpServer, Response
from durox.worker._logging import DefaultFields
from durox.worker._metrics import CONTENT_TYPE, WorkerMetrics
from durox.worker._store import StoreUrlError, open_store, redacted
from durox.worker_config import WorkerConfig

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
"""A permanent problem (app, config, store URL): restarting the same pod will not fix it."""

PROBE_ID = "durox-readyz-probe"
PROBE_TIMEOUT = 2.0
PROBE_CACHE = 2.0


@dataclass(frozen=True)
class WorkerSettings:
    """What the command line decides; everything else comes from the config file."""

    app: str
    store_url: str
    config_path: Path | None = None
    node_id: str | None = None
    host: str = "0.0.0.0"
    reload_interval: float = 1.0
    app_dir: str | None = "."


class Worker:
    """`exit_code = await Worker(settings).run()`; `request_stop()` ends it gracefully."""

    def __init__(
        self,
        settings: WorkerSettings,
        app: App | None = None,
        log_handler: logging.Handler | None = None,
    ) -> None:
        self.settings = settings
        self._log_handler = log_handler
        self.metrics = WorkerMetrics()
        self.ready = asyncio.Event()
        self.runtime: Runtime | None = None
        self.live: LiveConfig | None = None
        self._app = app
        self._stop = asyncio.Event()
        self._http: HttpServer | None = None
        self._provider: Store | None = None
        self._serving = False
        self._probe_at = 0.0
        self._probe_ok = False

    @property
    def port(self) -> int:
        """The bound HTTP port (useful when the config asks for 0, an ephemeral port)."""
        assert self._http is not None, "the HTTP server is not running"
        return self._http.port

    def request_stop(self) -> None:
        if self._stop.is_set():
            log.info("already stopping; in-flight work is released when the grace period ends")
        self._stop.set()

    async def run(self) -> int:
        try:
            config, digest = self._load_config()
            app = self._app or load_app(self.settings.app, search_path=self.settings.app_dir)
        except ConfigurationError as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        try:
            self._http = await HttpServer.start(
                self.settings.host,
                config.http_port,
                {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics},
            )
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", self.settings.host, config.http_port, exc)
            return EXIT_FAILED
        log.info("serving /healthz, /readyz and /metrics on %s:%d", self.settings.host, self.port)
        try:
            return await self._run(config, digest, app)
        finally:
            await self._http.close()

    def _load_config(self) -> tuple[WorkerConfig, str]:
        path = self.settings.config_path
        if path is None:
            return WorkerConfig(), ""
        config, digest = read_config(path)
        log.info("config %s read: revision %s", path, config.revision)
        return config, digest

    async def _run(self, config: WorkerConfig, digest: str, app: App) -> int:
        try:
            provider = await self._connect()
        except (ConfigurationError, OSError, ValueError) as exc:
            log.error("cannot open the store %s: %s", redacted(self.settings.store_url), exc)
            return EXIT_CONFIG
        except DuroxError as exc:
            log.error("cannot open the store %s: %s", redacted(self.settings.store_url), exc)
            return EXIT_FAILED
        if provider is None:
            return EXIT_OK  # asked to stop before the store answered
        self._provider = provider
        try:
            return await self._serve(provider, config, digest, app)
        finally:
            self._provider = None
            await provider.close()

    async def _connect(self) -> Store | None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                return await open_store(self.settings.store_url)
            except StoreUrlError:
                raise
            except DuroxError as exc:
                if not exc.retryable:
                    raise
                log.warning(
                    "store %s unreachable (%s); retrying in %.1f s",
                    redacted(self.settings.store_url),
                    exc,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, 30.0)
        return None

    async def _serve(self, provider: Store, config: WorkerConfig, digest: str, app: App) -> int:
        reg = app.orchestrations
        defaults = {name: reg.policy(name) for name in reg.names()}
        try:
            orchestrations = reg.with_policies(version_policies(config, defaults))
            options = runtime_options(config, self.settings.node_id)
        except ConfigurationError as exc:
            log.error("config revision %s does not fit this app: %s", config.revision, exc)
            return EXIT_CONFIG
        try:
            runtime = await Runtime.start(
                provider, app.activities, orchestrations, options, observer=self.metrics
            )
        except DuroxError as exc:
            log.error("the runtime could not start: %s", exc)
            return EXIT_FAILED
        self.runtime = runtime
        tag = DefaultFields(worker_id=runtime.worker_id)
        if self._log_handler is not None:
            self._log_handler.addFilter(tag)
        live = self.live = LiveConfig(runtime, config, defaults, config)
        runtime.reconfigure(revision=config.revision)
        self._show_identity()
        watcher: asyncio.Task[None] | None = None
        if self.settings.config_path is not None:
            watch = ConfigWatcher(
                self.settings.config_path,
                digest,
                self._reload,
                self.settings.reload_interval,
                on_reject=self._config_rejected,
            )
            watcher = asyncio.create_task(watch.run(), name="durox-config-watch")
        try:
            self._serving = True
            self.ready.set()
            log.info(
                "worker %s ready: pool %s, config revision %s, %d orchestration NAMEs, "
                "%d activities",
                runtime.worker_id,
                config.pool,
                config.revision,
                len(reg.names()),
                len(app.activities.names()),
                extra={"worker_id": runtime.worker_id},
            )
            await self._stop.wait()
        finally:
            self._serving = False
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            grace = live.current.shutdown_grace_seconds
            log.info("stopping: no new work is fetched; in-flight work has %.0f s to finish", grace)
            await runtime.shutdown(timeout=grace)
            if self._log_handler is not None:
                self._log_handler.removeFilter(tag)
        return EXIT_OK

    def _reload(self, config: WorkerConfig) -> None:
        assert self.live is not None
        if self.live.apply(config):
            self._show_identity()
            self._config_rejected(None)
        else:
            self._config_rejected(self.live.rejected)

    def _config_rejected(self, reason: str | None) -> None:
        """A rejected config stays visible (metric, capability record) until one applies; the
        worker stays ready, since the last good revision still serves."""
        self.metrics.set_config_rejected(reason is not None)
        if self.runtime is not None:
            self.runtime.report_config_rejected(reason)

    def _show_identity(self) -> None:
        assert self.runtime is not None
        self.metrics.set_identity(
            self.runtime.worker_id,
            self.runtime.options.pool,
            CURRENT_ENGINE.version,
            self.runtime.config_revision,
        )

    # -- endpoints ------------------------------------------------------------------------

    async def _healthz(self) -> Response:
        return Response(200, b"ok\n")

    async def _readyz(self) -> Response:
        if not self._serving:
            why = b"stopping\n" if self._stop.is_set() else b"starting\n"
            return Response(503, b"not ready: " + why)
        if not await self._store_reachable():
            return Response(503, b"not ready: the store does not answer\n")
        return Response(200, b"ready\n")

    async def _store_reachable(self) -> bool:
        now = time.monotonic()
        if now - self._probe_at < PROBE_CACHE:
            return self._probe_ok
        provider = self._provider
        if provider is None:
            return False
        try:
            await asyncio.wait_for(provider.get_instance(PROBE_ID), PROBE_TIMEOUT)
            ok = True
        except (DuroxError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {PROBE_TIMEOUT:.0f} s"
            log.warning("readiness probe: the store does not answer: %s", why)
            ok = False
        self._probe_at, self._probe_ok = time.monotonic(), ok
        return ok

    async def _metrics(self) -> Response:
        provider = self._provider
        if provider is not None:
            try:
                depths = await asyncio.wait_for(provider.queue_depths(), PROBE_TIMEOUT)
            except (DuroxError, TimeoutError) as exc:
                log.warning("metrics: queue depths unavailable: %s", exc)
            else:
                self.metrics.set_queue_depths(depths)
        return Response(200, self.metrics.render(), CONTENT_TYPE)


async def serve(settings: WorkerSettings, log_handler: logging.Handler | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT, then stop it gracefully. `log_handler` (from
    `configure_logging`) gets the worker id added to every record that lacks one."""
    worker = Worker(settings, log_handler=log_handler)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, _on_signal, worker, sig)
    try:
        code = await worker.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    log.info("worker exiting with status %d", code)
    return code


def _on_signal(worker: Worker, sig: signal.Signals) -> None:
    log.info("received %s", sig.name)
    worker.request_stop()
