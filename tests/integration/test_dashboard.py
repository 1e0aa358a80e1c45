"""`durox dashboard`'s pages against a SQLite file and PostgreSQL that real workers filled:
what each page shows, that store data is shown as text (never as markup), that no credential
reaches a page, and that nothing can be written unless the dashboard was started to allow it
(and then only by a form from its own pages).

The pages are read through aiohttp's test client, in process, so a failure names the page;
tests/integration/test_dashboard_browser.py looks at them in a real browser.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from durox import ActivityRegistry, Client
from durox.dashboard import DashboardSettings, build_app, store_label
from durox.providers import Store
from durox.worker import open_existing_store, open_store
from tests.integration.dashboard_store import (
    ECHO,
    MARKUP,
    MONITOR,
    fill_dashboard_store,
    orchestrations,
)
from tests.integration.test_admin_cli import DUROX, ORDER, ROOT
from tests.integration.test_replay_check_cli import empty_database
from tests.unit.scenario_support import eventually, running

Dashboard = TestClient[web.Request, web.Application]
PAGES = ["/instances", "/instances/monitor-db", "/versions", "/workers", "/drain"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield await fill_dashboard_store(f"sqlite:///{tmp_path / 'dash.db'}")
    else:
        async with empty_database(request.getfixturevalue("dsn")) as pg:
            yield await fill_dashboard_store(pg)


async def dashboard(
    url: str,
    *,
    allow_writes: bool = False,
    sample_every: float = 15.0,
    public_url: str | None = None,
) -> tuple[Dashboard, Store]:
    store = await open_existing_store(url)
    settings = DashboardSettings(
        url, allow_writes=allow_writes, sample_every=sample_every, public_url=public_url
    )
    client = TestClient(TestServer(build_app(Client(store), settings)))
    await client.start_server()
    return client, store


async def page(
    client: TestClient[web.Request, web.Application], path: str, status: int = 200
) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, (path, text)
    return text


class _Cells(HTMLParser):
    """The text of each cell of one table (by id), row by row."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = self.in_body = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", self.table_id) in attrs:
            self.inside = True
        elif self.inside and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table":
            self.inside = self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def cells(html: str, table_id: str) -> list[list[str]]:
    parser = _Cells(table_id)
    parser.feed(html)
    return parser.rows


def first_column(html: str, table_id: str) -> list[str]:
    return sorted(row[0] for row in cells(html, table_id))


async def test_the_pages_show_the_store(url: str) -> None:
    client, store = await dashboard(url)
    try:
        everything = await page(client, "/instances")
        assert first_column(everything, "instances") == sorted(
            [
                "markup",
                "monitor-db",
                "order-new-waiting",
                "order-shipped",
                "order-waiting-a",
                "order-waiting-b",
                "refund-done",
            ]
        )
        assert (await client.get("/", allow_redirects=False)).headers["Location"] == "/instances"

        async def ids(query: str) -> list[str]:
            return first_column(await page(client, f"/instances?{query}"), "instances")

        assert await ids("version=1.1.0") == ["order-new-waiting"]
        assert await ids("version=1.0.2") == ["monitor-db"]
        assert await ids("status=Running&version=1.0.0") == ["order-waiting-a", "order-waiting-b"]
        assert await ids(f"name={ECHO}") == ["markup"]
        assert await ids("status=Completed") == ["markup", "order-shipped", "refund-done"]
        assert await ids("pin=0.1.0&status=&name=&version=") == first_column(
            everything, "instances"
        )
        empty = await page(client, "/instances?pin=9.9.9")
        assert cells(empty, "instances") == [["No instance matches."]]
        bad = await page(client, "/instances?status=running", status=400)
        assert "did you mean &#39;Running&#39;?" in bad

        monitor = await page(client, "/instances/monitor-db")
        executions = cells(monitor, "executions")
        assert [row[:3] for row in executions] == [
            ["1", "Version: 1.0.0", "ContinuedAsNew"],
            ["2", "Version: 1.0.2", "Running"],
        ]
        assert "Orchestration" in monitor and '{"cycle": 2, "on": "1.0.2"}' in monitor.replace(
            "&#34;", '"'
        )
        current = re.findall(r'<span class="kind">(\w+)</span>', monitor)
        assert current[0] == "OrchestrationStarted" and current[-1] == "EventSubscribed"
        first = await page(client, "/instances/monitor-db?execution=1")
        kinds = re.findall(r'<span class="kind">(\w+)</span>', first)
        assert kinds[0] == "OrchestrationStarted" and kinds[-1] == "OrchestrationContinuedAsNew"
        assert "History of execution 1" in first
        await page(client, "/instances/monitor-db?execution=7", status=404)
        await page(client, "/instances/nope", status=404)

        versions = await page(client, "/versions")
        counts = {row[0]: row[1] for row in cells(versions, "versions")}
        assert counts == {f"{ORDER}@1.0.0": "2", f"{ORDER}@1.1.0": "1", f"{MONITOR}@1.0.2": "1"}
        assert cells(versions, "pins") == [["0.1.0", "4"]]
        series = re.findall(r'<polyline class="series" data-key="([^"]+)"', versions)
        assert sorted(series) == sorted(counts)  # the sampler's first sample, taken at start

        workers = await page(client, "/workers")
        assert "w-1" in workers and "pod-a" in workers and "Reserve, Charge" not in workers
        assert "Charge, Reserve" in workers and f"{ORDER}: " in workers
        assert re.search(
            r'<span class="version">1\.0\.0</span>, <span class="version">1\.1\.0', workers
        )
        assert "No worker record in pool drain" in await page(client, "/workers?pool=drain")

        drain = await page(client, "/drain?max=0.0.9")
        assert "drain not complete" in drain
        assert [ORDER, "0.1.0", "3", "0", "0", "0"] in cells(drain, "drain")
        assert "drain complete" in await page(client, "/drain")
        await page(client, "/drain?min=2.0.0&max=1.0.0", status=400)

        for path in PAGES:
            response = await client.get(path)
            assert "script-src" not in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        css = await client.get("/static/dashboard.css")
        assert css.status == 200 and "timeline" in await css.text()
    finally:
        await client.close()
        await store.close()


async def test_markup_from_the_store_is_shown_as_text(url: str) -> None:
    client, store = await dashboard(url)
    try:
        html = await page(client, "/instances/markup")
        assert "<script" not in html and "<img" not in html
        escaped = (
            "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
        )
        assert html.count(escaped) >= 4  # input, custom status, the event's data, the output
        assert re.search(r'<pre class="value" id="custom-status">' + re.escape(escaped), html)
    finally:
        await client.close()
        await store.close()
    # Negative control: the same page from the same templates without autoescaping carries the
    # markup as markup, so the assertions above would catch a template that let it through.
    loader = jinja2.PackageLoader("durox.dashboard", "templates")
    unsafe = jinja2.Environment(loader=loader, autoescape=False)
    unsafe.filters["instance_url"] = lambda i, **_: f"/instances/{i}"
    rendered = unsafe.get_template("error.html").render(
        title="t", store="s", allow_writes=False, csrf=None, path="/", message=MARKUP
    )
    assert MARKUP in rendered


def test_no_credential_reaches_a_page() -> None:
    dsn = "postgresql://durox:s3cret@db.example:5432/shop?sslmode=require&password=s3cret"
    assert store_label(dsn) == "postgresql://db.example:5432/shop"
    assert store_label("sqlite:///var/lib/durox/x.db") == "sqlite:///var/lib/durox/x.db"


async def test_no_credential_or_user_in_any_page(url: str) -> None:
    client, store = await dashboard(url)
    try:
        parts = urlsplit(url)
        for path in PAGES:
            html = await page(client, path)
            assert store_label(url) in html
            assert not parts.password or parts.password not in html
            assert not parts.username or f"{parts.username}@" not in html
    finally:
        await client.close()
        await store.close()


async def test_read_only_by_default_no_form_and_no_write_route(url: str) -> None:
    client, store = await dashboard(url)
    try:
        html = await page(client, "/instances/order-waiting-a")
        assert '<form method="post"' not in html and "read-only" in html
        for action in ("cancel", "raise"):
            response = await client.post(
                f"/instances/order-waiting-a/{action}", data={"event": "shipped"}
            )
            assert response.status in (404, 405)
        depths = await Client(store).get_queue_depths()
        assert depths.orchestrator_ready == 0  # nothing was written
    finally:
        await client.close()
        await store.close()


async def test_writes_when_allowed_need_a_form_from_the_dashboard(url: str) -> None:
    client, store = await dashboard(url, allow_writes=True)
    try:
        html = await page(client, "/instances/order-waiting-a")
        assert "writes allowed" in html
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        # Harm the guard prevents: another site's page posting to the dashboard.
        refused = [
            await client.post("/instances/order-waiting-a/cancel", data={"reason": "x"}),
            await client.post(
                "/instances/order-waiting-a/cancel", data={"csrf": "guess", "reason": "x"}
            ),
            await client.post(
                "/instances/order-waiting-a/cancel",
                data={"csrf": token[1]},
                headers={"Origin": "http://evil.example"},
            ),
            await client.post(
                "/instances/order-waiting-a/cancel",
                data={"csrf": token[1]},
                headers={"Sec-Fetch-Site": "cross-site"},
            ),
        ]
        assert [r.status for r in refused] == [403, 403, 403, 403]
        assert (await Client(store).get_queue_depths()).orchestrator_ready == 0

        done = await client.post(
            "/instances/order-waiting-a/cancel",
            data={"csrf": token[1], "reason": "from the test"},
            allow_redirects=False,
        )
        assert done.status == 303
        assert done.headers["Location"] == "/instances/order-waiting-a?done=cancel"
        raised = await client.post(
            "/instances/order-waiting-b/raise",
            data={"csrf": token[1], "event": "shipped", "data": '{"by": "van"}'},
            allow_redirects=False,
        )
        assert raised.status == 303
        bad = await client.post(
            "/instances/order-waiting-b/raise",
            data={"csrf": token[1], "event": "shipped", "data": "van"},
        )
        assert bad.status == 400
        assert (await Client(store).get_queue_depths()).orchestrator_ready == 2
        assert "Cancel requested" in await page(client, "/instances/order-waiting-a?done=cancel")
    finally:
        await client.close()
        await store.close()


async def test_writes_behind_a_proxy_need_the_public_url(url: str) -> None:
    # A proxy that ends TLS: the browser's Origin is https, the dashboard hears http.
    proxy = {"Origin": "https://durox.example"}
    for public in (None, "https://durox.example"):
        client, store = await dashboard(url, allow_writes=True, public_url=public)
        try:
            html = await page(client, "/instances/order-waiting-a")
            token = re.search(r'name="csrf" value="([^"]+)"', html)
            assert token is not None
            response = await client.post(
                "/instances/order-waiting-a/cancel",
                data={"csrf": token[1], "reason": "via the proxy"},
                headers=proxy,
                allow_redirects=False,
            )
            if public is None:  # refused, and told how to fix it
                assert response.status == 403
                assert "--public-url https://durox.example" in await response.text()
            else:
                assert response.status == 303
            evil = await client.post(
                "/instances/order-waiting-a/cancel",
                data={"csrf": token[1]},
                headers={"Origin": "https://evil.example"},
            )
            assert evil.status == 403  # the public URL is trusted, nothing else
        finally:
            await client.close()
            await store.close()


async def test_the_sampler_adds_a_sample_per_interval(url: str) -> None:
    client, store = await dashboard(url, sample_every=0.05)
    try:
        await asyncio.sleep(0.5)
        html = await page(client, "/versions")
        taken = int(re.search(r"\((\d+) samples", html)[1])  # type: ignore[index]
        assert 3 <= taken <= 12, taken
    finally:
        await client.close()
        await store.close()


# -- the process ---------------------------------------------------------------------------


def dashboard_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(DUROX), "dashboard", *args],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DUROX_STORE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_process_serves_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = asyncio.run(fill_dashboard_store(f"sqlite:///{tmp_path / 'dash.db'}"))
    proc = dashboard_process("--store", url, "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"durox dashboard: serving http://127\.0\.0\.1:(\d+)/ for (.+) \(read-only\)\n", line
        )
        assert match is not None, line
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/versions", timeout=10) as r:
            assert r.status == 200 and f"{ORDER}@" in r.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite:///{tmp}/none.db", "none.db"),
        ("postgresql://durox:s3cret@127.0.0.1:1/durox", "postgresql://durox:***@127.0.0.1:1/durox"),
        (None, "--store is required"),
    ],
)
def test_what_cannot_run_exits_2_without_a_password(
    tmp_path: Path, store: str | None, message: str
) -> None:
    args = [] if store is None else ["--store", store.format(tmp=tmp_path)]
    proc = dashboard_process(*args, "--port", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert message in err and "s3cret" not in err
    assert not (tmp_path / "none.db").exists()


def test_a_taken_port_exits_2(tmp_path: Path) -> None:
    url = asyncio.run(fill_dashboard_store(f"sqlite:///{tmp_path / 'dash.db'}"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = dashboard_process("--store", url, "--port", str(taken.getsockname()[1]))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "cannot listen on 127.0.0.1:" in err, err


def test_without_the_extra_it_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None; from durox.cli import main; "
        f"sys.exit(main(['dashboard', '--store', 'sqlite:///{tmp_path}/x.db']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "aiohttp is not installed: pip install 'durox[dashboard]'" in result.stderr


async def test_an_instance_id_of_any_characters_links_to_its_page(tmp_path: Path) -> None:
    """Ids are any text: the link quotes it, the page finds it, and the id shows as text."""
    odd = "a/b c?#<i>%2F é"
    store = await open_store(f"sqlite:///{tmp_path / 'odd.db'}")
    try:
        async with running(store, ActivityRegistry.builder().build(), orchestrations):
            await Client(store).start_orchestration(odd, ECHO, "hi")

            async def started() -> bool:
                return await store.get_instance(odd) is not None

            await eventually(started, what="the odd instance")
    finally:
        await store.close()
    client, store = await dashboard(f"sqlite:///{tmp_path / 'odd.db'}")
    try:
        listed = await page(client, "/instances")
        link = re.search(r'href="(/instances/a[^"]*)"', listed)
        assert link is not None and link[1] == "/instances/a%2Fb%20c%3F%23%3Ci%3E%252F%20%C3%A9"
        shown = await page(client, link[1])
        assert "a/b c?#&lt;i&gt;%2F é" in shown and "<i>" not in shown
    finally:
        await client.close()
        await store.close()
