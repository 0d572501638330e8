"""Key Event Notifications in a real browser (Debian's headless Chromium, driven by Playwright) against a
live server whose email goes to a real SMTP server (aiosmtpd): a topic is created and given an email
subscription, confirmed through the link in the email; a notification on IAM logins is made through the
operations picker, the users and the filter builder; a second person logs in, and the alarm arrives in the
mailbox while the topic page shows its delivery. A failing step leaves a screenshot in the test's tmp_path."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from console.conftest import CHROMIUM
from console_helpers import log_in_page as log_in
from opencts.testing.peers import HttpReceiver, SmtpSink, links_in
from opencts.testing.server import RunningServer, running_server
from opencts.testing.waiting import until

MAILBOX = "secops@example.com"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture
async def server(tmp_path: Path, smtp: SmtpSink) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path / "data",
        ingest_workers=0,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_from="cts@example.com",
        allow_private_endpoints=True,  # the webhook of the dead-letter test listens on 127.0.0.1
    ) as live:
        yield live


def alarms(smtp: SmtpSink) -> list[str]:
    """Texts of the emails to the mailbox that are not the subscription's confirmation."""
    return [m.text for m in smtp.to(MAILBOX) if not links_in(m.text, "/confirm?token=")]


async def test_a_notification_made_in_the_console_fires_on_the_next_login(
    server: RunningServer, browser: Browser, smtp: SmtpSink, tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)

        # a topic, and an email subscription confirmed through the link the email carries
        await page.get_by_role("link", name="Topics", exact=True).click()
        await page.get_by_label("Topic name").fill("security")
        await page.get_by_label("Display name").fill("Security team")
        await page.get_by_role("button", name="Create topic").click()
        await expect(page.get_by_role("heading", name="Topic: security")).to_be_visible()
        await page.get_by_label("Protocol").select_option("email")
        await page.get_by_label("Endpoint").fill(MAILBOX)
        await page.get_by_role("button", name="Add subscription").click()
        await expect(page.get_by_role("status")).to_contain_text("Subscription added")
        await expect(page.locator("table.subscriptions")).to_contain_text("unconfirmed")
        await until(lambda: bool(smtp.to(MAILBOX)), 30, "the confirmation email")
        [link] = links_in(smtp.to(MAILBOX)[0].text, "/confirm?token=")
        await page.goto(link)
        await expect(page.get_by_role("heading", name="Subscription confirmed")).to_be_visible()
        await page.go_back()
        await page.reload()
        await expect(page.locator("table.subscriptions")).to_contain_text("confirmed")
        await expect(page.locator("table.subscriptions")).not_to_contain_text("unconfirmed")

        # the notification: IAM / user / login through the picker, the admin's logins, code = 200
        await page.get_by_role("link", name="Notifications", exact=True).click()
        await page.get_by_role("link", name="Create notification").click()
        await page.get_by_label("Notification name").fill("console_logins")
        await page.get_by_label("Service", exact=True).select_option("IAM")
        await page.get_by_label("Resource type", exact=True).select_option("user")
        await page.locator("#pick_operations").get_by_label("login", exact=True).check()
        await page.get_by_role("button", name="Add selected operations").click()
        await expect(page.locator("#picked_list")).to_contain_text("IAM / user / login")
        await page.get_by_label("User group 1").fill("admins")
        await page.get_by_label("Users of group 1").fill(server.creds.user_name)
        await page.get_by_label("Only traces that pass these rules").check()
        await page.get_by_label("Rule 1 field").select_option("code")
        await page.get_by_label("Rule 1 value").fill("200")
        await page.get_by_label("SMN topic that receives the alarms").select_option(
            label="Security team (security)"
        )
        await page.get_by_role("button", name="Create", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("Notification console_logins created.")
        row = page.get_by_role("row").filter(has_text="console_logins")
        await expect(row).to_contain_text("IAM / user: login")
        await expect(row).to_contain_text("code = 200")
        await expect(row).to_contain_text("none yet")
        assert alarms(smtp) == []

        # someone logs in: the notification fires
        other = await browser.new_context()
        await log_in(await other.new_page(), server)
        await other.close()
        await until(lambda: bool(alarms(smtp)), 30, "the alarm email")
        [alarm] = alarms(smtp)
        assert "Key event notification console_logins" in alarm
        assert "Operation:     login" in alarm and f"User:          {server.creds.user_name}" in alarm
        mail = [m for m in smtp.to(MAILBOX) if m.text == alarm][0]
        assert mail.subject.startswith("[CTS][normal] login on IAM user")

        # the list counts the alarm, and the topic page shows its delivery
        await page.reload()
        await expect(page.get_by_role("row").filter(has_text="console_logins")).to_contain_text("1, last 20")
        await (
            page.get_by_role("row")
            .filter(has_text="console_logins")
            .get_by_role("link", name="Security team")
            .click()
        )
        await expect(page.get_by_role("heading", name="Topic: security")).to_be_visible()
        delivered = page.locator("tr.delivery.delivered").filter(has_text="notification")

        async def shown() -> bool:
            await page.reload()
            return await delivered.count() == 1

        await until(shown, 30, "the topic page to show the alarm's delivery")
        await expect(delivered).to_contain_text(MAILBOX)
        await page.get_by_role("link", name="Dead letters").click()
        await expect(page.locator("tr.delivery")).to_have_count(0)
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_the_picker_and_filter_builder_work_from_the_keyboard(
    server: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    topic = await server.topic("kbd")
    topic_page = f"/console/topics/{urllib.parse.quote(topic, safe='')}"
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await context.new_page()
    try:
        await log_in(page, server)
        await page.goto(f"{server.url}/console/notifications/new")
        await page.get_by_label("Notification name").fill("keyboard_only")
        service = page.get_by_label("Service", exact=True)
        await service.focus()
        await service.select_option("CTS")  # a select's value is set from the keyboard the same way
        await page.keyboard.press("Tab")
        await page.get_by_label("Resource type", exact=True).select_option("tracker")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Space")  # the first operation: createTracker
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Space")  # deleteTracker (the third)
        await page.get_by_role("button", name="Add selected operations").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#picked_list li")).to_have_count(2)
        await page.get_by_label("Resource type", exact=True).select_option("notification")
        await page.get_by_role("button", name="Tick all").focus()
        await page.keyboard.press("Enter")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")  # Add selected operations: all three of notification
        await expect(page.locator("#picked_list li")).to_have_count(5)
        await page.locator("#picked_list").get_by_label("CTS / notification / updateNotification").uncheck()
        await expect(page.locator("#picked_list")).to_contain_text("CTS / tracker / deleteTracker")
        await page.get_by_label("SMN topic that receives the alarms").select_option(topic)
        await page.get_by_role("button", name="Create", exact=True).focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("status")).to_contain_text("Notification keyboard_only created.")
        # the same session, a form posted without the page's CSRF token (as another site's form would be)
        forged = await page.request.post(
            f"{server.url}/console/notifications/new",
            form={"notification_name": "forged", "operation_type": "complete", "topic_id": topic},
            max_redirects=0,
        )
        assert forged.status == 403 and "security token is missing or stale" in await forged.text()
        await page.goto(f"{server.url}/console/notifications")
        await expect(page.get_by_role("row").filter(has_text="forged")).to_have_count(0)
        for where in ("/console/notifications", "/console/notifications/new", "/console/topics", topic_page):
            await page.goto(f"{server.url}{where}")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{where} scrolls sideways on a phone ({width} px wide)"
        listed = (await server.client.get(f"/v3/{server.project}/notifications/smn")).json()
        [made] = listed["notifications"]
        assert made["operations"] == [
            {
                "service_type": "CTS",
                "resource_type": "tracker",
                "trace_names": ["createTracker", "deleteTracker"],
            },
            {
                "service_type": "CTS",
                "resource_type": "notification",
                "trace_names": ["createNotification", "deleteNotification"],
            },
        ]
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()


async def test_a_dead_letter_is_shown_with_its_error_and_retried_from_the_topic_page(
    server: RunningServer, browser: Browser, hook: HttpReceiver, tmp_path: Path
) -> None:
    topic = await server.topic("webhooks")
    sub = await server.subscribe(topic, "http", hook.url)
    await server.wait_status(sub, 1)
    hook.down = True
    message_id = await server.publish(topic, message="short-lived", time_to_live="1")
    await until(
        lambda: server.deliveries(status="dead", message_id=message_id), 30, "the delivery to go dead"
    )
    hook.down = False
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await log_in(page, server)
        await page.get_by_role("link", name="Topics", exact=True).click()
        await page.get_by_role("row").filter(has_text="webhooks").get_by_role("link", name="1").click()
        dead = page.locator("tr.delivery.dead")
        await expect(dead).to_have_count(1)
        await expect(dead).to_contain_text(message_id)
        await expect(dead).to_contain_text("HTTP 503")
        await dead.get_by_role("button", name="Retry").click()
        await expect(page.get_by_role("status")).to_contain_text("Delivery queued again.")
        await until(lambda: bool(hook.docs("Notification")), 30, "the retried message")
        await page.get_by_role("link", name="Delivered").click()
        delivered = page.locator("tr.delivery.delivered").filter(has_text=message_id)

        async def recorded() -> bool:
            await page.reload()
            return await delivered.count() == 1

        await until(recorded, 30, "the page to show the retried delivery as delivered")
        await expect(page.get_by_role("link", name="Dead letters (0)")).to_be_visible()
    except BaseException:
        await page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        await context.close()
