"""The dashboard's routes: each page is one or two reads through `Client` (the same read-side
API as `durox instances`, `versions`, `workers` and `drain-report`) rendered server-side.

Pages are HTML from Jinja2 templates with autoescaping on, so every value that came from the
store (ids, outputs, custom status, event data, worker names) is escaped by the template
engine, never by hand. The only script a page may run is none: the Content-Security-Policy
allows styles and images from the dashboard itself and nothing else, which also keeps a page
working in an air-gapped cluster (no CDN to reach).

Writes (cancel, raise) exist only when the dashboard was started with `--allow-writes`; they
are POSTs carrying a per-process token that only a page of this dashboard shows, refused when
the browser says the form came from another site.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import msgspec
from aiohttp import web

from durox.client import Client
from durox.core.versions import SemverRange
from durox.errors import ConfigurationError, DuroxError, InstanceNotFoundError
from durox.providers import ObservedWorker
from durox.status import InstanceStatus
from durox.worker import scrubbed

from ._history import CountHistory, chart

log = logging.getLogger(__name__)

PAGE_SIZE = 50
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    store_url: str
    allow_writes: bool = False
    sample_every: float = 15.0
    """Seconds between two samples of the per-version counts."""
    keep: int = 5760
    """Samples kept (24 hours at the default interval)."""
    failed_since: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(seconds=30)
    public_url: str | None = None
    """The scheme://host[:port] browsers use when a proxy (one that ends TLS, say) stands in
    front: write forms posted from it are accepted as the dashboard's own."""


CLIENT = web.AppKey("client", Client)
SETTINGS = web.AppKey("settings", DashboardSettings)
HISTORY = web.AppKey("history", CountHistory)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
TOKEN = web.AppKey("token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(client: Client, settings: DashboardSettings) -> web.Application:
    """The dashboard over an open store; it samples the counts while it runs."""
    app = web.Application(middlewares=[_headers, _errors])
    app[CLIENT] = client
    app[SETTINGS] = settings
    app[HISTORY] = CountHistory(settings.keep)
    app[TEMPLATES] = _templates()
    app[TOKEN] = secrets.token_urlsafe(32)
    app.router.add_get("/", _root)
    app.router.add_get("/instances", _instances)
    app.router.add_get("/instances/{instance_id}", _instance)
    app.router.add_get("/versions", _versions)
    app.router.add_get("/workers", _workers)
    app.router.add_get("/drain", _drain)
    app.router.add_get("/healthz", _healthz)
    app.router.add_static("/static", _package_dir("static"))
    if settings.allow_writes:
        app.router.add_post("/instances/{instance_id}/cancel", _cancel)
        app.router.add_post("/instances/{instance_id}/raise", _raise)
    app.cleanup_ctx.append(_sampling)
    return app


def store_label(url: str) -> str:
    """Where the store is, without who may open it: no user, no password, no query string
    (a DSN may carry `?password=`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable store URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


# -- pages ---------------------------------------------------------------------------------


async def _root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/instances")


async def _instances(request: web.Request) -> web.StreamResponse:
    q = request.query
    filters = {k: q.get(k, "").strip() or None for k in ("status", "name", "version", "pin")}
    offset = _int(q.get("offset"), 0)
    found = await request.app[CLIENT].list_instances(
        status=filters["status"],
        name=filters["name"],
        version=filters["version"],
        pin=filters["pin"],
        limit=PAGE_SIZE + 1,
        offset=offset,
    )
    more = len(found) > PAGE_SIZE
    kept = {k: v for k, v in filters.items() if v}

    def page(at: int) -> str:
        return "/instances?" + urlencode({**kept, "offset": at})

    return _render(
        request,
        "instances.html",
        title="Instances",
        filters=filters,
        statuses=[s.value for s in InstanceStatus],
        instances=[_instance_row(i) for i in found[:PAGE_SIZE]],
        offset=offset,
        next_page=page(offset + PAGE_SIZE) if more else None,
        previous_page=page(max(0, offset - PAGE_SIZE)) if offset else None,
    )


async def _instance(request: web.Request) -> web.StreamResponse:
    client = request.app[CLIENT]
    info = await client.get_instance_info(request.match_info["instance_id"])
    executions = await client.list_executions(info.instance_id)
    chosen = _int(request.query.get("execution"), info.current_execution_id)
    if chosen not in {e.execution_id for e in executions}:
        raise web.HTTPNotFound(text=f"instance {info.instance_id!r} has no execution {chosen}")
    events = await client.read_execution_history(info.instance_id, chosen)
    return _render(
        request,
        "instance.html",
        title=info.instance_id,
        info=_instance_row(info),
        error=msgspec.to_builtins(info.error) if info.error else None,
        custom_status=_json(info.custom_status),
        output=_json(info.output),
        executions=[
            {
                "id": e.execution_id,
                "version": e.orchestration_version,
                "status": InstanceStatus(e.status).value,
                "engine": e.engine_version,
                "events": e.event_count,
                "started": _when(e.started_at),
                "completed": _when(e.completed_at),
                "output": _json(e.output),
            }
            for e in executions
        ],
        chosen=chosen,
        timeline=[_event_row(e) for e in events],
        done=request.query.get("done"),
    )


async def _versions(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    seen = await request.app[CLIENT].observe_store(
        failed_since=datetime.now(UTC) - settings.failed_since
    )
    failures = {(f.orchestration_name, f.orchestration_version): f for f in seen.failures}
    keys = sorted(
        {(v.orchestration_name, v.orchestration_version) for v in seen.versions} | set(failures)
    )
    rows = []
    for name, version in keys:
        usage, failure = seen.usage(name, version), failures.get((name, version))
        rows.append(
            {
                "name": name,
                "version": version,
                "running": usage.instances if usage else 0,
                "by_pin": sorted((_pin(p), n) for p, n in usage.by_pin.items()) if usage else [],
                "oldest_id": usage.oldest_instance_id if usage else None,
                "oldest_at": _when(usage.oldest_created_at) if usage else None,
                "failed": failure.failed if failure else 0,
                "poisoned": failure.poisoned if failure else 0,
            }
        )
    return _render(
        request,
        "versions.html",
        title="Versions",
        observed_at=_when(seen.observed_at),
        failed_since=_when(seen.failed_since),
        versions=rows,
        pins=sorted((_pin(p), n) for p, n in seen.by_pin.items()),
        chart=chart(request.app[HISTORY].samples),
        sample_every=settings.sample_every,
    )


async def _workers(request: web.Request) -> web.StreamResponse:
    pool = request.query.get("pool", "").strip() or None
    seen = await request.app[CLIENT].observe_store(
        pool, stale_after=request.app[SETTINGS].stale_after
    )
    return _render(
        request,
        "workers.html",
        title="Workers",
        pool=pool,
        workers=[_worker_row(w) for w in seen.workers],
    )


async def _drain(request: web.Request) -> web.StreamResponse:
    low = request.query.get("min", "").strip() or "0.0.0"
    high = request.query.get("max", "").strip() or None
    report = await request.app[CLIENT].get_drain_report(SemverRange(low, high) if high else None)
    return _render(
        request,
        "drain.html",
        title="Drain report",
        low=low,
        high=high or "",
        range=f"{report.range.min}..{report.range.max}",
        complete=report.complete,
        entries=report.entries,
    )


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


# -- writes (only with --allow-writes) -----------------------------------------------------


async def _cancel(request: web.Request) -> web.StreamResponse:
    form = await _checked_form(request)
    instance_id = request.match_info["instance_id"]
    info = await request.app[CLIENT].get_instance_info(instance_id)
    reason = str(form.get("reason") or "cancelled from the durox dashboard")
    await request.app[CLIENT].cancel_instance(info.instance_id, reason)
    log.info("cancel requested from the dashboard", extra={"instance_id": info.instance_id})
    raise web.HTTPSeeOther(_instance_url(info.instance_id, done="cancel"))


async def _raise(request: web.Request) -> web.StreamResponse:
    form = await _checked_form(request)
    instance_id = request.match_info["instance_id"]
    info = await request.app[CLIENT].get_instance_info(instance_id)
    event = str(form.get("event") or "").strip()
    if not event:
        raise web.HTTPBadRequest(text="an event name is required")
    text = str(form.get("data") or "").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"the data is not JSON ({exc})") from None
    await request.app[CLIENT].raise_event(info.instance_id, event, data)
    log.info("event raised from the dashboard", extra={"instance_id": info.instance_id})
    raise web.HTTPSeeOther(_instance_url(info.instance_id, done="raise"))


async def _checked_form(request: web.Request) -> Any:
    """The form, if it came from a page of this dashboard: the browser's own word on where a
    request came from (Sec-Fetch-Site, Origin) must not name another site, and the token only
    our pages carry must be there."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise web.HTTPForbidden(text="cross-site request refused")
    origin = request.headers.get("Origin")
    own = f"{request.scheme}://{request.host}"
    public = request.app[SETTINGS].public_url
    if origin is not None and origin not in (own, public):
        behind = (
            ""
            if public
            else (
                f"; if browsers reach this dashboard at {origin} through a proxy, start it with "
                f"--public-url {origin}"
            )
        )
        raise web.HTTPForbidden(text=f"cross-origin request refused: {origin} is not {own}{behind}")
    form = await request.post()
    token = str(form.get("csrf") or "")
    if not hmac.compare_digest(token.encode(), request.app[TOKEN].encode()):
        raise web.HTTPForbidden(text="missing or wrong form token: reload the page")
    return form


# -- plumbing ------------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    url = request.app[SETTINGS].store_url
    try:
        return await handler(request)
    except InstanceNotFoundError as exc:
        return _error(request, 404, scrubbed(str(exc), url))
    except ConfigurationError as exc:
        return _error(request, 400, scrubbed(str(exc), url))
    except DuroxError as exc:
        log.warning("store read failed: %s", scrubbed(str(exc), url))
        return _error(request, 503, f"the store did not answer: {scrubbed(str(exc), url)}")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.text and request.method == "GET":
            return _error(request, exc.status, exc.text)
        raise


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    response = _render(request, "error.html", title=f"Error {status}", message=message)
    response.set_status(status)
    return response


def _render(request: web.Request, template: str, **context: Any) -> web.Response:
    settings = request.app[SETTINGS]
    page = request.app[TEMPLATES].get_template(template)
    html = page.render(
        store=store_label(settings.store_url),
        allow_writes=settings.allow_writes,
        csrf=request.app[TOKEN] if settings.allow_writes else None,
        path=request.path,
        **context,
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("durox.dashboard", "templates"),
        autoescape=True,  # every template, whatever its name: nothing renders unescaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["instance_url"] = _instance_url
    return env


def _package_dir(name: str) -> str:
    from importlib.resources import files

    return str(files("durox.dashboard") / name)


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_sample_forever(app), name="durox-dashboard-sampler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sample_forever(app: web.Application) -> None:
    client, settings, history = app[CLIENT], app[SETTINGS], app[HISTORY]
    while True:
        try:
            history.add(await client.observe_store(stale_after=settings.stale_after))
        except DuroxError as exc:
            log.warning("sampling the counts failed: %s", scrubbed(str(exc), settings.store_url))
        await asyncio.sleep(settings.sample_every)


def _instance_url(instance_id: str, **query: object) -> str:
    from urllib.parse import quote

    tail = f"?{urlencode(query)}" if query else ""
    return f"/instances/{quote(instance_id, safe='')}{tail}"


def _instance_row(i: Any) -> dict[str, Any]:
    return {
        "id": i.instance_id,
        "name": i.orchestration_name,
        "version": i.orchestration_version,
        "status": InstanceStatus(i.status).value,
        "pin": i.pinned_engine_version,
        "execution": i.current_execution_id,
        "parent": i.parent_instance_id,
        "created": _when(i.created_at),
        "updated": _when(i.updated_at),
    }


def _event_row(event: Any) -> dict[str, Any]:
    raw: dict[str, Any] = msgspec.to_builtins(event)
    kind, event_id, ts = raw.pop("k"), raw.pop("event_id"), raw.pop("ts", None)
    when = _when(datetime.fromtimestamp(ts / 1000, UTC)) if isinstance(ts, int) else None
    details = [(k, _json(v)) for k, v in raw.items() if v is not None]
    return {"id": event_id, "kind": kind, "when": when, "details": details}


def _worker_row(w: ObservedWorker) -> dict[str, Any]:
    r = w.record
    orchestrations = []
    for name, entry in sorted(r.orchestrations.items()):
        versions = entry.get("versions")
        orchestrations.append(
            {
                "name": name,
                "versions": [str(v) for v in versions] if isinstance(versions, list) else [],
                "policy": entry.get("policy"),
            }
        )
    return {
        "id": r.worker_id,
        "node": r.node_id,
        "pool": r.pool,
        "engine": r.engine_version,
        "replay": f"{r.replay_min}..{r.replay_max}",
        "orchestrations": orchestrations,
        "activities": sorted(r.activities),
        "session_activities": sorted(r.session_activities),
        "config_revision": r.config_revision,
        "config_rejected": r.config_rejected,
        "started": _when(r.started_at),
        "age": f"{w.heartbeat_age.total_seconds():.0f} s",
        "live": w.live,
    }


def _int(text: str | None, default: int) -> int:
    try:
        return max(0, int(text)) if text else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a number: {text!r}") from None


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _when(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _pin(pin: str | None) -> str:
    return pin if pin is not None else "none"
