"""The console in a real browser: headless Chromium (Debian's, at /usr/bin/chromium) driven by Playwright
against a live server. One walk through what a person does: log in, filter, expand a row, open a trace,
export CSV (the file parsed and checked against ListTraces), log out. A failing step leaves a screenshot
in the test's tmp_path."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from console.conftest import CHROMIUM
from cts_helpers import TraceFactory
from opencts.testing.server import RunningServer, running_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", ingest_workers=0) as live:
        yield live


async def log_in(page: Page, server: RunningServer) -> None:
    await page.get_by_label("Account", exact=True).fill(server.creds.domain_name)
    await page.get_by_label("User name", exact=True).fill(server.creds.user_name)
    await page.get_by_label("Password", exact=True).fill(server.creds.password)
    await page.get_by_role("button", name="Log in").click()


async def test_log_in_filter_open_export_and_log_out(
    server: RunningServer, browser: Browser, make_trace: TraceFactory, tmp_path: Path
) -> None:
    traces = [make_trace(service_type="ECS", trace_rating="incident") for _ in range(3)]
    traces += [make_trace(service_type="OBS") for _ in range(4)]
    assert (
        await server.client.post(f"/v3/{server.project}/traces", json={"traces": traces})
    ).status_code == 200
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{server.url}/console/traces?trace_rating=incident")
        await expect(page).to_have_url(
            f"{server.url}/console/login?next=%2Fconsole%2Ftraces%3Ftrace_rating%3Dincident"
        )
        await log_in(page, server)
        await expect(page).to_have_url(f"{server.url}/console/traces?trace_rating=incident")
        await expect(page.locator("tr.row")).to_have_count(3)

        await page.get_by_label("Trace status").select_option("")
        await page.get_by_label("Trace source").fill("OBS")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("tr.row")).to_have_count(4)
        assert "service_type=OBS" in page.url

        details = page.locator("tr.details").first
        await expect(details).to_be_hidden()
        await page.locator("button.expand").first.click()
        await expect(details).to_be_visible()
        await expect(details).to_contain_text("Source IP")

        async with page.expect_download() as waiting:
            await page.get_by_role("link", name="Export CSV").click()
        download = await waiting.value
        saved = tmp_path / "export.csv"
        await download.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        listed = (
            await server.client.get(f"/v3/{server.project}/traces", params={"service_type": "OBS"})
        ).json()
        assert [r["Trace ID"] for r in rows] == [t["trace_id"] for t in listed["traces"]]

        await page.get_by_role("link", name="View trace").first.click()
        await expect(page.locator(".highlight")).to_contain_text('"service_type": "OBS"')

        await page.get_by_role("button", name="Log out").click()
        await expect(page).to_have_url(f"{server.url}/console/login")
        await page.goto(f"{server.url}/console/")
        await expect(page.get_by_role("heading", name="Log in to OpenCTS")).to_be_visible()
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_the_dashboard_and_trackers_fit_a_phone_screen(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    try:
        await page.goto(f"{server.url}/console/")
        await log_in(page, server)
        await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        await expect(page.locator("figure.chart svg")).to_have_count(6)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the dashboard scrolls sideways on a phone ({width} px wide)"
        await page.get_by_role("link", name="Trackers").click()
        await page.get_by_role("link", name="Configure").first.click()
        await expect(page.get_by_role("heading", name="Configure Tracker: system")).to_be_visible()
        await page.get_by_label("File prefix").fill("phone")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("Tracker system saved.")
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()
