"""Group commit: concurrent batches share transactions, and every caller still gets its own verdicts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opencts.consumers import LogSignal
from opencts.store import Database, migrate, trace_log
from opencts.traces.writer import TraceWriter


def trace(trace_id: str, time: int) -> dict[str, object]:
    return {
        "trace_id": trace_id,
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "time": time,
    }


async def test_concurrent_batches_are_committed_together_with_exact_verdicts(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    migrate.upgrade(db)
    try:
        from opencts.clock import now_ms

        now = now_ms()
        writer = TraceWriter(db, LogSignal(), retention_ms=86_400_000)
        transactions = 0
        real_write = db.write

        async def counting_write(fn, **kw):  # type: ignore[no-untyped-def]
            nonlocal transactions
            transactions += 1
            return await real_write(fn, **kw)

        db.write = counting_write  # type: ignore[method-assign]
        batches = [[trace(f"b{b}-{i}", now - 1000) for i in range(50)] for b in range(8)]
        batches.append([trace("b0-0", now - 1000), trace("b0-1", now - 1000)])  # a retry racing its original
        results = await asyncio.gather(*(writer.write("p", batch) for batch in batches))
        assert transactions < len(batches)
        assert [r.status for r in results[0]] == ["accepted"] * 50
        assert [r.status for r in results[-1]] == ["duplicate", "duplicate"]
        assert db.read_sync(lambda c: trace_log.count(c, "p")) == 400
    finally:
        db.close()
