"""`durox instances ...`, `durox versions`, `durox workers`, `durox drain-report`,
`durox queues`: looking at a store, and the few explicit writes an operator needs at 3 a.m.

Each command opens an existing store the way `durox replay-check` does (nothing is created or
migrated), prints a table or, with `-o json`, a JSON document whose field names are documented
in docs/cli.md, and exits 0 when it did what was asked, 1 when what it was asked about is not
there (or refused, e.g. deleting a running instance), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from durox.client import Client
from durox.core import events as ev
from durox.core.versions import SemverRange
from durox.errors import (
    ConfigurationError,
    DuroxError,
    InstanceNotFoundError,
    InstanceRunningError,
)
from durox.providers import ExecutionInfo, InstanceInfo, ObservedWorker, Store, StoreObservation
from durox.status import InstanceStatus
from durox.worker import StoreUrlError, open_existing_store, redacted, scrubbed

from ._table import table

OK, NOT_FOUND, CANNOT_RUN = 0, 1, 2
OPEN_TIMEOUT = 30.0

Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


class _NotFound(Exception):
    """What the command was asked about is not in the store (exit 1)."""


# -- parsers -------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inst = sub.add_parser(
        "instances",
        help="list, show and manage orchestration instances",
        description="Read instances from a store; raise, cancel, delete and prune write to it. "
        + _EXITS,
    )
    isub = inst.add_subparsers(dest="action", required=True)

    ls = _command(isub, "list", _list, "list instances, oldest first")
    ls.add_argument("--status", help="Running, Completed, Failed, Cancelled or ContinuedAsNew")
    ls.add_argument("--name", help="orchestration NAME")
    ls.add_argument("--version", help="orchestration version (with or without --name)")
    ls.add_argument("--pin", help="engine version the instances are pinned to")
    ls.add_argument(
        "--created-after", type=_time, metavar="TIME", help="ISO 8601, included (UTC if no zone)"
    )
    ls.add_argument(
        "--created-before", type=_time, metavar="TIME", help="ISO 8601, excluded (UTC if no zone)"
    )
    ls.add_argument("--limit", type=_positive_int, default=100, help="at most N (default: 100)")
    ls.add_argument(
        "--offset", type=_not_negative_int, default=0, help="skip the first N (default: 0)"
    )

    show = _command(isub, "show", _show, "an instance, its executions and custom status")
    show.add_argument("instance_id", metavar="ID")

    hist = _command(isub, "history", _history, "an execution's history, one event a line")
    hist.add_argument("instance_id", metavar="ID")
    hist.add_argument(
        "--execution", type=_positive_int, metavar="N", help="execution id (default: current)"
    )

    raise_ = _command(
        isub, "raise", _raise, "WRITES: raise an external event on a running instance"
    )
    raise_.add_argument("instance_id", metavar="ID")
    raise_.add_argument("event", metavar="EVENT", help="the event name the orchestration waits on")
    raise_.add_argument(
        "data", metavar="DATA", nargs="?", type=_json_value, help="JSON payload (default: null)"
    )

    cancel = _command(isub, "cancel", _cancel, "WRITES: cancel an instance and its children")
    cancel.add_argument("instance_id", metavar="ID")
    cancel.add_argument("--reason", default="cancelled from the durox command line")

    delete = _command(
        isub, "delete", _delete, "WRITES: delete a finished instance, its history and children"
    )
    delete.add_argument("instance_id", metavar="ID")
    delete.add_argument(
        "--force", action="store_true", help="delete even if something in it still runs"
    )

    prune = _command(
        isub, "prune", _prune, "WRITES: drop all but the newest executions of an instance"
    )
    prune.add_argument("instance_id", metavar="ID")
    prune.add_argument(
        "--keep-last", type=_positive_int, default=1, metavar="N", help="(default: 1)"
    )

    v = _command(sub, "versions", _versions, "per NAME@version and engine pin: running, failed")
    v.add_argument(
        "--failed-since-hours",
        type=float,
        default=1.0,
        metavar="H",
        help="count failures of the last H hours (default: 1)",
    )
    w = _command(sub, "workers", _workers, "worker capability records with heartbeat age")
    w.add_argument("--pool", help="only this pool's workers")
    w.add_argument(
        "--stale-after", type=float, default=30.0, metavar="SECONDS", help="(default: 30)"
    )
    d = _command(sub, "drain-report", _drain, "instances pinned outside an engine range")
    d.add_argument("--min", default="0.0.0", help="lowest engine version kept (default: 0.0.0)")
    d.add_argument("--max", help="highest engine version kept (default: this engine)")
    _command(sub, "queues", _queues, "queue depths: ready, delayed, locked")


_EXITS = "Exit status: 0 done, 1 not found or refused, 2 could not run (bad store or arguments)."


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Command,
    help: str,
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=f"{help[0].upper()}{help[1:]}. {_EXITS}")
    p.add_argument(
        "--store",
        default=os.environ.get("DUROX_STORE_URL"),
        metavar="URL",
        help="sqlite:///PATH or postgresql://... (default: $DUROX_STORE_URL); never created",
    )
    p.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="(default: table)"
    )
    p.set_defaults(admin=run, prog=p.prog)
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _not_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an ISO 8601 time, e.g. 2026-11-29T23:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}); quote a string: '\"text\"'") from None


# -- running -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    prog: str = args.prog
    url: str | None = args.store
    if not url:
        return _fail(prog, "--store is required when $DUROX_STORE_URL is not set", CANNOT_RUN)
    where = redacted(url)
    try:
        store: Store = await asyncio.wait_for(
            open_existing_store(url, timeout=OPEN_TIMEOUT), OPEN_TIMEOUT
        )
    except StoreUrlError as exc:
        return _fail(prog, scrubbed(str(exc), url), CANNOT_RUN)
    except TimeoutError:
        return _fail(prog, f"cannot open the store {where}: no answer", CANNOT_RUN)
    except (DuroxError, OSError, ValueError) as exc:
        return _fail(prog, f"cannot open the store {where}: {scrubbed(str(exc), url)}", CANNOT_RUN)
    try:
        command: Command = args.admin
        return await command(Client(store), args)
    except (_NotFound, InstanceNotFoundError, InstanceRunningError) as exc:
        return _fail(prog, scrubbed(str(exc), url), NOT_FOUND)
    except ConfigurationError as exc:
        return _fail(prog, scrubbed(str(exc), url), CANNOT_RUN)
    except DuroxError as exc:
        return _fail(prog, f"{where}: {scrubbed(str(exc), url)}", CANNOT_RUN)
    finally:
        await store.close()


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def _emit(args: argparse.Namespace, document: Any, text: Callable[[], str]) -> int:
    if args.output == "json":
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(text())
    return OK


async def _instance(client: Client, instance_id: str) -> InstanceInfo:
    info = await client.provider.get_instance(instance_id)
    if info is None:
        raise _NotFound(f"no instance {instance_id!r}")
    return info


# -- instances -----------------------------------------------------------------------------


async def _list(client: Client, args: argparse.Namespace) -> int:
    found = await client.list_instances(
        status=args.status,
        name=args.name,
        version=args.version,
        pin=args.pin,
        created_after=args.created_after,
        created_before=args.created_before,
        limit=args.limit,
        offset=args.offset,
    )
    more = args.offset + len(found) if len(found) == args.limit else None
    rows = [
        (
            i.instance_id,
            f"{i.orchestration_name}@{i.orchestration_version}",
            i.status,
            i.pinned_engine_version,
            _when(i.created_at),
            _when(i.updated_at),
        )
        for i in found
    ]
    headers = ("ID", "NAME@VERSION", "STATUS", "PIN", "CREATED", "UPDATED")
    doc = {"instances": [instance_json(i) for i in found], "next_offset": more}
    hint = "" if more is None else f"\n(more may follow: --offset {more})"
    return _emit(args, doc, lambda: table(headers, rows) + hint)


async def _show(client: Client, args: argparse.Namespace) -> int:
    info = await _instance(client, args.instance_id)
    executions = await client.list_executions(info.instance_id)
    doc = {**instance_json(info), "executions": [execution_json(e) for e in executions]}

    def text() -> str:
        fields = [
            ("instance", info.instance_id),
            ("orchestration", f"{info.orchestration_name}@{info.orchestration_version}"),
            ("status", info.status),
            ("engine pin", info.pinned_engine_version),
            ("execution", info.current_execution_id),
            ("created", _when(info.created_at)),
            ("updated", _when(info.updated_at)),
            ("parent", info.parent_instance_id),
            ("custom status", _optional(info.custom_status)),
            ("output", _optional(info.output)),
            ("error", info.error),
        ]
        head = "\n".join(f"{k + ':':<15}{'-' if v is None else v}" for k, v in fields)
        rows = [
            (
                e.execution_id,
                e.orchestration_version,
                e.status,
                e.engine_version,
                e.event_count,
                _when(e.started_at),
                _when(e.completed_at),
            )
            for e in executions
        ]
        headers = ("EXECUTION", "VERSION", "STATUS", "ENGINE", "EVENTS", "STARTED", "COMPLETED")
        return f"{head}\n\n{table(headers, rows)}"

    return _emit(args, doc, text)


async def _history(client: Client, args: argparse.Namespace) -> int:
    info = await _instance(client, args.instance_id)
    execution: int = args.execution or info.current_execution_id
    known = {e.execution_id for e in await client.list_executions(info.instance_id)}
    if execution not in known:
        raise _NotFound(f"instance {info.instance_id!r} has no execution {execution}")
    events = await client.read_execution_history(info.instance_id, execution)
    doc = {
        "instance_id": info.instance_id,
        "execution_id": execution,
        "events": [event_json(e) for e in events],
    }
    return _emit(args, doc, lambda: "\n".join(event_line(e) for e in events))


async def _raise(client: Client, args: argparse.Namespace) -> int:
    info = await _instance(client, args.instance_id)
    await client.raise_event(info.instance_id, args.event, args.data)
    doc = {"instance_id": info.instance_id, "event": args.event, "raised": True}
    return _emit(args, doc, lambda: f"raised {args.event!r} on {info.instance_id}")


async def _cancel(client: Client, args: argparse.Namespace) -> int:
    info = await _instance(client, args.instance_id)
    await client.cancel_instance(info.instance_id, args.reason)
    doc = {"instance_id": info.instance_id, "cancel_requested": True}
    return _emit(args, doc, lambda: f"cancel requested for {info.instance_id}")


async def _delete(client: Client, args: argparse.Namespace) -> int:
    try:
        deleted = await client.delete_instance(args.instance_id, force=args.force)
    except InstanceRunningError:
        raise _NotFound(
            f"instance {args.instance_id!r} (or a sub-orchestration of it) is still running: "
            "not deleted (--force deletes it anyway)"
        ) from None
    doc = {"instance_id": args.instance_id, "deleted_instances": deleted}
    return _emit(args, doc, lambda: f"deleted {args.instance_id} ({deleted} instance(s))")


async def _prune(client: Client, args: argparse.Namespace) -> int:
    info = await _instance(client, args.instance_id)
    pruned = await client.prune_executions(info.instance_id, keep_last=args.keep_last)
    doc = {"instance_id": info.instance_id, "pruned_executions": pruned}
    return _emit(args, doc, lambda: f"pruned {pruned} execution(s) of {info.instance_id}")


# -- the store as a whole ------------------------------------------------------------------


async def _versions(client: Client, args: argparse.Namespace) -> int:
    since = datetime.now(UTC) - timedelta(hours=args.failed_since_hours)
    doc = versions_json(await client.observe_store(failed_since=since))
    return _emit(args, doc, lambda: versions_text(doc))


def versions_json(seen: StoreObservation) -> dict[str, Any]:
    """`durox versions -o json` of one observation (docs/cli.md)."""
    failures = {(f.orchestration_name, f.orchestration_version): f for f in seen.failures}
    keys = sorted(
        {(v.orchestration_name, v.orchestration_version) for v in seen.versions} | set(failures)
    )
    versions = []
    for name, version in keys:
        usage, failure = seen.usage(name, version), failures.get((name, version))
        versions.append(
            {
                "name": name,
                "version": version,
                "running": usage.instances if usage else 0,
                "by_pin": {_pin(p): n for p, n in usage.by_pin.items()} if usage else {},
                "oldest_instance_id": usage.oldest_instance_id if usage else None,
                "oldest_created_at": _iso(usage.oldest_created_at) if usage else None,
                "failed": failure.failed if failure else 0,
                "poisoned": failure.poisoned if failure else 0,
            }
        )
    pins = [{"pin": _pin(p), "running": n} for p, n in sorted(seen.by_pin.items(), key=_pin_key)]
    return {
        "observed_at": _iso(seen.observed_at),
        "failed_since": _iso(seen.failed_since),
        "versions": versions,
        "pins": pins,
    }


def versions_text(doc: dict[str, Any]) -> str:
    rows = [
        (
            f"{v['name']}@{v['version']}",
            v["running"],
            v["failed"],
            v["poisoned"],
            v["oldest_instance_id"],
            v["oldest_created_at"],
        )
        for v in doc["versions"]
    ]
    headers = ("NAME@VERSION", "RUNNING", "FAILED", "POISONED", "OLDEST", "OLDEST CREATED")
    pin_rows = [(p["pin"], p["running"]) for p in doc["pins"]]
    return f"{table(headers, rows)}\n\n{table(('ENGINE PIN', 'RUNNING'), pin_rows)}"


async def _workers(client: Client, args: argparse.Namespace) -> int:
    seen = await client.observe_store(args.pool, stale_after=timedelta(seconds=args.stale_after))
    workers = [worker_json(w) for w in seen.workers]
    return _emit(args, {"workers": workers}, lambda: workers_text(seen.workers))


def workers_text(workers: Sequence[ObservedWorker]) -> str:
    rows = [
        (
            w.record.worker_id,
            w.record.node_id,
            w.record.pool,
            w.record.engine_version,
            f"{w.record.replay_min}..{w.record.replay_max}",
            " ".join(f"{n}@{v}" for n, vs in sorted(_versions_of(w).items()) for v in vs),
            w.record.config_revision,
            f"{w.heartbeat_age.total_seconds():.0f}s",
            "live" if w.live else "stale",
        )
        for w in workers
    ]
    headers = ("WORKER", "NODE", "POOL", "ENGINE", "REPLAY", "VERSIONS", "CONFIG", "AGE", "STATE")
    return table(headers, rows)


async def _drain(client: Client, args: argparse.Namespace) -> int:
    wanted = SemverRange(args.min, args.max) if args.max else None
    report = await client.get_drain_report(wanted)
    entries = [
        {
            "name": e.orchestration_name,
            "pin": e.pinned_engine_version,
            "running": e.running_instances,
            "queued_messages": e.queued_messages,
            "max_attempt_count": e.max_attempt_count,
            "poisoned": e.poisoned_instances,
        }
        for e in report.entries
    ]
    doc = {
        "range": {"min": str(report.range.min), "max": str(report.range.max)},
        "complete": report.complete,
        "entries": entries,
    }

    def text() -> str:
        rows = [tuple(e.values()) for e in entries]
        headers = ("NAME", "PIN", "RUNNING", "QUEUED", "MAX ATTEMPTS", "POISONED")
        verdict = "complete" if report.complete else "not complete"
        span = f"{report.range.min}..{report.range.max}"
        return f"pinned outside engine {span}: drain {verdict}\n" + table(headers, rows)

    return _emit(args, doc, text)


async def _queues(client: Client, args: argparse.Namespace) -> int:
    q = await client.get_queue_depths()
    doc = {
        "orchestrator": {
            "ready": q.orchestrator_ready,
            "delayed": q.orchestrator_delayed,
            "locked": q.orchestrator_locked,
        },
        "worker": {"ready": q.worker_ready, "delayed": q.worker_delayed, "locked": q.worker_locked},
    }
    rows = [(k, v["ready"], v["delayed"], v["locked"]) for k, v in doc.items()]
    return _emit(args, doc, lambda: table(("QUEUE", "READY", "DELAYED", "LOCKED"), rows))


# -- JSON shapes (docs/cli.md) -------------------------------------------------------------


def instance_json(i: InstanceInfo) -> dict[str, Any]:
    return {
        "instance_id": i.instance_id,
        "name": i.orchestration_name,
        "version": i.orchestration_version,
        "status": InstanceStatus(i.status).value,
        "execution_id": i.current_execution_id,
        "pin": i.pinned_engine_version,
        "created_at": _iso(i.created_at),
        "updated_at": _iso(i.updated_at),
        "parent_instance_id": i.parent_instance_id,
        "custom_status": i.custom_status,
        "output": i.output,
        "error": msgspec.to_builtins(i.error) if i.error else None,
    }


def execution_json(e: ExecutionInfo) -> dict[str, Any]:
    return {
        "execution_id": e.execution_id,
        "version": e.orchestration_version,
        "status": InstanceStatus(e.status).value,
        "engine_version": e.engine_version,
        "event_count": e.event_count,
        "started_at": _iso(e.started_at),
        "completed_at": _iso(e.completed_at) if e.completed_at else None,
        "output": e.output,
    }


def event_json(event: ev.Event) -> dict[str, Any]:
    """`kind` (the event class) and the event's own fields, as the store encodes them."""
    raw: dict[str, Any] = msgspec.to_builtins(event)
    return {"kind": raw.pop("k"), **raw}


def event_line(event: ev.Event) -> str:
    raw = event_json(event)
    kind, event_id, ts = raw.pop("kind"), raw.pop("event_id"), raw.pop("ts", None)
    when = _iso(datetime.fromtimestamp(ts / 1000, UTC)) if isinstance(ts, int) else "-"
    rest = " ".join(
        f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in raw.items() if v is not None
    )
    return f"{event_id:>5}  {when}  {kind:<28} {rest}".rstrip()


def worker_json(w: ObservedWorker) -> dict[str, Any]:
    r = w.record
    return {
        "worker_id": r.worker_id,
        "node_id": r.node_id,
        "pool": r.pool,
        "engine_version": r.engine_version,
        "replay_min": r.replay_min,
        "replay_max": r.replay_max,
        "orchestrations": r.orchestrations,
        "activities": list(r.activities),
        "session_activities": list(r.session_activities),
        "config_revision": r.config_revision,
        "config_rejected": r.config_rejected,
        "started_at": _iso(r.started_at),
        "heartbeat_at": _iso(r.heartbeat_at),
        "heartbeat_age_seconds": round(w.heartbeat_age.total_seconds(), 3),
        "live": w.live,
    }


def _versions_of(w: ObservedWorker) -> dict[str, list[str]]:
    """NAME -> the versions a worker registered, from its capability record."""
    out: dict[str, list[str]] = {}
    for name, entry in w.record.orchestrations.items():
        versions = entry.get("versions")
        out[name] = [str(v) for v in versions] if isinstance(versions, list) else []
    return out


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _optional(value: Any) -> str | None:
    return None if value is None else _compact(value)


def _pin(pin: str | None) -> str:
    return pin if pin is not None else "none"


def _pin_key(item: tuple[str | None, int]) -> str:
    return _pin(item[0])
