"""`kubectl durox status REGISTRY`: an OrchestrationRegistry's status beside what its store
says (versions in use, worker records), for the person who starts from `kubectl get oreg`.

It stays thin on purpose: it asks `kubectl` itself for the resource and its store Secret (so
the user's kubeconfig, context, credentials and RBAC apply unchanged, and no Kubernetes client
library is needed), then reads the store exactly as `durox versions` and `durox workers` do.
It prefers the Secret the operator reads (`spec.store.operatorSecretRef`, a read-only role)
over the workers' one. The store URL is never printed: errors show it redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from durox.client import Client
from durox.errors import DuroxError
from durox.providers import Store, StoreObservation
from durox.worker import StoreUrlError, open_existing_store, redacted, scrubbed

from ._admin import versions_json, versions_text, worker_json, workers_text
from ._table import table

OK, NOT_FOUND, CANNOT_RUN = 0, 1, 2
RESOURCE = "orchestrationregistries.durox.dev"
PROG = "kubectl durox"


class _Failed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="durox, seen from kubectl. Exit status: 0 done, 1 no such registry or "
        "Secret, 2 could not run (kubectl failed, the store did not open).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "status",
        help="a registry's status, its store's versions and its workers",
        description="The OrchestrationRegistry's conditions and versions, beside the store's "
        "instances per NAME@version and the pool's worker records. The store URL comes from "
        "the registry's store Secret (operatorSecretRef if set, else secretRef).",
    )
    s.add_argument("registry", metavar="REGISTRY")
    s.add_argument("-n", "--namespace", help="the registry's namespace (default: kubectl's)")
    s.add_argument("--context", help="the kubeconfig context (default: kubectl's)")
    s.add_argument("--kubeconfig", help="the kubeconfig file (default: kubectl's)")
    s.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="(default: table)"
    )
    s.add_argument(
        "--stale-after", type=float, default=30.0, metavar="SECONDS", help="(default: 30)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        registry = _kubectl_json(args, "get", RESOURCE, args.registry)
        namespace = registry["metadata"]["namespace"]
        url = _store_url(args, registry, namespace)
        seen = asyncio.run(_observe(url, _pool(registry), args.stale_after))
    except _Failed as exc:
        print(f"{PROG} status: {exc}", file=sys.stderr)
        return exc.code
    status: dict[str, Any] = registry.get("status") or {}
    store_versions = versions_json(seen)
    if args.output == "json":
        document = {
            "registry": {"name": args.registry, "namespace": namespace, "status": status},
            "pool": seen.pool,
            "store": store_versions,
            "workers": [worker_json(w) for w in seen.workers],
        }
        print(json.dumps(document, indent=2, sort_keys=True))
        return OK
    print(_status_text(args.registry, namespace, status))
    print(f"\nIn the store (pool {seen.pool}):\n")
    print(versions_text(store_versions))
    print()
    print(workers_text(seen.workers))
    return OK


def _status_text(name: str, namespace: str, status: dict[str, Any]) -> str:
    head = [
        ("registry", f"{namespace}/{name}"),
        ("workers", status.get("workers")),
        ("active versions", status.get("activeVersions")),
        ("oldest versions", status.get("oldestVersions")),
        ("instances", status.get("instances")),
    ]
    lines = "\n".join(f"{k + ':':<17}{'-' if v is None else v}" for k, v in head)
    conditions = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    ]
    versions = [
        (v.get("name"), v.get("active"), v.get("desired"), v.get("running"))
        for v in status.get("versions") or []
    ]
    return (
        f"{lines}\n\n{table(('CONDITION', 'STATUS', 'REASON', 'MESSAGE'), conditions)}\n\n"
        f"{table(('NAME', 'ACTIVE', 'DESIRED', 'RUNNING'), versions)}"
    )


def _pool(registry: dict[str, Any]) -> str:
    pool = registry.get("spec", {}).get("pool")
    return str(pool) if pool else str(registry["metadata"]["name"])


def _store_url(args: argparse.Namespace, registry: dict[str, Any], namespace: str) -> str:
    store = registry.get("spec", {}).get("store", {})
    ref = store.get("operatorSecretRef") or store.get("secretRef")
    if not ref or not ref.get("name"):
        raise _Failed(f"registry {args.registry!r} names no store Secret", NOT_FOUND)
    key = ref.get("key") or "url"
    secret = _kubectl_json(args, "get", "secret", ref["name"], namespace=namespace)
    value = (secret.get("data") or {}).get(key)
    if value is None:
        raise _Failed(f"Secret {ref['name']!r} has no key {key!r}", NOT_FOUND)
    try:
        return base64.b64decode(value).decode().strip()
    except ValueError:
        raise _Failed(f"Secret {ref['name']!r} key {key!r} is not a URL", CANNOT_RUN) from None


def _kubectl_json(
    args: argparse.Namespace, *command: str, namespace: str | None = None
) -> dict[str, Any]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise _Failed("kubectl is not on PATH", CANNOT_RUN)
    argv = [kubectl, *command, "-o", "json"]
    for flag, value in (
        ("--namespace", namespace or args.namespace),
        ("--context", args.context),
        ("--kubeconfig", args.kubeconfig),
    ):
        if value:
            argv.append(f"{flag}={value}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        code = NOT_FOUND if "NotFound" in said[0] or "not found" in said[0] else CANNOT_RUN
        raise _Failed(f"kubectl {' '.join(command)}: {said[0]}", code)
    found: dict[str, Any] = json.loads(result.stdout)
    return found


async def _observe(url: str, pool: str, stale_after: float) -> StoreObservation:
    where = redacted(url)
    try:
        store: Store = await asyncio.wait_for(open_existing_store(url, timeout=30), 30)
    except StoreUrlError as exc:
        raise _Failed(scrubbed(str(exc), url), CANNOT_RUN) from None
    except TimeoutError:
        raise _Failed(f"cannot open the store {where}: no answer", CANNOT_RUN) from None
    except (DuroxError, OSError, ValueError) as exc:
        message = f"cannot open the store {where}: {scrubbed(str(exc), url)}"
        raise _Failed(message, CANNOT_RUN) from None
    try:
        return await Client(store).observe_store(pool, stale_after=timedelta(seconds=stale_after))
    except DuroxError as exc:
        raise _Failed(f"{where}: {scrubbed(str(exc), url)}", CANNOT_RUN) from None
    finally:
        await store.close()
