"""Ingest's fast path gives exactly the verdicts, reasons, rows and stored bytes of the reference way.

The reference is the way ingest always went: ``TraceIn.model_validate``, ``normalise``, and
``ipaddress.ip_address`` for ``source_ip``. Each case runs ``prepare`` twice, once as it is and once with the
fast path switched off and ipaddress back in, and the two must agree on everything a caller or the log sees.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from opencts.clock import DAY_MS, MINUTE_MS
from opencts.store.trace_log import TraceRow
from opencts.traces import fast_path, ingest, model
from opencts.traces.ingest import PreparedBatch, TraceResult, prepare, summary
from opencts.traces.model import TraceIn

NOW = 1_800_000_000_000
RETENTION = 7 * DAY_MS
PROJECT = "p" * 32


def reference_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


GENERATED = "00000000-0000-4000-8000-"


def both_ways(items: list[Any], monkeypatch: pytest.MonkeyPatch) -> tuple[PreparedBatch, PreparedBatch]:
    """(fast, reference) preparations of ``items``; generated trace ids all start with GENERATED."""
    ids = (str(uuid.UUID(int=n, version=4)) for n in itertools.count())
    with monkeypatch.context() as patch:
        patch.setattr(model, "new_trace_id", lambda: next(ids))
        patch.setattr(fast_path, "new_trace_id", lambda: next(ids))
        fast = prepare(orjson.loads(orjson.dumps(items)), project_id=PROJECT, now=NOW, retention_ms=RETENTION)
        patch.setattr(ingest, "fast_normalise", lambda *args, **kwargs: None)
        patch.setattr(model, "is_ip_address", reference_ip)
        slow = prepare(orjson.loads(orjson.dumps(items)), project_id=PROJECT, now=NOW, retention_ms=RETENTION)
    return fast, slow


def _anonymous(text: Any) -> Any:
    """Which id was generated for which trace is not part of the verdict; that one was is."""
    if isinstance(text, str) and text.startswith(GENERATED):
        return "generated"
    if isinstance(text, bytes):
        return re.sub(rb'"00000000-0000-4000-8000-[0-9a-f]{12}"', b'"generated"', text)
    return text


def assert_same(fast: PreparedBatch, slow: PreparedBatch) -> None:
    def verdicts(batch: PreparedBatch) -> list[tuple[Any, ...]]:
        return [(r.index, _anonymous(r.trace_id), r.status, r.reason) for r in batch.results]

    def rows(batch: PreparedBatch) -> list[tuple[Any, ...]]:
        return [tuple(_anonymous(value) for value in row) for row in batch.rows]

    assert verdicts(fast) == verdicts(slow)
    assert fast.row_results == slow.row_results
    assert rows(fast) == rows(slow)  # every column, and the stored JSON byte for byte (key order included)
    assert all(type(row) is TraceRow for row in fast.rows)


def full_trace(n: int = 0) -> dict[str, Any]:
    """A management trace with every field CTS documents."""
    return {
        "trace_id": f"t-{n}",
        "trace_name": "createServer",
        "trace_rating": "warning",
        "trace_type": "ApiCall",
        "event_type": "system",
        "time": NOW - MINUTE_MS,
        "user": {
            "id": "u1",
            "name": "alice",
            "user_name": "alice",
            "domain": {"id": "d1", "name": "acme"},
            "account_id": "a1",
            "access_key_id": "AK1",
            "principal_urn": "iam::d1:user:alice",
            "principal_id": "p1",
            "principal_is_root_user": "false",
            "type": "User",
            "invoked_by": ["svc"],
            "session_context": {"attributes": {"created_at": "x", "mfa_authenticated": "true"}},
        },
        "request": {"server": {"name": "web-1", "tags": [1, 2.5, None, True]}},
        "response": "raw text",
        "code": 202,
        "api_version": "v2.1",
        "message": ["a", {"b": "c"}],
        "service_type": "ECS",
        "resource_type": "ecs",
        "resource_id": "srv-1",
        "resource_name": "web-1",
        "resource_account_id": "a1",
        "source_ip": "2001:db8::1",
        "request_id": "r-1",
        "location_info": "here",
        "endpoint": "https://ecs.example.com",
        "resource_url": "https://ecs.example.com/v2/servers/srv-1",
        "enterprise_project_id": "0",
        "read_only": False,
        "operation_id": "ECS:server:create",
        "project_id": PROJECT,
        "tracker_name": "system",
    }


def small_trace(n: int = 0) -> dict[str, Any]:
    return {"trace_name": "login", "trace_type": "ConsoleAction", "service_type": "IAM", "time": NOW - n}


def data_trace(n: int = 0) -> dict[str, Any]:
    return {**small_trace(n), "trace_type": "ObsSDK", "service_type": "OBS", "tracker_name": "bucket-audit"}


ZW = "\u200b"  # one character that is not ASCII: lengths count characters, not bytes
#: values to try in each field: valid ones, edge ones and wrong ones
TOP: dict[str, list[Any]] = {
    "trace_id": [None, "", "a", "a" * 64, "a" * 65, "-a", "a b", "é", "a\n", 5, ["a"]],
    "trace_name": [None, "", "a", "a" * 64, "a" * 65, "9a", "a.b-c_d", "a\n", "ä", 1],
    "trace_rating": [None, "normal", "incident", "Normal", "", 1],
    "trace_type": [None, "ApiCall", "SystemAction", "ObsAPI", "apicall", 3],
    "event_type": [None, "system", "data", "other", 1],
    "time": [
        None,
        999_999_999_999,
        1_000_000_000_000,
        99_999_999_999_999,
        100_000_000_000_000,
        NOW,
        NOW + 15 * MINUTE_MS,
        NOW + 15 * MINUTE_MS + 1,
        NOW - RETENTION,
        NOW - RETENTION + 1,
        float(NOW - 1000),
        NOW - 999.5,
        str(NOW - 1000),
        True,
        "soon",
    ],
    "user": [None, {}, "alice", [], {"name": "x", "password": "y"}, {"domain": None}, {"domain": {}}],
    "request": [None, "", "x" * 1_048_576, "x" * 1_048_577, {}, [], {"k": "v" * 1_048_576}, 5, 1.5, True],
    "response": [None, {"a": None}, [[[]]], ZW * 1_048_576],
    "message": [None, "m", {"nested": {"deep": [1]}}],
    "code": [None, 0, -1, 200, "200", "", "x" * 256, "x" * 257, True, False, 2.0, [200], 2**63 - 1],
    "api_version": [None, "v" * 64, "v" * 65, ZW * 64, ZW * 65, 1],
    "service_type": [None, "ECS", "ecs", "E", "E" * 64, "E" * 65, "E.C", "E-C_2", 1],
    "resource_type": [None, "r" * 128, "r" * 129, ""],
    "resource_id": [None, "r" * 350, "r" * 351],
    "resource_name": [None, "n" * 256, "n" * 257, ZW * 256, ZW * 257, 0],
    "source_ip": [None, "", "10.0.0.1", "10.0.0.256", "fe80::1%eth0", "::1%", "01.2.3.4", "x" * 65, 1],
    "request_id": [None, "r" * 256, "r" * 257],
    "location_info": [None, "l" * 4096, "l" * 4097],
    "endpoint": [None, "e" * 2048, "e" * 2049],
    "resource_url": [None, "u" * 2048, "u" * 2049],
    "enterprise_project_id": [None, "0", "e" * 64, "e" * 65],
    "read_only": [None, True, False, 0, 1, "true", "yes", 2],
    "operation_id": [None, "o" * 256, "o" * 257],
    "project_id": [None, PROJECT, "other", "p" * 65],
    "tracker_name": [None, "system", "bucket-audit", "", "-x", "t" * 64, "t" * 65, 1],
    "unknown_field": [None, 1, "x"],
}
USER: dict[str, list[Any]] = {
    "id": [None, "i" * 256, "i" * 257, 1],
    "name": [None, "", "bob", "n" * 257, 7],
    "user_name": [None, "", "bob", 7],
    "domain": [None, {}, {"id": None, "name": "acme"}, {"id": "d" * 257}, {"other": 1}, "acme"],
    "access_key_id": [None, "AK", "k" * 257],
    "principal_is_root_user": [None, True, False, "true", "x" * 1000, 1],
    "invoked_by": [None, [], ["a"], ["a" * 257], [None], "a", [1]],
    "session_context": [
        None,
        {},
        {"attributes": None},
        {"attributes": {}},
        {"attributes": {"created_at": "c" * 257}},
        {"attributes": {"created_at": None, "mfa_authenticated": "true"}},
        {"other": 1},
    ],
    "type": [None, "User", 1],
    "password": [None, "secret"],
}


def mutated(base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``base`` with ``key`` set to ``value``; None means sent as JSON null."""
    return {**base, key: value}


def single_mutations(base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield base
    for key, values in TOP.items():
        for value in values:
            yield mutated(base, key, value)
        yield {k: v for k, v in base.items() if k != key}  # and absent
    user = base.get("user", {})
    for key, values in USER.items():
        for value in values:
            yield mutated(base, "user", mutated(user, key, value))


@pytest.mark.parametrize("base", ["full", "small", "data"])
def test_each_field_alone_gets_the_reference_verdict(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make = {"full": full_trace, "small": small_trace, "data": data_trace}[base]
    for case in single_mutations(make()):  # one batch per case, so no verdict hides behind another
        assert_same(*both_ways([case], monkeypatch))


def test_random_combinations_get_the_reference_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    batch = []
    for n in range(3000):
        trace = rng.choice([full_trace, small_trace, data_trace])(n)
        for _ in range(rng.randint(0, 3)):
            if rng.random() < 0.25 and isinstance(trace.get("user"), dict):
                key = rng.choice(list(USER))
                trace["user"] = mutated(trace["user"], key, rng.choice(USER[key]))
            else:
                key = rng.choice(list(TOP))
                trace = mutated(trace, key, rng.choice(TOP[key]))
        batch.append(trace)
    for start in range(0, len(batch), 1000):
        fast, slow = both_ways(batch[start : start + 1000], monkeypatch)
        assert_same(fast, slow)
        assert {r.status for r in fast.results} == {"accepted", "rejected", "duplicate"}


def test_a_producer_that_writes_nulls_gets_the_reference_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    nulls = {name: None for name in fast_path.NULLABLE if name not in ("trace_id", "user")}
    user = {"name": "a", "id": None}
    batch = [{**small_trace(n), **nulls, "trace_id": f"n{n}", "user": user} for n in range(5)]
    batch.append({**small_trace(), "trace_id": "clean"})  # and a clean one after them
    batch.append({**small_trace(), "trace_id": "n9", "trace_rating": None})  # not an optional field
    fast, slow = both_ways(batch, monkeypatch)
    assert_same(fast, slow)
    assert [r.status for r in fast.results] == ["accepted"] * 6 + ["rejected"]
    assert orjson.loads(fast.rows[0].body)["user"] == {"name": "a"}
    for trace in orjson.loads(orjson.dumps(batch[:5])):  # and the fast path vouches for them, nulls dropped
        assert fast_path.fast_normalise(trace, PROJECT, NOW) is None
        assert fast_path.fast_normalise(trace, PROJECT, NOW, nulls=True) is not None


def test_the_fast_path_vouches_for_the_common_traces() -> None:
    """Not a question of verdicts (the fallback keeps those right) but of speed: these must not fall back."""
    for trace in (full_trace(), small_trace(), data_trace(), {**full_trace(), "code": "200"}):
        assert fast_path.fast_normalise(orjson.loads(orjson.dumps(trace)), PROJECT, NOW) is not None


def test_duplicates_and_nul_characters_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace refused for a NUL does not take its id from a later, good trace with the same id."""
    batch = [
        {**small_trace(1), "trace_id": "same", "resource_name": "bad\u0000name"},
        {**small_trace(2), "trace_id": "same"},
        {**small_trace(3), "trace_id": "same"},
        {**small_trace(4), "trace_id": "other", "message": "\\u0000 is no NUL"},
        # as JSON text the NUL is the escape \u0000, which PostgreSQL stores like any text
        {**small_trace(5), "trace_id": "more", "request": {"k\u0000": 1}},
        {**small_trace(6), "trace_id": "last", "user": {"name": "\u0000"}},
    ]
    fast, slow = both_ways(batch, monkeypatch)
    assert_same(fast, slow)
    statuses = [r.status for r in fast.results]
    assert statuses == ["rejected", "accepted", "duplicate", "accepted", "accepted", "rejected"]
    assert fast.results[0].reason == "a field contains a NUL character"


def test_bodies_nested_deeper_than_json_text_allows_are_rejected_not_raised() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    batch = [{**small_trace(), "request": deep}, small_trace(1)]
    result = prepare(batch, project_id=PROJECT, now=NOW, retention_ms=RETENTION)
    assert [r.status for r in result.results] == ["rejected", "accepted"]
    assert result.results[0].reason == "request: cannot be stored as JSON text: Recursion limit reached"


def test_python_strings_that_are_not_unicode_are_rejected_not_raised() -> None:
    """Only OpenCTS's own callers (self-audit) hand over Python objects; a lone surrogate is no 500."""
    batch = [
        {**small_trace(), "user": {"principal_is_root_user": "\ud800"}},
        {**small_trace(), "resource_name": "\ud800"},
        small_trace(1),
    ]
    result = prepare(batch, project_id=PROJECT, now=NOW, retention_ms=RETENTION)
    assert [r.status for r in result.results] == ["rejected", "rejected", "accepted"]
    assert (result.results[0].reason or "").startswith("a field cannot be stored as JSON")


def test_the_fast_schema_keeps_the_models_field_order() -> None:
    """The stored body is written in the model's field order; the fast validator must yield the same."""

    def order(schema: dict[str, Any]) -> list[str]:
        return list(schema["fields"])

    dumped = [name for name, field in TraceIn.model_fields.items() if not field.exclude]  # not `submitter`
    assert order(fast_path._FAST_TRACE) == dumped
    user_schema = fast_path._FAST_USER
    assert order(user_schema) == list(model.UserInfo.model_fields)
    nested: list[tuple[dict[str, Any], type[BaseModel]]] = [
        (user_schema["fields"]["domain"]["schema"], model.DomainInfo),
        (user_schema["fields"]["session_context"]["schema"], model.SessionContext),
        (user_schema["fields"]["session_context"]["schema"]["fields"]["attributes"]["schema"],
         model.SessionAttributes),
    ]  # fmt: skip
    for schema, cls in nested:
        assert order(schema) == list(cls.model_fields)


def test_rows_are_built_fast_and_equal_to_the_constructor() -> None:
    body = fast_path.fast_normalise(orjson.loads(orjson.dumps(full_trace())), PROJECT, NOW)
    assert body is not None
    fast = ingest.make_row(PROJECT, body, b"{}")
    plain = TraceRow(
        project_id=PROJECT,
        trace_id=body["trace_id"],
        kind=body["event_type"],
        time=body["time"],
        record_time=body["record_time"],
        trace_name=body["trace_name"],
        trace_rating=body["trace_rating"],
        trace_type=body["trace_type"],
        service_type=body["service_type"],
        resource_type=body.get("resource_type"),
        resource_id=body.get("resource_id"),
        resource_name=body.get("resource_name"),
        user_name=model.user_name(body),
        access_key_id=model.access_key_id(body),
        tracker_name=body["tracker_name"],
        enterprise_project_id=body.get("enterprise_project_id"),
        body=b"{}",
        source_ip=body.get("source_ip"),
        code=body.get("code"),
        request_id=body.get("request_id"),
    )
    assert fast == plain and type(fast) is TraceRow and hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert fast.user_name == "alice" and fast.access_key_id == "AK1" and fast.code == "202"
    with pytest.raises(AttributeError):
        fast.code = "x"  # type: ignore[misc]  # immutable


def test_generated_ids_are_uuid4_text() -> None:
    for raw in [bytes(16), b"\xff" * 16, *(random.Random(n).randbytes(16) for n in range(2000))]:
        assert model.uuid4_text(raw) == str(uuid.UUID(bytes=raw, version=4))
    ids = {model.new_trace_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(uuid.UUID(i).version == 4 for i in ids)


def test_the_answer_lists_every_verdict_as_before() -> None:
    results = [
        TraceResult(0, "a", "accepted"),
        TraceResult(1, None, "rejected", "trace_rating: bad"),
        TraceResult(2, "a", "duplicate"),
        TraceResult(3, "b", "rejected", "the management tracker is disabled; CTS records nothing"),
        TraceResult(4, "c", "accepted"),
    ]
    assert orjson.dumps(summary(results)) == orjson.dumps(
        {
            "accepted": 2,
            "duplicates": 1,
            "rejected": 2,
            "results": [r.as_dict() for r in results],
        }
    )
