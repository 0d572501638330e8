"""``SmnService``: what the app holds for SMN — settings, the signing key, the channels and the worker."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.smn.channels import Channels, Links
from opencts.smn.signing import Signer
from opencts.smn.worker import Backoff, DeliveryWorker
from opencts.store import Database

log = logging.getLogger(__name__)


@dataclass
class SmnService:
    settings: Settings
    region: str
    signer: Signer
    links: Links
    channels: Channels
    worker: DeliveryWorker
    task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, db: Database, settings: Settings, signer: Signer, box: SecretBox) -> SmnService:
        links = Links(settings.resolved_public_url, signer)
        channels = Channels(settings, signer, links, box)
        worker = DeliveryWorker(
            db,
            channels,
            concurrency=settings.smn_concurrency,
            lease_seconds=settings.smn_lease_seconds,
            poll_seconds=settings.smn_poll_seconds,
            send_timeout=settings.smn_send_timeout_seconds,
            backoff=Backoff(settings.smn_retry_base_seconds, settings.smn_retry_max_seconds),
            keep_days=settings.smn_keep_days,
        )
        if settings.allow_private_endpoints:
            log.warning("OPENCTS_ALLOW_PRIVATE_ENDPOINTS is on: webhooks may reach private addresses")
        return cls(settings, settings.region, signer, links, channels, worker)

    def wake_deliveries(self) -> None:
        """Start a delivery round now: something was just queued, so the worker need not wait for its poll."""
        self.worker.wake()

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run_forever(), name="smn-delivery")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.worker.close()
        await self.channels.aclose()
