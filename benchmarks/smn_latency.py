"""SMN delivery latency: publish → email accepted by an SMTP server, and → webhook received; floor p95 ≤ 1 s.

Starts ``opencts serve`` with its SMTP relay pointed at a local aiosmtpd server and the SSRF guard lifted for
a local webhook (``http.server``), subscribes one email address and one webhook, confirms both through their
real links, then publishes N messages at a steady rate from one client. For every message it records when
the publish request was sent, when it was acknowledged, when the SMTP server accepted the email (end of
DATA) and when the webhook received the POST; all on one machine, one clock. The floor is checked on the
stricter measure, from the moment the publish was *sent*.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
from _common import Server, console, free_port, percentile, remove_dir, scratch_dir, verdict
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from rich.table import Table

FLOOR_P95_S = 1.0
LINK = re.compile(r"https?://\S+/confirm\?token=\S+")


class Sink:
    """Arrival times by message id, from the SMTP server and the webhook."""

    def __init__(self) -> None:
        self.email: dict[str, float] = {}
        self.webhook: dict[str, float] = {}
        self.confirm_links: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.time()
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        body = msg.get_body(("plain",))
        found = LINK.findall(str(body.get_content()) if body is not None else "")
        with self.lock:
            if found:
                self.confirm_links.extend(found)
            else:
                self.email.setdefault(str(msg["X-Smn-Message-Id"]), at)
        return "250 accepted"


def start_webhook(sink: Sink, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            doc = orjson.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
            at = time.time()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if doc.get("type") == "SubscriptionConfirmation":
                threading.Thread(target=httpx.get, args=(doc["subscribe_url"],), daemon=True).start()
            else:
                with sink.lock:
                    sink.webhook.setdefault(doc["message_id"], at)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200, help="messages to publish (default 200)")
    p.add_argument("--rate", type=float, default=20.0, help="publishes per second (default 20; 0 = flat out)")
    args = p.parse_args()

    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook_port = free_port()
    hook = start_webhook(sink, hook_port)
    data_dir = scratch_dir("smn-")
    env = {
        "OPENCTS_SMTP_HOST": "127.0.0.1",
        "OPENCTS_SMTP_PORT": str(smtp.port),
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
    }
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    try:
        with Server(data_dir / "data", env=env) as server:
            creds = server.credentials()
            with server.client(creds) as api:
                base = f"/v2/{creds.project_id}/notifications"
                topic = api.post(f"{base}/topics", json={"name": "bench", "display_name": "Bench"}).json()
                urn = topic["topic_urn"]
                for protocol, endpoint in (
                    ("email", "bench@example.com"),
                    ("http", f"http://127.0.0.1:{hook_port}/"),
                ):
                    body = {"protocol": protocol, "endpoint": endpoint}
                    api.post(f"{base}/topics/{urn}/subscriptions", json=body).raise_for_status()
                wait(lambda: bool(sink.confirm_links), 30, "the confirmation email")
                httpx.get(sink.confirm_links[0]).raise_for_status()

                def confirmed() -> bool:
                    found = api.get(f"{base}/subscriptions", params={"status": 1}).json()
                    return int(found["subscription_count"]) == 2

                wait(confirmed, 30, "both confirmations")
                console.print(f"publishing {args.messages} messages at {args.rate or 'max'}/s …")
                interval = 1 / args.rate if args.rate else 0.0
                start = time.monotonic()
                for i in range(args.messages):
                    if interval:
                        time.sleep(max(0.0, start + i * interval - time.monotonic()))
                    t0 = time.time()
                    resp = api.post(f"{base}/topics/{urn}/publish", json={"subject": f"m{i}", "message": "x"})
                    resp.raise_for_status()
                    message_id = resp.json()["message_id"]
                    sent[message_id], acked[message_id] = t0, time.time()

            def all_in() -> bool:
                return len(sink.email) >= len(sent) and len(sink.webhook) >= len(sent)

            wait(all_in, 120, "every message at both receivers")
    finally:
        smtp.stop()
        hook.shutdown()
        remove_dir(data_dir)

    table = Table(title=f"SMN delivery latency, {len(sent)} messages, seconds")
    for col in ("path", "from", "p50", "p95", "p99", "max", "floor p95 ≤ 1 s"):
        table.add_column(col, justify="right" if col not in ("path", "from") else "left")
    ok = True
    for name, arrivals in (("email accepted by SMTP", sink.email), ("webhook received", sink.webhook)):
        for origin, times in (("publish sent", sent), ("publish acked", acked)):
            lat = [arrivals[m] - times[m] for m in sent]
            p95 = percentile(lat, 95)
            strict = origin == "publish sent"
            ok &= p95 <= FLOOR_P95_S if strict else True
            row = [f"{percentile(lat, q):.3f}" for q in (50, 95, 99)] + [f"{max(lat):.3f}"]
            table.add_row(name, origin, *row, verdict(p95 <= FLOOR_P95_S) if strict else "")
    console.print(table)
    console.print("(negative 'acked' figures: the message arrived before the publish answer did)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
