"""The one path by which traces enter the log: producers' batches and OpenCTS's own audit trail alike.

Keeping a single path means the same validation, the same tracker policy (a disabled tracker records
nothing) and the same wake-up of consumers apply to every trace, whoever made it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from opencts.clock import now_ms
from opencts.consumers import LogSignal
from opencts.store import Database
from opencts.store.trace_log import append
from opencts.traces.ingest import TraceResult, prepare, settle


class Policy(Protocol):
    def refuse(self, *, kind: str, service_type: str, trace_name: str, tracker_name: str) -> str | None: ...


PolicyLookup = Callable[[str], Awaitable[Policy | None]]


class TraceWriter:
    def __init__(
        self, db: Database, signal: LogSignal, *, retention_ms: int, policy: PolicyLookup | None = None
    ) -> None:
        self.db = db
        self.signal = signal
        self.retention_ms = retention_ms
        self.policy = policy

    async def write(self, project_id: str, items: Sequence[Any], *, shed: bool = True) -> list[TraceResult]:
        """Validate, apply the project's tracker policy, append durably; one verdict per item."""
        batch = prepare(items, project_id=project_id, now=now_ms(), retention_ms=self.retention_ms)
        if self.policy is not None and batch.rows:
            policy = await self.policy(project_id)
            if policy is not None:
                batch = batch.without(
                    lambda row: policy.refuse(
                        kind=row.kind,
                        service_type=row.service_type,
                        trace_name=row.trace_name,
                        tracker_name=row.tracker_name,
                    )
                )
        inserted: set[str] = set()
        if batch.rows:
            rows = batch.rows
            inserted = await self.db.write(lambda conn: append(conn, rows), shed=shed)
            if inserted:
                self.signal.notify()
        return settle(batch, inserted)
