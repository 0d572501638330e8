"""The deployment's figures a scrape reads from the database (``metrics.database.read_snapshot``), on both
backends: the head, every consumer's cursor and lag in traces and seconds, open outbox rows."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection

from opencts.clock import now_ms
from opencts.consumers import set_cursor
from opencts.metrics.database import KNOWN_CONSUMERS, read_snapshot
from opencts.store import Database, trace_log
from opencts.store.trace_log import TraceRow


def _row(i: int, record_time: int) -> TraceRow:
    return TraceRow(
        project_id="p1",
        trace_id=f"t{i:03d}",
        kind="system",
        time=record_time,
        record_time=record_time,
        trace_name="createServer",
        trace_rating="normal",
        trace_type="ApiCall",
        service_type="ECS",
        resource_type="server",
        resource_id=f"r{i}",
        resource_name=None,
        user_name="alice",
        access_key_id=None,
        tracker_name="system",
        enterprise_project_id="0",
        body=orjson.dumps({"trace_id": f"t{i:03d}"}),
    )


def test_an_empty_log_lags_nowhere(database: Database) -> None:
    snap = read_snapshot(database)
    assert snap.head_seq == 0
    assert snap.consumers == dict.fromkeys(KNOWN_CONSUMERS, (0, 0, 0.0))
    assert snap.smn == {} and snap.functions == {}


def test_lag_in_traces_and_seconds(database: Database) -> None:
    now = now_ms()
    ages = (600_000, 300_000, 60_000)  # the three traces were recorded 10, 5 and 1 minutes ago
    database.write_sync(lambda c: trace_log.append(c, [_row(i, now - age) for i, age in enumerate(ages)]))
    head = database.read_sync(trace_log.last_seq)

    def cursors(conn: Connection) -> None:
        set_cursor(conn, "catalogue", head - 1)  # behind by the newest trace
        set_cursor(conn, "notifier", head)  # caught up
        set_cursor(conn, "sinks", head - 2)  # one the later issues add: shown with its cursor row

    database.write_sync(cursors)
    snap = read_snapshot(database)
    assert snap.head_seq == head
    position, lag, seconds = snap.consumers["catalogue"]
    assert (position, lag) == (head - 1, 1) and 60 <= seconds < 120
    assert snap.consumers["notifier"] == (head, 0, 0.0)
    position, lag, seconds = snap.consumers["sinks"]
    assert (position, lag) == (head - 2, 2) and 300 <= seconds < 360
    position, lag, seconds = snap.consumers["transfer"]  # never started: lags by the whole log
    assert (position, lag) == (0, head) and 600 <= seconds < 660
