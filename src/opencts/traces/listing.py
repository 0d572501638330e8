"""Run a :class:`TraceQuery` against the log and build the ListTraces answer as bytes.

Stored bodies are already the wire form, so the answer is spliced from them without re-encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection

from opencts.errors import BadRequest
from opencts.store import trace_log
from opencts.store.term_index import TermIndex
from opencts.traces.query import TraceQuery


def list_traces(
    conn: Connection,
    *,
    project_id: str,
    query: TraceQuery,
    index: TermIndex | None,
    columns: Sequence[str] = trace_log.PAGE_COLUMNS,
) -> tuple[list[Any], str | None]:
    """The rows of one page and the marker for the next (None at the end); ``index`` is the database's.

    ``columns`` picks what a page row holds (the console reads columns, the API the stored bodies); a
    lookup by trace id always gives whole rows, with ``time`` and ``body``."""
    if query.trace_id is not None:
        rows = trace_log.by_trace_id(
            conn,
            project_id=project_id,
            kind=query.kind,
            trace_id=query.trace_id,
            not_before=query.time_from,
        )
        return rows, None
    after = None
    if query.next is not None:
        after = trace_log.position_of(conn, project_id, query.next)
        if after is None:
            raise BadRequest("next is not a marker of this trace list (was it older than the retention?)")
    rows = trace_log.page(
        conn,
        project_id=project_id,
        kind=query.kind,
        time_from=query.time_from,
        time_to=query.time_to,
        filters=query.filters,
        after=after,
        limit=query.limit + 1,
        index=index,
        columns=columns,
    )
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        return rows, rows[-1].trace_id
    return rows, None


def render(rows: list[Any], marker: str | None) -> bytes:
    meta = orjson.dumps({"count": len(rows), "marker": marker})
    return b'{"traces":[' + b",".join(r.body for r in rows) + b'],"meta_data":' + meta + b"}"
