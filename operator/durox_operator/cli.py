"""`durox-operator run`: the operator's process entry.

Replicas elect a leader on a Lease (`--lease NAME`): only the holder reconciles, the others
watch and stand by (`durox_operator.election`). Without `--lease` the process acts alone, as
the only replica. `--peering NAME` is kopf's own way to pause all but one replica (it needs
kopf's peering CRDs installed); it is no lease, and the Lease is the recommended way.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import uuid


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durox-operator")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator until interrupted")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="coordinate replicas through kopf peering NAME instead of running standalone",
    )
    run.add_argument(
        "--lease",
        metavar="NAME",
        default=None,
        help="elect a leader on the coordination.k8s.io Lease NAME; only the leader reconciles",
    )
    run.add_argument(
        "--lease-namespace",
        metavar="NS",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    run.add_argument(
        "--lease-seconds",
        type=float,
        default=15.0,
        help="a leader that stops renewing is replaced after this long (default 15)",
    )
    run.add_argument(
        "--identity",
        default=None,
        help="this replica's name in the Lease (default: host name and a random suffix)",
    )
    run.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8081/healthz",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        help="reconcile every registry this often, besides on events (default 300)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics on this port (default 0: not served)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import kopf

    import durox_operator.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(
            namespaces=list(args.namespace),
            resync_seconds=args.resync_seconds,
            lease=args.lease,
            lease_namespace=args.lease_namespace,
            lease_seconds=args.lease_seconds,
            identity=args.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
            metrics_port=args.metrics_port,
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
