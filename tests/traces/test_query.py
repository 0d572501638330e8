from __future__ import annotations

import pytest

from opencts.clock import DAY_MS, HOUR_MS
from opencts.errors import BadRequest
from opencts.traces.query import parse_query

NOW = 1_800_000_000_000
WEEK = 7 * DAY_MS


def parse(**params: str) -> object:
    return parse_query(params, now=NOW, retention_ms=WEEK)


def test_defaults_are_the_last_hour_of_management_traces() -> None:
    q = parse_query({}, now=NOW, retention_ms=WEEK)
    assert (q.kind, q.time_from, q.time_to, q.limit, q.next) == ("system", NOW - HOUR_MS, NOW, 10, None)


def test_filters_map_to_columns_and_empty_ones_are_ignored() -> None:
    q = parse_query({"user": "alice", "service_type": "ECS", "resource_id": ""}, now=NOW, retention_ms=WEEK)
    assert q.filters == {"user_name": "alice", "service_type": "ECS"}


def test_from_before_the_retention_window_is_clamped() -> None:
    q = parse_query({"from": "0", "to": str(NOW)}, now=NOW, retention_ms=WEEK)
    assert q.time_from == NOW - WEEK


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "201"}, "limit must be between 1 and 200"),
        ({"limit": "0"}, "limit must be between 1 and 200"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"from": "5", "to": "5"}, "must be earlier"),
        ({"from": str(NOW), "to": str(NOW - 1)}, "must be earlier"),
        ({"trace_type": "audit"}, "trace_type must be one of system, data"),
        ({"trace_rating": "bad"}, "trace_rating"),
        ({"from": "-5"}, "between 0 and"),
        ({"user": "x" * 351}, "longer than 350"),
    ],
)
def test_bad_parameters_are_400(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_query(params, now=NOW, retention_ms=WEEK)


def test_export_takes_no_limit() -> None:
    q = parse_query({"limit": "100000"}, now=NOW, retention_ms=WEEK, max_limit=None)
    assert q.limit == 10
