"""Screenshots of the web console for the README: ``docs/screenshots/*.png``.

Not a benchmark; it lives beside them for their scaffolding. It serves OpenCTS in a scratch data dir,
posts the demo week (``opencts.traces.demo``), logs in through the login form in headless Chromium
(Debian's ``/usr/bin/chromium``, driven by Playwright) and photographs each page at laptop size, plus the
Trace List at phone size; then makes a function from the login-whitelist template and photographs the
Functions pages, and transfers the traces to a bucket and photographs the Archive page with a query and
a verification.

    .venv/bin/python benchmarks/console_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from _measure import console
from _server import scratch_space
from playwright.async_api import Page, async_playwright, expect

from opencts.clock import HOUR_MS, now_ms
from opencts.consumers import ConsumerRunner
from opencts.ledger.consumer import LedgerConsumer
from opencts.testing.server import RunningServer, running_server
from opencts.traces.demo import demo_week

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--traces", type=int, default=3000, help="demo traces posted first (default 3,000)")
    return p.parse_args()


async def post_demo(server: RunningServer, count: int) -> None:
    creds = server.creds
    week = demo_week(
        project_id=creds.project_id,
        domain_id=creds.domain_id,
        domain_name=creds.domain_name,
        end_ms=now_ms(),
        count=count,
    )
    for first in range(0, len(week), 500):
        resp = await server.client.post(
            f"/v3/{server.project}/traces", json={"traces": week[first : first + 500]}
        )
        resp.raise_for_status()


async def shoot(page: Page, out: Path, name: str) -> None:
    path = out / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    console.print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


async def photograph(server: RunningServer, out: Path) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        laptop = await browser.new_context(viewport={"width": 1366, "height": 860})
        page = await laptop.new_page()
        await page.goto(f"{server.url}/console/login")
        await shoot(page, out, "login")
        await page.get_by_label("Account", exact=True).fill(server.creds.domain_name)
        await page.get_by_label("User name", exact=True).fill(server.creds.user_name)
        await page.get_by_label("Password", exact=True).fill(server.creds.password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{server.url}/console/")
        await shoot(page, out, "dashboard")
        await page.get_by_role("heading", name="Tops of the last 24 hours").evaluate(
            "e => e.scrollIntoView()"
        )
        await shoot(page, out, "dashboard-tops")
        await page.goto(f"{server.url}/console/traces?range=1d&limit=20")
        await page.locator("button.expand").nth(1).click()
        await shoot(page, out, "trace-list")
        await page.get_by_role("link", name="View trace").first.click()
        await shoot(page, out, "view-trace")
        await page.goto(f"{server.url}/console/trackers")
        await shoot(page, out, "trackers")
        await page.goto(f"{server.url}/console/trackers/system")
        await shoot(page, out, "configure-tracker")
        phone = await browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, storage_state=await laptop.storage_state()
        )
        small = await phone.new_page()
        await small.goto(f"{server.url}/console/traces?range=1d&trace_rating=warning")
        await shoot(small, out, "trace-list-phone")
        await photograph_functions_and_archive(server, page, out)
        await browser.close()


async def photograph_functions_and_archive(server: RunningServer, page: Page, out: Path) -> None:
    """The Functions pages (a function from the login-whitelist template, its CTS trigger, a test run, its
    logs and monitoring) and the Archive page after a transfer, with a query's answer."""
    await server.client.post(f"/v2/{server.project}/notifications/topics", json={"name": "cts_test"})
    services = server.app.state.services
    await page.goto(f"{server.url}/console/functions/new?template=login-whitelist")
    await page.get_by_label("Function name").fill("login_guard")
    await page.locator("#env_value_0").fill("cts_test")
    await page.locator("#env_value_1").fill(services.settings.region)
    await page.locator("#env_value_2").fill("10.0.0.0/8, 192.168.1.2")
    await page.locator("#env_key_3").fill("SMN_ENDPOINT")
    await page.locator("#env_value_3").fill(server.url)
    await shoot(page, out, "function-create")
    await page.get_by_role("button", name="Create function").click()
    await page.wait_for_url("**/console/functions/default/login_guard?**")
    await page.goto(f"{server.url}/console/functions/default/login_guard/triggers")
    await page.get_by_role("link", name="Create Trigger").click()
    await page.get_by_label("Notification Name").fill("cts_test")
    await page.get_by_label("Operation 1 service type").fill("IAM")
    await page.get_by_label("Operation 1 resource type").fill("user")
    await page.get_by_label("Operation 1 operation name").fill("login")
    await page.get_by_label("Operation 2 service type").fill("IAM")
    await page.get_by_label("Operation 2 resource type").fill("user")
    await page.get_by_label("Operation 2 operation name").fill("logout")
    await shoot(page, out, "function-create-trigger")
    await page.get_by_role("button", name="OK").click()
    await page.wait_for_url("**/triggers?**")
    await page.goto(f"{server.url}/console/functions/default/login_guard/test")
    for _ in range(3):
        await page.get_by_role("button", name="Test").click()
        await page.wait_for_load_state()
    await page.locator("#outcome-title").evaluate("e => e.scrollIntoView()")
    await shoot(page, out, "function-test")
    await page.goto(f"{server.url}/console/functions/default/login_guard/logs")
    await shoot(page, out, "function-logs")
    await page.goto(f"{server.url}/console/functions/default/login_guard/monitoring")
    await shoot(page, out, "function-monitoring")
    await page.goto(f"{server.url}/console/functions")
    await shoot(page, out, "functions")

    services.storage.create_bucket("audit-archive")
    await page.goto(f"{server.url}/console/trackers/system")
    await page.get_by_label("Bucket").fill("audit-archive")
    await page.get_by_label("Verify trace files (digest files)").check()
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/console/trackers?**")
    start = now_ms()
    await services.digests.run_once()  # validation's chain starts this hour
    await services.transfer.drain()
    await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()
    services.digests.clock = lambda: start + 2 * HOUR_MS  # the hour is over: its digest is written
    await services.digests.run_once()
    await page.goto(f"{server.url}/console/archive")
    await page.locator("a[href*='day=']").first.click()
    await page.get_by_role("textbox", name="SQL").fill(
        "SELECT source_ip, count(*) AS logins\nFROM traces\nWHERE trace_name = 'login'\n"
        "GROUP BY source_ip\nORDER BY logins DESC\nLIMIT 5"
    )
    await page.get_by_role("button", name="Run query").click()
    await shoot(page, out, "archive")
    await page.get_by_role("heading", name="Query the archive (SQL)").evaluate("e => e.scrollIntoView()")
    await shoot(page, out, "archive-query")
    await page.goto(f"{server.url}/console/archive?tracker=system")
    await page.get_by_role("button", name="Verify now").click()
    await expect(page.locator("div.verification")).to_contain_text("Verified", timeout=30_000)
    await page.get_by_role("heading", name="Verification of tracker system").evaluate(
        "e => e.scrollIntoView()"
    )
    await shoot(page, out, "archive-verify")


async def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with scratch_space("screenshots-") as scratch:
        async with running_server(scratch / "data", ingest_workers=0) as server:
            await post_demo(server, args.traces)
            await photograph(server, args.out)


if __name__ == "__main__":
    asyncio.run(main())
