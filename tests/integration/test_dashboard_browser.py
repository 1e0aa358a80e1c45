"""The dashboard as a person sees it: a real `durox dashboard` process over a SQLite store that
real workers filled (and keep changing while it samples), looked at in Debian's headless
Chromium driven by Playwright (its Python package, with the system browser: nothing is
downloaded).

The test filters the instances by version, opens the instance it finds, reads its executions'
versions and history, checks that markup from the store shows as text and runs nothing, and
takes a screenshot of each main page. `DUROX_DASHBOARD_SCREENSHOTS=docs/images` keeps them
where the README shows them.

A missing browser fails the run under CI=true (scripts/test.sh installs Debian's chromium)
and is skipped with the command that provides it elsewhere, as the fault tier does.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from durox import Client
from durox.worker import open_store
from tests.integration.dashboard_store import ECHO, MARKUP, fill_dashboard_store
from tests.integration.test_admin_cli import DUROX, ORDER, ROOT
from tests.unit.replaycheck import apps
from tests.unit.scenario_support import running

CHROMIUM = os.environ.get("DUROX_CHROMIUM", "/usr/bin/chromium")
PAGES = {
    "instances": "/instances",
    "instance": "/instances/monitor-db",
    "versions": "/versions",
    "workers": "/workers",
    "drain": "/drain?max=0.0.9",
}


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


@pytest.fixture
def browser_ready() -> None:
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


async def rollout(url: str) -> None:
    """What a rollout looks like from the store while the dashboard samples it: new orders
    start on 1.1.0 one by one, then the two waiting on 1.0.0 are shipped and finish."""
    store = await open_store(url)
    try:
        client = Client(store)
        async with running(store, apps.app.activities, apps.app.orchestrations):
            for n in range(4):
                await client.start_orchestration_versioned(f"order-{n}", ORDER, "1.1.0", f"#{n}")
                await asyncio.sleep(0.6)
            for instance in ("order-waiting-a", "order-waiting-b"):
                await client.raise_event(instance, "shipped", "by van")
                await client.wait_for_orchestration(instance, 10)
                await asyncio.sleep(0.6)
    finally:
        await store.close()


@pytest.fixture
def served(browser_ready: None, tmp_path: Path) -> Iterator[str]:
    """The dashboard's base URL, over a store that changed while it sampled."""
    url = asyncio.run(fill_dashboard_store(f"sqlite:///{tmp_path / 'dash.db'}"))
    proc = subprocess.Popen(
        [str(DUROX), "dashboard", "--store", url, "--port", "0", "--sample-every", "0.25"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DUROX_STORE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert found is not None, (line, proc.stderr.read() if proc.stderr else "")
        asyncio.run(rollout(url))
        yield found[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def test_a_person_filters_by_version_opens_an_instance_and_reads_it(
    served: str, tmp_path: Path
) -> None:
    from playwright.sync_api import Dialog, Error, expect, sync_playwright

    shots = Path(os.environ.get("DUROX_DASHBOARD_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            errors: list[Error] = []

            def on_error(error: Error) -> None:
                errors.append(error)

            page.on("pageerror", on_error)

            page.goto(f"{served}/instances")
            rows = page.locator("#instances tbody tr")
            expect(rows).to_have_count(11)  # 7 filled, 4 started by the rollout
            header = page.locator("header.top")
            assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 35, 48)"
            page.screenshot(path=str(shots / "dashboard-instances.png"), full_page=True)

            page.get_by_label("Version").fill("1.0.2")
            page.get_by_role("button", name="Filter").click()
            page.wait_for_url(re.compile(r"version=1\.0\.2"))
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("monitor-db")
            expect(page.get_by_label("Version")).to_have_value("1.0.2")

            page.get_by_role("link", name="monitor-db").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Instance monitor-db")
            executions = page.locator("#executions tbody tr")
            expect(executions).to_have_count(2)
            expect(executions.nth(0)).to_contain_text("Version: 1.0.0")
            expect(executions.nth(0)).to_contain_text("ContinuedAsNew")
            expect(executions.nth(1)).to_contain_text("Version: 1.0.2")
            expect(executions.nth(1)).to_contain_text("Running")
            expect(page.locator("#custom-status")).to_have_text('{"cycle": 2, "on": "1.0.2"}')
            timeline = page.locator("#timeline li .kind")
            expect(timeline.first).to_have_text("OrchestrationStarted")
            expect(timeline.last).to_have_text("EventSubscribed")
            page.screenshot(path=str(shots / "dashboard-instance.png"), full_page=True)

            page.get_by_role("link", name="1", exact=True).click()
            expect(page.get_by_role("heading", name="History of execution 1")).to_be_visible()
            expect(timeline.last).to_have_text("OrchestrationContinuedAsNew")

            page.goto(f"{served}/instances?name={ECHO}")
            page.get_by_role("link", name="markup").click()
            expect(page.locator("#custom-status")).to_have_text(MARKUP)
            expect(page.locator("#output")).to_contain_text(MARKUP)
            expect(page.locator("#timeline")).to_contain_text(MARKUP)
            assert page.locator("main script, main img").count() == 0

            page.goto(f"{served}/versions")
            legend = page.locator("ul.legend li")
            expect(legend.filter(has_text=f"{ORDER}@1.1.0")).to_contain_text("now 5, peak 5")
            expect(legend.filter(has_text=f"{ORDER}@1.0.0")).to_contain_text("now 0, peak 2")
            assert page.locator("#counts-chart polyline").count() == 3
            page.screenshot(path=str(shots / "dashboard-versions.png"), full_page=True)

            page.goto(f"{served}/workers")
            expect(page.locator("article.worker")).to_contain_text("w-1")
            expect(page.locator("article.worker .badge")).to_have_text("live")
            page.screenshot(path=str(shots / "dashboard-workers.png"), full_page=True)

            page.goto(f"{served}{PAGES['drain']}")
            expect(page.locator("#drain-verdict")).to_contain_text("drain not complete")
            page.screenshot(path=str(shots / "dashboard-drain.png"), full_page=True)

            assert errors == []
        finally:
            browser.close()
    assert dialogs == []  # the markup ran nowhere
    taken = sorted(p.name for p in shots.glob("dashboard-*.png"))
    assert taken == [f"dashboard-{name}.png" for name in sorted(PAGES)]
    assert all((shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in taken)
