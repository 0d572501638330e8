"""The demo week: valid, in range, deterministic, and varied enough to exercise every filter and alarm."""

from __future__ import annotations

import time as clock
from functools import cache
from typing import Any

import pytest

from opencts.clock import MINUTE_MS
from opencts.traces.demo import DEMO_USERS, demo_week
from opencts.traces.model import TraceIn

END_MS = 1_780_000_000_000
WEEK_MS = 7 * 24 * 3600 * 1000
DOMAIN_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _week(seed: int = 7, count: int = 5000) -> list[dict[str, Any]]:
    return demo_week(
        project_id="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        domain_id=DOMAIN_ID,
        domain_name="Acme Corp",
        end_ms=END_MS,
        count=count,
        seed=seed,
    )


@cache
def _default_week() -> tuple[TraceIn, ...]:
    return tuple(TraceIn.model_validate(trace) for trace in _week())


def test_count_and_every_trace_validates() -> None:
    raw = _week()
    assert len(raw) == 5000
    traces = [TraceIn.model_validate(trace) for trace in raw]
    assert all(t.trace_id for t in traces)
    assert all(t.trace_type in ("ApiCall", "ConsoleAction", "SystemAction") for t in traces)
    assert all(t.user is not None and t.user.domain is not None for t in traces)
    assert all(t.user.domain.id == DOMAIN_ID for t in traces if t.user and t.user.domain)


def test_other_counts() -> None:
    assert _week(count=0) == []
    small = _week(count=37)
    assert len(small) == 37
    for trace in small:
        TraceIn.model_validate(trace)
    with pytest.raises(ValueError):
        _week(count=-1)


def test_times_in_range_and_sorted() -> None:
    times = [t.time for t in _default_week()]
    assert all(END_MS - WEEK_MS + MINUTE_MS < t < END_MS - 1_000 for t in times)
    assert times == sorted(times)
    # Spread over the whole week, not bunched at one end.
    days = {(END_MS - t) // (24 * 3600 * 1000) for t in times}
    assert days == set(range(7))


def test_deterministic_for_a_seed() -> None:
    assert _week(seed=7) == _week(seed=7)
    other = _week(seed=8)
    assert other != _week(seed=7)
    assert {t["trace_id"] for t in other}.isdisjoint({t["trace_id"] for t in _week(seed=7)})


def test_trace_ids_unique() -> None:
    ids = [t.trace_id for t in _default_week()]
    assert len(set(ids)) == len(ids)
    request_ids = [t.request_id for t in _default_week()]
    assert len(set(request_ids)) == len(request_ids)


def test_logins_and_logouts_from_several_ips() -> None:
    traces = _default_week()
    logins = [t for t in traces if t.trace_name == "login"]
    logouts = [t for t in traces if t.trace_name == "logout"]
    assert logins and logouts
    for t in logins + logouts:
        assert (t.service_type, t.trace_type, t.resource_type) == ("IAM", "ConsoleAction", "user")
    assert len({t.source_ip for t in logins}) >= 3
    assert len({t.source_ip for t in logouts}) >= 3
    failed = [t for t in logins if t.code == "401"]
    assert failed and all(t.trace_rating == "warning" for t in failed)


def test_a_user_mostly_logs_in_from_a_few_office_ips() -> None:
    traces = _default_week()
    ips: dict[str, dict[str, int]] = {}
    for t in traces:
        if t.trace_name == "login" and t.code != "401" and t.user and t.user.name:
            per_user = ips.setdefault(t.user.name, {})
            per_user[t.source_ip or ""] = per_user.get(t.source_ip or "", 0) + 1
    for per_user in ips.values():
        top3 = sorted(per_user.values(), reverse=True)[:3]
        assert sum(top3) >= 0.9 * sum(per_user.values())


def test_services_users_and_ratings() -> None:
    traces = _default_week()
    services = {t.service_type for t in traces}
    assert len(services & {"IAM", "ECS", "VPC", "OBS", "RDS"}) >= 4
    users = {t.user.name for t in traces if t.user}
    assert len(users) >= 5
    assert users == set(DEMO_USERS)
    ratings = {t.trace_rating for t in traces}
    assert ratings == {"normal", "warning", "incident"}
    normal = sum(t.trace_rating == "normal" for t in traces)
    assert normal > len(traces) / 2


def test_api_calls_carry_an_access_key_and_consoles_do_not() -> None:
    for t in _default_week():
        assert t.user is not None
        if t.trace_type == "ApiCall":
            assert t.user.access_key_id
        else:
            assert t.user.access_key_id is None


def test_resources_repeat() -> None:
    servers = [t.resource_id for t in _default_week() if t.service_type == "ECS"]
    assert len(set(servers)) <= 20 < len(servers)


def test_no_secrets() -> None:
    for t in _default_week():
        for text in (t.request or "", t.response or ""):
            assert 'password":' not in text.lower()
            assert "secret" not in text.lower()


def test_fast() -> None:
    started = clock.perf_counter()
    _week(seed=11)
    assert clock.perf_counter() - started < 1.0
