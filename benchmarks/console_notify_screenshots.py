"""Screenshots of the console's Key Event Notifications and Topics pages for the README:
``docs/screenshots/notifications.png``, ``notification-form.png``, ``topics.png`` and ``topic.png``.

Not a benchmark; it lives beside them for their scaffolding, as ``console_screenshots.py`` does. It serves
OpenCTS in a scratch data dir with email going to an SMTP sink (aiosmtpd) and a webhook on 127.0.0.1,
subscribes both to a topic (confirmed through their real links), creates two notifications, logs in once
more so one of them fires, lets one message go dead, and photographs each page in headless Chromium.

    .venv/bin/python benchmarks/console_notify_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from _measure import console
from _server import scratch_space
from playwright.async_api import Page, async_playwright

from opencts.testing.peers import HttpReceiver, SmtpSink, links_in
from opencts.testing.server import RunningServer, anonymous, running_server
from opencts.testing.waiting import until

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    return p.parse_args()


async def shoot(page: Page, out: Path, name: str, *, full: bool = False) -> None:
    path = out / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full)
    console.print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


async def prepare(server: RunningServer, smtp: SmtpSink, hook: HttpReceiver) -> str:
    """A topic with a confirmed email and webhook subscription, and two notifications that use it."""
    topic = await server.topic("security")
    await server.client.put(f"{server.base}/topics/{topic}", json={"display_name": "Security team"})
    email = await server.subscribe(topic, "email", "secops@example.com", remark="on-call mailbox")
    await until(lambda: smtp.all(), 30, "the confirmation email")
    [link] = links_in(smtp.all()[0].text, "/confirm?token=")
    await anonymous("GET", link)
    await server.wait_status(email, 1)
    hook_sub = await server.subscribe(topic, "http", hook.url, remark="SIEM webhook")
    await server.wait_status(hook_sub, 1)
    notifications = [
        {
            "notification_name": "console_logins",
            "operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "filter": {"condition": "AND", "is_support_filter": True, "rule": ["code = 200"]},
            "topic_id": topic,
        },
        {
            "notification_name": "tracker_changes",
            "operation_type": "customized",
            "operations": [
                {
                    "service_type": "CTS",
                    "resource_type": "tracker",
                    "trace_names": ["updateTracker", "deleteTracker"],
                }
            ],
            "notify_user_list": [{"user_group": "admins", "user_list": ["alice", "bob"]}],
            "topic_id": topic,
            "status": "disabled",
        },
    ]
    for body in notifications:
        resp = await server.client.post(f"/v3/{server.project}/notifications", json=body)
        resp.raise_for_status()
    hook.down = True
    await server.publish(topic, subject="maintenance", message="window tonight", time_to_live="1")
    await until(lambda: server.deliveries(status="dead"), 30, "a dead letter")
    hook.down = False
    return topic


async def log_in(page: Page, server: RunningServer) -> None:
    await page.goto(f"{server.url}/console/login")
    await page.get_by_label("Account", exact=True).fill(server.creds.domain_name)
    await page.get_by_label("User name", exact=True).fill(server.creds.user_name)
    await page.get_by_label("Password", exact=True).fill(server.creds.password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{server.url}/console/")


async def photograph(server: RunningServer, smtp: SmtpSink, topic: str, out: Path) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        laptop = await browser.new_context(viewport={"width": 1366, "height": 860})
        page = await laptop.new_page()
        await log_in(page, server)  # the notification on logins fires
        await until(lambda: len(smtp.all()) >= 2, 30, "the alarm email")
        await page.goto(f"{server.url}/console/notifications")
        await shoot(page, out, "notifications")
        await page.get_by_role("link", name="Create notification").click()
        await page.get_by_label("Notification name").fill("key_deletions")
        await page.get_by_label("Service", exact=True).select_option("KMS")
        await page.get_by_label("Resource type", exact=True).select_option("cmk")
        for name in ("disableKey", "scheduleKeyDeletion"):
            await page.locator("#pick_operations").get_by_label(name, exact=True).check()
        await page.get_by_role("button", name="Add selected operations").click()
        await page.locator("#pick_operations").get_by_label("createKey", exact=True).check()
        await page.get_by_label("Only traces that pass these rules").check()
        await page.get_by_label("Rule 1 field").select_option("trace_rating")
        await page.get_by_label("Rule 1 condition").select_option("!=")
        await page.get_by_label("Rule 1 value").fill("normal")
        await page.get_by_label("SMN topic that receives the alarms").select_option(topic)
        await page.evaluate("window.scrollTo(0, 0)")
        await shoot(page, out, "notification-form", full=True)
        await page.goto(f"{server.url}/console/topics")
        await shoot(page, out, "topics")
        await page.get_by_role("link", name="security").click()

        async def settled() -> bool:
            await page.reload()
            return await page.locator("tr.delivery.pending, tr.delivery.delivering").count() == 0

        await until(settled, 30, "every delivery to finish")
        await page.set_viewport_size({"width": 1366, "height": 1100})
        await shoot(page, out, "topic")
        await browser.close()


async def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with scratch_space("screenshots-notify-") as scratch, SmtpSink() as smtp, HttpReceiver() as hook:
        async with running_server(
            scratch / "data",
            ingest_workers=0,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            allow_private_endpoints=True,
        ) as server:
            topic = await prepare(server, smtp, hook)
            await photograph(server, smtp, topic, args.out)


if __name__ == "__main__":
    asyncio.run(main())
