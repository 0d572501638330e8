"""The Functions, Archive and Dashboard pages in a real browser: headless Chromium (Debian's, at
/usr/bin/chromium) driven by Playwright against a live server. A function made from the login-whitelist
template, a CTS trigger through the Create Trigger dialog, a test invocation with the pre-filled login
event whose alarm reaches SMN, its log; the archive after a real transfer, and a query over it; "Verify
now" on a validated archive, clean and then with a changed file; the dashboard's tops. A failing step
leaves a screenshot in the test's tmp_path."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from console.conftest import CHROMIUM
from console_helpers import log_in_page as log_in
from cts_helpers import TraceFactory
from opencts.archive.storage import LocalStore
from opencts.clock import HOUR_MS, now_ms
from opencts.consumers import ConsumerRunner
from opencts.ledger.consumer import LedgerConsumer
from opencts.testing.server import RunningServer, running_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", ingest_workers=0, functions_workers=2) as live:
        yield live


async def test_a_function_from_the_login_whitelist_template_runs_and_logs(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    topic = await server.client.post(f"/v2/{server.project}/notifications/topics", json={"name": "cts_test"})
    assert topic.status_code == 200, topic.text
    region = server.app.state.services.settings.region
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)
        await page.get_by_role("link", name="Functions", exact=True).click()
        await page.get_by_role("link", name="Create from template login-whitelist").click()
        await expect(page.get_by_label("Code")).to_have_value(
            re.compile(r"def handler\(event: dict\[str, Any\], context: Any\)")
        )
        await page.get_by_label("Function name").fill("guard")
        await page.locator("#env_value_0").fill("cts_test")
        await page.locator("#env_value_1").fill(region)
        await page.locator("#env_value_2").fill("10.0.0.0/8, 2001:db8::/32")
        await page.locator("#env_key_3").fill("SMN_ENDPOINT")
        await page.locator("#env_value_3").fill(server.url)
        await page.get_by_role("button", name="Create function").click()
        await expect(page.get_by_role("status")).to_have_text("Function guard created.")
        await expect(page.get_by_role("heading", name="Function guard")).to_be_visible()

        # the seeds' Create Trigger dialog: CTS, a notification name, IAM / user / login
        await page.get_by_role("link", name="Triggers").click()
        await page.get_by_role("link", name="Create Trigger").click()
        dialog = page.get_by_role("dialog", name="Create Trigger")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("You have created 0 CTS triggers.")
        await expect(dialog.get_by_label("Log stream")).to_be_hidden()
        await dialog.get_by_label("Notification Name").fill("cts_test")
        await dialog.get_by_label("Operation 1 service type").fill("IAM")
        await dialog.get_by_label("Operation 1 resource type").fill("user")
        await dialog.get_by_label("Operation 1 operation name").fill("login")
        await dialog.get_by_role("button", name="Add Custom Operation").click()
        await expect(dialog.get_by_label("Operation 6 service type")).to_be_focused()
        await dialog.get_by_role("button", name="OK").click()
        await expect(page.get_by_role("status")).to_have_text("CTS trigger created.")
        await expect(page.locator("table").first).to_contain_text("IAM:user:login")

        # Test: the pre-filled CTS login event comes from this browser's address, outside the whitelist
        await page.get_by_role("link", name="Test").click()
        await expect(page.get_by_label("Test event")).to_have_value(re.compile('"trace_name": "login"'))
        await page.get_by_role("button", name="Test").click()
        await expect(page.get_by_role("heading", name="Execution result: succeeded")).to_be_visible()
        await expect(page.locator("[data-result]")).to_contain_text("send alarm success")
        await expect(page.locator("[data-log]")).to_contain_text(
            "Illegal operation[IP:127.0.0.1, Action:login]"
        )

        await page.get_by_role("link", name="Logs").click()
        await expect(page.locator("tbody tr")).to_have_count(1)
        await page.locator("tbody tr a").first.click()
        await expect(page.locator("[data-log]")).to_contain_text(
            "Illegal operation[IP:127.0.0.1, Action:login]"
        )

        # the trigger fires: logging in again is an IAM login trace, which invokes the function
        await page.get_by_role("button", name="Log out").click()
        await log_in(page, server)
        await page.goto(f"{server.url}/console/functions/default/guard/logs")
        triggered = page.locator("tbody tr", has_text="trigger").filter(has_text=re.compile("SUCCESS|FAIL"))
        for _ in range(60):  # queued, then run by the invocation worker
            if await triggered.count():
                break
            await page.wait_for_timeout(500)
            await page.reload()
        await expect(triggered).to_contain_text("SUCCESS")
        await triggered.locator("a").first.click()
        await expect(page.locator("[data-log]")).to_contain_text(
            "Illegal operation[IP:127.0.0.1, Action:login]"
        )

        await page.get_by_role("link", name="Monitoring").click()
        await expect(page.locator("figure.chart svg")).to_have_count(3)
        await expect(page.locator("figure.chart").first).to_contain_text("2 invocations in")

        phone = await browser.new_context(
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            storage_state=await context.storage_state(),
        )
        small = await phone.new_page()
        for tab in ("", "/configuration", "/triggers?create=1", "/test", "/logs", "/monitoring"):
            await small.goto(f"{server.url}/console/functions/default/guard{tab}")
            width = await small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (
                f"the function's {tab or 'code'} tab scrolls sideways on a phone ({width} px)"
            )
        await phone.close()
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_the_archive_page_lists_files_and_runs_a_query_and_the_dashboard_shows_tops(
    server: RunningServer, browser: Browser, make_trace: TraceFactory, tmp_path: Path
) -> None:
    traces = [make_trace(user={"name": "alice"}) for _ in range(4)]
    traces += [
        make_trace(
            user={"name": "bob"},
            service_type="IAM",
            resource_type="user",
            trace_name="login",
            source_ip="203.0.113.7",
        )
        for _ in range(2)
    ]
    assert (
        await server.client.post(f"/v3/{server.project}/traces", json={"traces": traces})
    ).status_code == 200
    services = server.app.state.services
    assert isinstance(services.storage, LocalStore)
    services.storage.create_bucket("audit-archive")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)
        tops = page.locator("figure.chart", has_text="Top operations")
        await expect(tops).to_contain_text("ECS · createServer 4")
        await expect(page.locator("figure.chart", has_text="Top users")).to_contain_text("alice 4")
        await expect(page.locator("figure.chart", has_text="Top source IPs")).to_contain_text("203.0.113.7 2")

        await page.get_by_role("link", name="Trackers").click()
        await page.get_by_role("link", name="Configure").first.click()
        await page.get_by_label("Bucket").fill("audit-archive")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("saved")
        await services.transfer.drain()

        await page.get_by_role("link", name="Archive").click()
        await expect(page.get_by_role("heading", name="Archive", exact=True)).to_be_visible()
        await expect(page.locator("table").first).to_contain_text("audit-archive")
        await page.locator("a[href*='day=']").first.click()
        await expect(page.locator("td.id", has_text=".json.gz").first).to_be_visible()

        await page.get_by_role("textbox", name="SQL").fill(
            "SELECT trace_name, count(*) AS traces FROM traces"
            " GROUP BY trace_name ORDER BY traces DESC, trace_name"
        )
        await page.get_by_role("button", name="Run query").click()
        result = page.locator("table.result")
        await expect(result.locator("thead")).to_contain_text("trace_name")
        await expect(result.locator("tbody tr").first).to_contain_text("createServer")
        await expect(result.locator("tbody tr").first).to_contain_text("4")

        await page.get_by_role("textbox", name="SQL").fill("DELETE FROM traces")
        await page.get_by_role("button", name="Run query").click()
        await expect(page.get_by_role("alert")).to_contain_text("The query did not run")
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_verify_now_shows_verified_then_names_a_changed_file(
    server: RunningServer, browser: Browser, make_trace: TraceFactory, tmp_path: Path
) -> None:
    services = server.app.state.services
    assert isinstance(services.storage, LocalStore)
    services.storage.create_bucket("sealed-archive")
    tracker = {
        "tracker_type": "system",
        "tracker_name": "system",
        "obs_info": {"bucket_name": "sealed-archive"},
        "is_support_validate": True,
    }
    assert (await server.client.put(f"/v3/{server.project}/tracker", json=tracker)).status_code == 200
    start = now_ms()
    await services.digests.run_once()  # the chain starts this hour
    traces = [make_trace() for _ in range(5)]
    assert (
        await server.client.post(f"/v3/{server.project}/traces", json={"traces": traces})
    ).status_code == 200
    await services.transfer.drain()
    await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()
    services.digests.clock = lambda: start + 2 * HOUR_MS  # the hour is over: its digest is written
    await services.digests.run_once()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)
        await page.get_by_role("link", name="Archive").click()
        await page.get_by_role("link", name="system", exact=True).click()
        result = page.locator("div.verification")
        await page.get_by_role("button", name="Verify now").click()
        await expect(result).to_contain_text("Verified", timeout=20_000)  # the page refreshes while it runs
        await expect(result).to_contain_text("nothing altered, removed or added")

        bucket = services.storage.root / "sealed-archive"
        victim = next(bucket.rglob("CloudTrace_*.json.gz"))
        victim.write_bytes(victim.read_bytes()[:-1])
        await page.get_by_label("also check every trace against the Merkle tree (slower)").check()
        await page.get_by_role("button", name="Verify now").click()
        await expect(result).to_contain_text("Failed", timeout=20_000)
        failures = page.locator("table", has=page.locator("caption", has_text="What failed"))
        await expect(failures).to_contain_text(victim.relative_to(bucket).as_posix())
        await expect(failures).to_contain_text("hash value doesn't match")
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_the_code_editor_indents_with_the_keyboard_and_lets_it_leave(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)
        await page.goto(f"{server.url}/console/functions/new")
        code = page.get_by_label("Code")
        await expect(page.locator("#code-keys")).to_be_visible()  # the hint shows only with the script
        await code.fill("")
        await code.focus()
        # Enter keeps the indentation, one level more after a colon or a bracket; Shift+Tab on an empty line
        # dedents; a Tab in mid-line pads to the next multiple of four. A key is pressed, anything else typed.
        keys = ("Enter", "Shift+Tab", "Tab")
        strokes = ["def handler(event, context):", "Enter", "if event:", "Enter", "return 1", "Enter"]
        strokes += ["Shift+Tab", "x = [", "Enter", "1]", "Enter", "Shift+Tab", "return", "Tab", "0"]
        for stroke in strokes:
            await (page.keyboard.press if stroke in keys else page.keyboard.type)(stroke)
        written = "\n".join(
            [
                "def handler(event, context):",
                "    if event:",
                "        return 1",
                "    x = [",
                "        1]",
                "    return  0",
            ]
        )
        await expect(code).to_have_value(written)
        await expect(code).to_be_focused()

        # a selection is indented and dedented line by line, and undo takes an indent back
        await page.keyboard.press("Control+a")
        await page.keyboard.press("Tab")
        await expect(code).to_have_value("\n".join("    " + line for line in written.split("\n")))
        await page.keyboard.press("Shift+Tab")
        await expect(code).to_have_value(written)
        await page.keyboard.press("Control+z")
        await expect(code).to_have_value("\n".join("    " + line for line in written.split("\n")))

        # Escape, then Tab, moves on: the keyboard is never trapped
        await page.keyboard.press("Escape")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Create function")).to_be_focused()
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()
