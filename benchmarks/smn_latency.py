"""SMN delivery latency: publish → email accepted by an SMTP server, and → webhook received; floor p95 ≤ 1 s.

Starts ``opencts serve`` with its SMTP relay pointed at a local aiosmtpd server and the SSRF guard lifted
for a local webhook (both from ``opencts.testing.peers``), subscribes one email address and one webhook,
confirms both through their real links, then publishes N messages at a steady rate from one client. For
every message it records when the publish request was sent, when it was acknowledged, when the SMTP server
accepted the email (end of DATA) and when the webhook received the POST; all on one machine, one clock. The
floor is checked on the stricter measure, from the moment the publish was *sent*.
"""

from __future__ import annotations

import argparse
import time

from _measure import console, percentile, verdict
from _server import bench_server, remove_dir, scratch_dir
from _smn import Arrivals, Peers, paced
from rich.table import Table

from opencts.testing.peers import Mail
from opencts.testing.waiting import wait_for

FLOOR_P95_S = 1.0


def notification_id(mail: Mail) -> str | None:
    return None if "/confirm?token=" in mail.text else mail.message_id


def publish(peers: Peers, messages: int, rate: float) -> tuple[dict[str, float], dict[str, float]]:
    """Publish ``messages`` at ``rate``/s to a topic both peers are subscribed to, and wait until every one
    arrived at both; when each publish was sent and acknowledged, by message id."""
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    data_dir = scratch_dir("smn-")
    try:
        with bench_server(data_dir / "data", peers.env()) as server, server.client() as api:
            urn = peers.confirmed_topic(api, server.creds.project_id, "bench", "bench@example.com")
            console.print(f"publishing {messages} messages at {rate or 'max'}/s …")
            publish_url = f"/v2/{server.creds.project_id}/notifications/topics/{urn}/publish"
            for i in paced(messages, rate):
                t0 = time.time()
                resp = api.post(publish_url, json={"subject": f"m{i}", "message": "x"})
                resp.raise_for_status()
                message_id = resp.json()["message_id"]
                sent[message_id], acked[message_id] = t0, time.time()

            def all_in() -> bool:
                emails = peers.email_arrivals(notification_id).first
                hooks = peers.webhook_arrivals(lambda doc: str(doc["message_id"])).first
                return len(emails) >= len(sent) and len(hooks) >= len(sent)

            wait_for(all_in, 120, "every message at both receivers")
    finally:
        remove_dir(data_dir)
    return sent, acked


def report(sent: dict[str, float], acked: dict[str, float], email: Arrivals, webhook: Arrivals) -> bool:
    table = Table(title=f"SMN delivery latency, {len(sent)} messages, seconds")
    for col in ("path", "from", "p50", "p95", "p99", "max", "floor p95 ≤ 1 s"):
        table.add_column(col, justify="right" if col not in ("path", "from") else "left")
    ok = True
    for name, arrivals in (("email accepted by SMTP", email.first), ("webhook received", webhook.first)):
        for origin, times in (("publish sent", sent), ("publish acked", acked)):
            lat = [arrivals[m] - times[m] for m in sent]
            p95 = percentile(lat, 95)
            strict = origin == "publish sent"
            ok &= p95 <= FLOOR_P95_S if strict else True
            row = [f"{percentile(lat, q):.3f}" for q in (50, 95, 99)] + [f"{max(lat):.3f}"]
            table.add_row(name, origin, *row, verdict(p95 <= FLOOR_P95_S) if strict else "")
    console.print(table)
    console.print("(negative 'acked' figures: the message arrived before the publish answer did)")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200, help="messages to publish (default 200)")
    p.add_argument("--rate", type=float, default=20.0, help="publishes per second (default 20; 0 = flat out)")
    args = p.parse_args()
    with Peers() as peers:
        sent, acked = publish(peers, args.messages, args.rate)
        email = peers.email_arrivals(notification_id)
        webhook = peers.webhook_arrivals(lambda doc: str(doc["message_id"]))
    raise SystemExit(0 if report(sent, acked, email, webhook) else 1)


if __name__ == "__main__":
    main()
