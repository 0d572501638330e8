"""The ``ledger`` consumer, which appends every trace to its project's tree, and the checkpoint writer.

The consumer runs beside ingest, not inside the append transaction: ingest pays nothing, and the tree
trails the log by one poll. Its cursor means "every trace with seq <= it is a leaf". Effects and cursor
are in different transactions (as for every consumer), so a batch may be seen twice; the tree row's
``last_seq`` makes the repeat a no-op (:mod:`opencts.ledger.repository`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opencts.clock import now_ms
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.iam.secrets import SecretBox
from opencts.ledger import repository
from opencts.ledger.repository import NoteSigner
from opencts.store import Database

log = logging.getLogger(__name__)


class LedgerConsumer:
    name = "ledger"
    batch_size = 2000
    wake_on_append = False
    with_body = True
    poll_seconds = 0.5

    def __init__(self, db: Database) -> None:
        self.db = db

    async def process(self, rows: list[Any]) -> int | None:
        await self.db.write(lambda conn: repository.append_log_rows(conn, rows, now_ms()))
        return None


async def write_checkpoints(db: Database, signer: NoteSigner) -> int:
    """Sign a checkpoint of every project whose tree grew; how many were signed."""
    return await db.write(lambda conn: repository.checkpoint_grown(conn, signer, now_ms()))


async def run_checkpoints(db: Database, signer: NoteSigner, interval: float) -> None:
    """Every ``interval`` seconds, checkpoint the trees that grew (``settings.checkpoint_interval``)."""
    while True:
        try:
            await write_checkpoints(db, signer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("signing checkpoints failed; retrying in %.1fs", interval)
        await asyncio.sleep(interval)


def start_ledger(db: Database, settings: Settings, box: SecretBox) -> list[asyncio.Task[None]]:
    """The server's ledger tasks: the consumer and the checkpoint writer (the app's lifespan cancels them)."""
    signer = NoteSigner.from_settings(settings, box)
    runner = ConsumerRunner(db, LedgerConsumer(db))
    return [
        asyncio.create_task(runner.run_forever(), name="ledger"),
        asyncio.create_task(run_checkpoints(db, signer, settings.checkpoint_interval), name="checkpoints"),
    ]
