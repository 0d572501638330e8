"""Reading LTS: a project's log groups, a group's streams, and a stream's records by time and keywords.

The answers have the shapes ``huaweicloudsdklts`` (v2) parses: ``ListLogGroupsResponse``,
``ListLogStreamResponse`` and ``ListLogsResponse``; the query takes ``QueryLtsLogParams``.

Keywords follow LTS's keyword search: a keyword is a whole word between two delimiters (LTS's default
delimiter set), matched without regard to case; words side by side must all occur (``AND`` may be
written), ``OR`` separates alternatives, ``NOT`` excludes a word, a trailing ``*`` matches a prefix,
and ``"a phrase"`` matches those characters anywhere. SQL narrows the candidates with ``LIKE`` on each
required word; each candidate is then checked word by word here, so a word inside a longer one
(``error`` in ``errors``) never matches.

The time range and the order are those of receipt, as LTS's are of collection: ``record_time``, when the
``lts`` consumer wrote the record (then the line number), oldest first unless ``is_desc``. So a record
that arrives later always sorts after the ones before it, whatever its trace's own ``time`` (an import, a
skewed clock), and following a stream by line number misses nothing; the trace's time is the label
``__time__``, LTS's custom time. A page ends at ``limit``; the next page passes the last record's
``line_num`` with ``search_type: forwards`` (``backwards`` pages towards the start). Keywords are not
highlighted (``highlight`` is accepted and ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, or_, select

from opencts.errors import BadRequest, NotFound
from opencts.store.tables import lts_groups, lts_records, lts_streams

#: LTS's default delimiters (and white space)
_DELIMITERS = re.compile(r"""[\s,'";=()\[\]{}?@&<>/:]+""")
#: candidates SQL hands over per round while a page is filled
_SCAN = 1000
MAX_LIMIT = 5000
DEFAULT_LIMIT = 50
#: the labels of a record that a query's ``labels`` can match, from the trace
LABEL_FIELDS = ("trace_id", "trace_name", "trace_rating", "trace_type", "service_type", "resource_type")


def list_groups(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(lts_groups).where(lts_groups.c.project_id == project_id).order_by(lts_groups.c.creation_time)
    )
    return [
        {
            "log_group_id": r.id,
            "log_group_name": r.name,
            "log_group_name_alias": r.name,
            "creation_time": int(r.creation_time),
            "ttl_in_days": int(r.ttl_in_days),
            "tag": {},
        }
        for r in rows
    ]


def _group(conn: Connection, project_id: str, group_id: str) -> None:
    found = conn.execute(
        select(lts_groups.c.id).where(lts_groups.c.id == group_id, lts_groups.c.project_id == project_id)
    ).first()
    if found is None:
        raise NotFound(f"log group {group_id} does not exist in project {project_id}")


def list_streams(conn: Connection, project_id: str, group_id: str) -> list[dict[str, Any]]:
    """A group's streams; a group of another project is as absent as one that never existed (404)."""
    _group(conn, project_id, group_id)
    ttl = conn.execute(select(lts_groups.c.ttl_in_days).where(lts_groups.c.id == group_id)).scalar_one()
    rows = conn.execute(
        select(lts_streams)
        .where(lts_streams.c.group_id == group_id, lts_streams.c.project_id == project_id)
        .order_by(lts_streams.c.creation_time, lts_streams.c.name)
    )
    return [
        {
            "log_stream_id": r.id,
            "log_stream_name": r.name,
            "log_stream_name_alias": r.name,
            "creation_time": int(r.creation_time),
            "tag": {},
            "filter_count": 0,
            "is_favorite": False,
            "whether_log_storage": True,
            "hot_cold_separation": False,
            "auth_web_tracking": False,
            "ttl_in_days": int(ttl),
        }
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    prefix: bool = False
    phrase: bool = False
    negated: bool = False

    def found(self, content: str, words: set[str]) -> bool:
        if self.phrase:
            hit = self.text in content.lower()
        elif self.prefix:
            hit = any(w.startswith(self.text) for w in words)
        else:
            hit = self.text in words
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class Keywords:
    """A parsed keyword expression: alternatives (OR) of words that must all match (AND)."""

    alternatives: tuple[tuple[_Word, ...], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Keywords:
        if not text or not text.strip():
            return cls()
        alternatives: list[tuple[_Word, ...]] = []
        current: list[_Word] = []
        negate = False
        for token in re.findall(r'"[^"]*"|\S+', text):
            if token == "OR":
                if current:
                    alternatives.append(tuple(current))
                current, negate = [], False
            elif token == "AND":
                continue
            elif token == "NOT":
                negate = True
            else:
                current.append(_word(token, negate))
                negate = False
        if current:
            alternatives.append(tuple(current))
        return cls(tuple(alternatives))

    def matches(self, content: str) -> bool:
        if not self.alternatives:
            return True
        words = {w for w in _DELIMITERS.split(content.lower()) if w}
        return any(all(w.found(content, words) for w in group) for group in self.alternatives)

    def required(self) -> list[str]:
        """Text every match contains (for SQL's ``LIKE``): only when there is a single alternative."""
        if len(self.alternatives) != 1:
            return []
        return [w.text for w in self.alternatives[0] if not w.negated and w.text]


def _word(token: str, negated: bool) -> _Word:
    if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
        return _Word(token[1:-1].lower(), phrase=True, negated=negated)
    if token.endswith("*"):
        return _Word(token.rstrip("*").lower(), prefix=True, negated=negated)
    return _Word(token.lower(), negated=negated)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """``QueryLtsLogParams``, checked."""

    start_time: int
    end_time: int
    keywords: Keywords = field(default_factory=Keywords)
    labels: dict[str, str] = field(default_factory=dict)
    line_num: int | None = None
    is_desc: bool = False
    backwards: bool = False
    limit: int = DEFAULT_LIMIT
    is_count: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> LogQuery:
        """From the request body as the SDK sends it (times and line numbers are strings of digits)."""
        start, end = (
            _millis(params.get("start_time"), "start_time"),
            _millis(params.get("end_time"), "end_time"),
        )
        if start > end:
            raise BadRequest("start_time must not be after end_time")
        if params.get("query") or params.get("is_analysis_query"):
            raise BadRequest("SQL analysis (query, is_analysis_query) is not supported; search with keywords")
        line = params.get("line_num")
        search_type = params.get("search_type") or "init"
        if search_type not in ("init", "forwards", "backwards"):
            raise BadRequest(f"search_type must be init, forwards or backwards, not {search_type!r}")
        limit = params.get("limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
        labels = params.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise BadRequest("labels must be an object of strings")
        return cls(
            start_time=start,
            end_time=end,
            keywords=Keywords.parse(params.get("keywords")),
            labels={str(k): v for k, v in labels.items()},
            line_num=_millis(line, "line_num") if line not in (None, "") and search_type != "init" else None,
            is_desc=bool(params.get("is_desc")),
            backwards=search_type == "backwards",
            limit=limit,
            is_count=bool(params.get("is_count")),
        )


def _millis(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 19:
        return int(value)
    raise BadRequest(f"{name} must be a string of digits (milliseconds since 1970 for times)")


def labels_of(content: str) -> dict[str, str]:
    """A record's labels: the trace's naming fields, as strings."""
    try:
        trace = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(trace, dict):
        return {}
    return {k: str(trace[k]) for k in LABEL_FIELDS if trace.get(k) is not None}


def _candidates(conn: Connection, stream_id: str, q: LogQuery, descending: bool) -> Iterator[Any]:
    """The stream's records received in the range, in (receipt, line) order, narrowed by SQL, a round at a
    time."""
    r = lts_records.c
    conds = [r.stream_id == stream_id, r.record_time >= q.start_time, r.record_time <= q.end_time]
    conds += [r.content.ilike(f"%{_escape(w)}%", escape="\\") for w in q.keywords.required()]
    after: tuple[int, int] | None = None
    if q.line_num is not None:
        at = conn.execute(select(r.record_time).where(r.stream_id == stream_id, r.id == q.line_num)).scalar()
        if at is None:
            raise BadRequest(f"line_num {q.line_num} is not a record of this stream")
        after = (int(at), q.line_num)
    order = (r.record_time.desc(), r.id.desc()) if descending else (r.record_time, r.id)
    while True:
        stmt = select(r.id, r.time, r.record_time, r.content).where(*conds)
        if after is not None:
            t, i = after
            at = r.record_time
            if descending:
                stmt = stmt.where(at <= t, or_(at < t, and_(at == t, r.id < i)))
            else:
                stmt = stmt.where(at >= t, or_(at > t, and_(at == t, r.id > i)))
        rows = conn.execute(stmt.order_by(*order).limit(_SCAN)).all()
        yield from rows
        if len(rows) < _SCAN:
            return
        after = (int(rows[-1].record_time), int(rows[-1].id))


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(q: LogQuery, content: str) -> dict[str, str] | None:
    """The record's labels when it matches the query's keywords and labels, else None."""
    if not q.keywords.matches(content):
        return None
    labels = labels_of(content)
    if any(labels.get(k) != v for k, v in q.labels.items()):
        return None
    return labels


def query_logs(
    conn: Connection, project_id: str, group_id: str, stream_id: str, q: LogQuery
) -> dict[str, Any]:
    """ListLogs: a page of the stream's records that match; ``count`` is the total when ``is_count``."""
    _group(conn, project_id, group_id)
    found = conn.execute(
        select(lts_streams.c.id).where(
            lts_streams.c.id == stream_id,
            lts_streams.c.group_id == group_id,
            lts_streams.c.project_id == project_id,
        )
    ).first()
    if found is None:
        raise NotFound(f"log stream {stream_id} does not exist in log group {group_id}")
    descending = q.is_desc != q.backwards
    logs: list[dict[str, Any]] = []
    total = 0
    for row in _candidates(conn, stream_id, q, descending):
        labels = _matches(q, row.content)
        if labels is None:
            continue
        total += 1
        if len(logs) < q.limit:
            labels["__time__"] = str(row.time)
            logs.append({"content": row.content, "line_num": str(row.id), "labels": labels})
        elif not q.is_count:
            break
    if q.backwards:
        logs.reverse()  # a page towards the start still reads in the query's order
    return {
        "count": total if q.is_count else len(logs),
        "logs": logs,
        "is_query_complete": True,
    }
