"""The `durox` command: turning arguments and environment into a worker, into a replay
check of a store against an app before it is deployed (`durox replay-check`), or into the
management commands that read a store (`durox instances`, `versions`, `workers`,
`drain-report`, `queues`: `durox.cli._admin`, docs/cli.md), or into the web dashboard over
one (`durox dashboard`, `durox.dashboard`; imported only when asked for, since its server
libraries are an optional extra).

Arguments that a Deployment sets from a Secret or the downward API also read environment
variables (`DUROX_STORE_URL`, `DUROX_NODE_ID`), so the store password never has to appear in a
pod's command line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from durox.errors import DuroxError
from durox.replaycheck import (
    DEFAULT_MAX_HISTORIES,
    EXIT_INCOMPLETE,
    ReplayCheckError,
    replay_check,
    summary_bytes,
    summary_document,
)
from durox.worker import (
    App,
    AppLoadError,
    StoreUrlError,
    WorkerSettings,
    config_json_schema,
    configure_logging,
    load_app,
    open_existing_store,
    redacted,
    scrubbed,
    serve,
)

from . import _admin
from ._kubectl import main as kubectl_main

__all__ = ["kubectl_main", "main"]

CANNOT_RUN = EXIT_INCOMPLETE
"""`durox replay-check` exits 2 when it could not run (or not to the end)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durox", description="durox command line")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser(
        "worker",
        help="run a worker process",
        description="Run orchestrations and activities from an app against a store until "
        "SIGTERM. Exit status: 0 stopped cleanly, 1 failed, 2 bad app, config or store URL.",
    )
    w.add_argument(
        "--app",
        required=True,
        metavar="MODULE:ATTR",
        help="a durox.worker.App, or a function returning one (e.g. myapp.worker:app)",
    )
    w.add_argument(
        "--store",
        default=os.environ.get("DUROX_STORE_URL"),
        metavar="URL",
        help="sqlite:///PATH or postgresql://... (default: $DUROX_STORE_URL)",
    )
    w.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="worker config file, YAML or JSON, reloaded when it changes (docs/worker.md)",
    )
    w.add_argument(
        "--node-id",
        default=os.environ.get("DUROX_NODE_ID") or None,
        help="stable worker identity, e.g. the pod name (default: $DUROX_NODE_ID)",
    )
    w.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("DUROX_LOG_FORMAT", "text"),
        help="log line format (default: $DUROX_LOG_FORMAT or text)",
    )
    w.add_argument(
        "--log-level",
        default=os.environ.get("DUROX_LOG_LEVEL", "INFO"),
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )
    w.add_argument("--host", default="0.0.0.0", help="address for the HTTP endpoints")
    w.add_argument(
        "--app-dir",
        default=".",
        help="directory put first on sys.path before importing --app (default: .)",
    )
    sub.add_parser("config-schema", help="print the JSON schema of the worker config file")
    _replay_check_parser(sub)
    _admin.add_parsers(sub)
    _dashboard_parser(sub)
    return parser


def _dashboard_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser(
        "dashboard",
        help="serve a read-only web dashboard of a store",
        description="Serve a web dashboard of a store: instances (filtered by status, NAME, "
        "version, engine pin), each instance's executions and history, per-version counts over "
        "time, workers and the drain report. Read-only unless --allow-writes. Needs the "
        "dashboard extra: pip install 'durox[dashboard]'. Exit status: 0 stopped by SIGINT or "
        "SIGTERM, 2 could not run (bad store, port taken, extra missing).",
    )
    d.add_argument(
        "--store",
        default=os.environ.get("DUROX_STORE_URL"),
        metavar="URL",
        help="sqlite:///PATH or postgresql://... (default: $DUROX_STORE_URL); never created",
    )
    d.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; the dashboard has no login)",
    )
    d.add_argument("--port", type=int, default=8089, help="(default: 8089; 0: any free port)")
    d.add_argument(
        "--allow-writes",
        action="store_true",
        help="offer cancel and raise-event forms on instance pages (off by default)",
    )
    d.add_argument(
        "--public-url",
        type=_origin,
        metavar="URL",
        help="the scheme://host[:port] browsers use when a proxy stands in front (one that "
        "ends TLS, say): write forms posted from there are accepted as the dashboard's own",
    )
    d.add_argument(
        "--sample-every",
        type=_positive_float,
        default=15.0,
        metavar="SECONDS",
        help="how often the per-version counts are sampled for the chart (default: 15)",
    )
    d.add_argument(
        "--keep-hours",
        type=_positive_float,
        default=24.0,
        metavar="HOURS",
        help="how much of that sampled history is kept in memory (default: 24)",
    )


def _replay_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser(
        "replay-check",
        help="replay a store's histories against an app before deploying it",
        description="Replay a sample of the histories in a store (running executions, and those "
        "that ended recently) against an app's code with the pure engine: no activity runs, "
        "nothing is written. Exit status: 0 no divergence, 1 a divergence (or a version the app "
        "removed while executions still run on it), 2 could not run, or not to the end.",
    )
    r.add_argument("--app", required=True, metavar="MODULE:ATTR", help="the app to deploy")
    r.add_argument(
        "--store",
        default=os.environ.get("DUROX_STORE_URL"),
        metavar="URL",
        help="sqlite:///PATH or postgresql://... (default: $DUROX_STORE_URL); opened read-only",
    )
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument(
        "--max-histories",
        type=_positive_int,
        default=DEFAULT_MAX_HISTORIES,
        metavar="N",
        help=f"histories replayed per version at most (default: {DEFAULT_MAX_HISTORIES})",
    )
    r.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="deadline of the whole check, opening the store included (default: 300)",
    )
    r.add_argument(
        "--recent-hours",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="also replay executions that completed within this many hours; 0: only running "
        "ones (default: 24)",
    )
    r.add_argument(
        "--shared-store",
        action="store_true",
        help="other apps use this store too: orchestration NAMEs this app does not register at "
        "all are theirs, not removed",
    )
    r.add_argument(
        "--app-dir",
        default=".",
        help="directory put first on sys.path before importing --app (default: .)",
    )
    r.add_argument(
        "--summary-file",
        type=Path,
        metavar="PATH",
        help="also write a one-line JSON summary (at most 4096 bytes) here, whatever the "
        "outcome: the verdict, the exit status and the first divergence; in a Kubernetes Job, "
        "/dev/termination-log, so the result is read from the pod's status without its logs",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _origin(text: str) -> str:
    """A browser's Origin: scheme and host (and port), nothing after them."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            "must be http(s)://host[:port], e.g. https://durox.example"
        )
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise argparse.ArgumentTypeError(
            "must be http(s)://host[:port], e.g. https://durox.example"
        )
    return f"{parts.scheme}://{parts.netloc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config-schema":
        print(json.dumps(config_json_schema(), indent=2, sort_keys=True))
        return 0
    if args.command == "replay-check":
        return _replay_check(args)
    if args.command == "dashboard":
        return _dashboard(args)
    if getattr(args, "admin", None) is not None:
        return _admin.run(args)
    if not args.store:
        _parser().error("worker: --store is required when $DUROX_STORE_URL is not set")
    handler = configure_logging(args.log_format, args.log_level)
    settings = WorkerSettings(
        app=args.app,
        store_url=args.store,
        config_path=args.config,
        node_id=args.node_id,
        host=args.host,
        app_dir=args.app_dir,
    )
    return asyncio.run(serve(settings, handler))


def _replay_check(args: argparse.Namespace) -> int:
    if not args.store:
        return _cannot_run("--store is required when $DUROX_STORE_URL is not set", args)
    try:
        app = load_app(args.app, search_path=args.app_dir)
    except AppLoadError as exc:
        return _cannot_run(str(exc), args)
    return asyncio.run(_replay_check_store(args, app))


async def _replay_check_store(args: argparse.Namespace, app: App) -> int:
    url: str = args.store
    where = redacted(url)
    began = time.monotonic()
    try:
        store = await asyncio.wait_for(open_existing_store(url, timeout=args.timeout), args.timeout)
    except StoreUrlError as exc:
        return _cannot_run(scrubbed(str(exc), url), args)
    except TimeoutError:
        return _cannot_run(
            f"cannot open the store {where}: no answer within {args.timeout:g} s", args
        )
    except (DuroxError, OSError, ValueError) as exc:
        return _cannot_run(f"cannot open the store {where}: {scrubbed(str(exc), url)}", args)
    try:
        report = await replay_check(
            store,
            app,
            max_histories=args.max_histories,
            timeout=timedelta(seconds=max(args.timeout - (time.monotonic() - began), 0.001)),
            ended_within=timedelta(hours=args.recent_hours) if args.recent_hours > 0 else None,
            shared_store=args.shared_store,
        )
    except ReplayCheckError as exc:
        return _cannot_run(f"{where}: {scrubbed(str(exc), url)}", args)
    finally:
        await store.close()
    report = dataclasses.replace(report, timeout_seconds=args.timeout)  # opening included
    if args.json:
        print(json.dumps(report.to_json(store=where), indent=2))
    else:
        print(report.to_text(store=where))
    if report.exit_code != 0:
        print(f"durox replay-check: {report.verdict()}", file=sys.stderr)
    _write_summary(args, report.summary())
    return report.exit_code


def _cannot_run(message: str, args: argparse.Namespace | None = None) -> int:
    print(f"durox replay-check: {message}", file=sys.stderr)
    if args is not None:
        _write_summary(args, summary_document(exit_code=CANNOT_RUN, verdict=message))
    return CANNOT_RUN


def _write_summary(args: argparse.Namespace, summary: dict[str, object]) -> None:
    """Best effort: the exit status already says the outcome, so a summary that cannot be
    written is reported on stderr and changes nothing."""
    path: Path | None = args.summary_file
    if path is None:
        return
    try:
        path.write_bytes(summary_bytes(summary))
    except OSError as exc:
        print(f"durox replay-check: cannot write the summary to {path}: {exc}", file=sys.stderr)


def _dashboard(args: argparse.Namespace) -> int:
    if not args.store:
        print("durox dashboard: --store is required when $DUROX_STORE_URL is not set",
              file=sys.stderr)  # fmt: skip
        return CANNOT_RUN
    try:
        from durox.dashboard import DashboardSettings, serve
    except ImportError as exc:
        print(
            f"durox dashboard: {exc.name or exc} is not installed: pip install 'durox[dashboard]'",
            file=sys.stderr,
        )
        return CANNOT_RUN
    configure_logging("text", "INFO")
    settings = DashboardSettings(
        store_url=args.store,
        allow_writes=args.allow_writes,
        public_url=args.public_url,
        sample_every=args.sample_every,
        keep=max(1, int(args.keep_hours * 3600 / args.sample_every)),
    )
    return asyncio.run(serve(settings, args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
