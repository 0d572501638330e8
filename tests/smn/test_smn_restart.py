"""kill -9 in the middle of deliveries, restart on the same data dir: every subscriber gets every message.

The webhook is slow (one second per request) so that when the server dies, some messages are in flight,
some are done and some have not started. What the guarantee allows, and what is asserted:

* every published message reaches every confirmed subscriber (email and webhook) — nothing is lost;
* while one process runs, no message reaches a subscriber twice;
* a message can reach a subscriber a second time only if the first copy was in flight when the process
  died (accepted by the peer, not yet recorded as delivered); the resend has the same message id, and
  after the restart each message is sent at most once more.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from opencts.testing.peers import HttpReceiver, SmtpSink, links_in
from opencts.testing.server import ServerProcess, start_server
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
MESSAGES = 50


def test_kill_9_mid_delivery_then_restart(tmp_path: Path, smtp: SmtpSink, hook: HttpReceiver) -> None:
    env = {
        "OPENCTS_SMTP_HOST": "127.0.0.1",
        "OPENCTS_SMTP_PORT": str(smtp.port),
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        "OPENCTS_SMN_LEASE_SECONDS": "3",
        "OPENCTS_SMN_SEND_TIMEOUT_SECONDS": "2",
        "OPENCTS_SMN_RETRY_BASE_SECONDS": "0.2",
        "OPENCTS_SMN_RETRY_MAX_SECONDS": "1",
        "OPENCTS_SMN_POLL_SECONDS": "0.2",
    }
    data_dir = tmp_path / "data"
    first = start_server(data_dir, env)
    second: ServerProcess | None = None
    try:
        with first.client() as api:
            base = f"/v2/{first.creds.project_id}/notifications"
            topic = api.post(f"{base}/topics", json={"name": "restart", "display_name": "R"}).json()[
                "topic_urn"
            ]
            subs = base + f"/topics/{topic}/subscriptions"
            api.post(subs, json={"protocol": "email", "endpoint": "ops@example.com"}).raise_for_status()
            api.post(subs, json={"protocol": "http", "endpoint": hook.url}).raise_for_status()
            wait_for(lambda: bool(smtp.to("ops@example.com")), 20, "the confirmation email")
            [link] = links_in(smtp.to("ops@example.com")[0].text, "/confirm?token=")
            httpx.get(link).raise_for_status()

            def confirmed() -> bool:
                found = api.get(f"{base}/subscriptions", params={"status": 1}).json()
                return int(found["subscription_count"]) == 2

            wait_for(confirmed, 20, "both subscriptions to be confirmed")
            hook.delay = 1.0  # a slow webhook: deliveries pile up in flight
            published = [
                api.post(
                    f"{base}/topics/{topic}/publish", json={"subject": f"m{i}", "message": f"alarm {i}"}
                ).json()["message_id"]
                for i in range(MESSAGES)
            ]
        wait_for(lambda: len(hook.docs("Notification")) >= 10, 30, "some webhook deliveries")
        first.kill()  # SIGKILL: no shutdown, nothing flushed
        # what reaches a peer from here on comes from the second process (which needs seconds to start)
        boundary = time.time() + 0.3
        assert len(hook.docs("Notification")) < MESSAGES, "the kill came too late to test anything"
        hook.delay = 0.05

        second = start_server(data_dir, env)

        def everything_arrived() -> bool:
            webhook_ids = {d["message_id"] for d in hook.docs("Notification")}
            email_ids = {m.message_id for m in smtp.to("ops@example.com")}
            return webhook_ids >= set(published) and email_ids >= set(published)

        wait_for(everything_arrived, 90, "every message at every subscriber after the restart")

        webhook = [(r.doc["message_id"], r.at) for r in hook.received if r.doc["type"] == "Notification"]
        email = [(m.message_id, m.at) for m in smtp.to("ops@example.com")[1:]]
        for side, receipts in (("webhook", webhook), ("email", email)):
            assert {m for m, _ in receipts} == set(published), side
            before = Counter(m for m, at in receipts if at < boundary)
            after = Counter(m for m, at in receipts if at >= boundary)
            assert max(before.values(), default=0) <= 1, f"{side}: a duplicate while one process ran"
            assert max(after.values(), default=0) <= 1, f"{side}: sent twice after the restart"
            resent = set(before) & set(after)
            assert len(resent) <= 32, f"{side}: more resends than could have been in flight: {len(resent)}"

        with second.client() as api:

            def all_recorded() -> bool:
                found = api.get(f"{base}/deliveries", params={"status": "delivered", "limit": 1}).json()
                return int(found["delivery_count"]) == 2 * MESSAGES + 2  # plus the two confirmations

            wait_for(all_recorded, 30, "every delivery to be recorded as delivered")
            rows = api.get(f"{base}/deliveries", params={"limit": 100}).json()["deliveries"]
            assert not [d for d in rows if d["status"] != "delivered"]
    finally:
        first.stop()
        if second is not None:
            second.stop()
