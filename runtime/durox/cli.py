"""The `durox` command. Its only job is turning arguments and environment into a worker.

Arguments that a Deployment sets from a Secret or the downward API also read environment
variables (`DUROX_STORE_URL`, `DUROX_NODE_ID`), so the store password never has to appear in a
pod's command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from durox.worker import WorkerSettings, config_json_schema, configure_logging, serve


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config-schema":
        print(json.dumps(config_json_schema(), indent=2, sort_keys=True))
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
