"""Real SMN peers for the latency benchmarks: an SMTP server and a webhook (from :mod:`opencts.testing`),
one topic with both subscribed and confirmed through their real links, and publishing at a steady rate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from opencts.testing.peers import HttpReceiver, Mail, SmtpSink, links_in
from opencts.testing.waiting import wait_for


@dataclass
class Arrivals:
    """When each key first arrived at a receiver, and how many arrived again."""

    first: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0

    @classmethod
    def of(cls, receipts: Iterable[tuple[str, float]]) -> Arrivals:
        found = cls()
        for key, at in receipts:
            if key in found.first:
                found.duplicates += 1
            else:
                found.first[key] = at
        return found


@dataclass
class Peers:
    """An SMTP server and a webhook on 127.0.0.1, and the settings that point a server at them."""

    smtp: SmtpSink = field(default_factory=SmtpSink)
    hook: HttpReceiver = field(default_factory=HttpReceiver)

    def __enter__(self) -> Peers:
        self.smtp.start()
        self.hook.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.smtp.stop()
        self.hook.stop()

    def env(self) -> dict[str, str]:
        return {
            "OPENCTS_SMTP_HOST": "127.0.0.1",
            "OPENCTS_SMTP_PORT": str(self.smtp.port),
            "OPENCTS_SMTP_SECURITY": "none",
            "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        }

    def confirmed_topic(self, api: httpx.Client, project_id: str, name: str, address: str) -> str:
        """A topic with ``address`` and the webhook subscribed, both confirmed by their links; its URN."""
        base = f"/v2/{project_id}/notifications"
        urn = str(api.post(f"{base}/topics", json={"name": name, "display_name": name}).json()["topic_urn"])
        for protocol, endpoint in (("email", address), ("http", self.hook.url)):
            body = {"protocol": protocol, "endpoint": endpoint}
            api.post(f"{base}/topics/{urn}/subscriptions", json=body).raise_for_status()
        mail = wait_for(lambda: self.smtp.to(address), 30, "the confirmation email")[0]
        httpx.get(links_in(mail.text, "/confirm?token=")[0]).raise_for_status()

        def confirmed() -> bool:
            found = api.get(f"{base}/subscriptions", params={"status": 1}).json()
            return int(found["subscription_count"]) == 2

        wait_for(confirmed, 30, "both confirmations")
        return urn

    def email_arrivals(self, key: Callable[[Mail], str | None]) -> Arrivals:
        """Arrivals of the notification emails, keyed by ``key(mail)`` (None: not a notification)."""
        return Arrivals.of((k, m.at) for m in self.smtp.all() if (k := key(m)) is not None)

    def webhook_arrivals(self, key: Callable[[dict[str, Any]], str]) -> Arrivals:
        return Arrivals.of((key(r.doc), r.at) for r in self.hook.posts("Notification"))


def paced(count: int, rate: float) -> Iterator[int]:
    """0 .. count-1, one every 1/rate seconds from the first (as fast as taken with rate 0)."""
    interval = 1 / rate if rate else 0.0
    start = time.monotonic()
    for i in range(count):
        if interval:
            time.sleep(max(0.0, start + i * interval - time.monotonic()))  # the pace, not a wait for an event
        yield i
