"""Hostile input on every route: never a 5xx, always the API's error shape with a request id, nothing lost.

Two sweeps over the routes the OpenAPI document lists, so a new route is swept without touching this file:

1. every path parameter, a set of query parameters and a set of raw bodies made hostile;
2. for the write operations, a body the API accepts (checked), then each of its fields, at any depth,
   replaced in turn by each hostile value, so validation deep inside a body is reached too.

Afterwards the traces ingested before the sweep are all still listed, and the audit trail refused none of
the calls (a refused audit trace would be an attempt missing from the trail).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.routing import APIRoute

from cts_helpers import Api, TraceFactory, api_routes
from sweep_helpers import BACKENDS, Findings, backend_api, fill, inline_code, resources


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with backend_api(request, tmp_path) as live:
        yield live


HOSTILE_SEGMENTS = [
    "nope",
    "%00",
    "..%2F..%2Fetc%2Fpasswd",
    "x" * 3000,
    "%C3%A9%E2%9C%93",
    "'%20OR%201=1--",
    "-1",
]
HOSTILE_QUERIES: list[dict[str, str]] = [
    {"limit": "-1"},
    {"limit": "abc"},
    {"limit": "99999999999999999999"},
    {"limit": "0"},
    {"offset": "-3"},
    {"marker": "garbage!!"},
    {"from": "x", "to": "-5"},
    {"start_time": "9" * 30, "end_time": "1"},
    {"trace_id": "%"},
    {"tracker_name": "x" * 500},
    {"day": "2026-13-45"},
    {"tree_size": "-1"},
    {"first": "5", "second": "2"},
    {"trace_type": "nope"},
    {"name": "\x00"},
]
HOSTILE_BODIES: list[bytes] = [
    b"",
    b"{nope",
    b"[]",
    b"null",
    b'"text"',
    b"1e999",
    b"[" * 5000 + b"]" * 5000,
    b'{"a": ' * 3000 + b"1" + b"}" * 3000,
    b"{}",
    "\ud800".encode("utf-8", "surrogatepass"),
]
#: what each field of an accepted body is replaced with, in turn
HOSTILE_VALUES: list[Any] = [
    None,
    -1,
    2**70,
    1.5,
    True,
    "",
    "x" * 5000,
    "\x00",
    "../../etc/passwd",
    [],
    {},
    [{}],
    {"a": [None]},
]


def routes(api: Api) -> dict[tuple[str, str], APIRoute]:
    """Every API route by (method, path template), read from the app, so a new route is swept too."""
    return {
        (method, route.path): route
        for route in api_routes(api.app.routes)
        if not route.path.startswith("/console")
        for method in sorted((route.methods or set()) - {"HEAD"})
    }


async def send(
    api: Api, method: str, path: str, *, params: Any = None, body: bytes | None = None
) -> httpx.Response:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return await api.client.request(method, path, params=params, content=body, headers=headers)


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path to every field of a body, containers included, lists through their first item."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from field_paths(item, (*prefix, key))
    elif isinstance(value, list) and value:
        yield from field_paths(value[0], (*prefix, 0))


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    holder = out
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    return out


VECTORS = Path(__file__).parent.parent / "sources" / "vectors"


def source_events() -> tuple[dict[str, Any], dict[str, Any]]:
    """One Kubernetes audit event and one bucket event, as their producers send them, stamped now."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    events = orjson.loads((VECTORS / "k8s_audit_eventlist.json").read_bytes())
    events["items"] = events["items"][:1]
    events["items"][0].update(requestReceivedTimestamp=stamp, stageTimestamp=stamp)
    bucket = orjson.loads((VECTORS / "minio_put_object.json").read_bytes())
    bucket["Records"][0]["eventTime"] = stamp
    bucket["Records"][0]["s3"]["bucket"]["name"] = "source-bucket"
    return events, bucket


def accepted_bodies(values: dict[str, str], trace: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """A body each write operation accepts, keyed by (method, path template)."""
    topic, key = values["topic_urn"], values["key_id"]
    kubernetes, bucket = source_events()
    return {
        ("POST", "/v3/{project_id}/traces"): {"traces": [trace]},
        ("POST", "/v3/{project_id}/tracker"): {
            "tracker_type": "data",
            "tracker_name": "sweep",
            "obs_info": {
                "bucket_name": "sweep-bucket",
                "file_prefix_name": "p",
                "is_obs_created": True,
                "bucket_lifecycle": 30,
                "compress_type": "gzip",
                "is_sort_by_service": True,
            },
            "data_bucket": {"data_bucket_name": "source-bucket", "data_event": ["READ", "WRITE"]},
            "is_support_validate": True,
        },
        ("PUT", "/v3/{project_id}/tracker"): {
            "tracker_type": "system",
            "tracker_name": "system",
            "status": "enabled",
            "is_support_validate": False,
            "management_event_selector": {"exclude_service": ["KMS"]},
        },
        ("POST", "/v3/{project_id}/notifications"): {
            "notification_name": "sweep",
            "operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "notify_user_list": [{"user_group": "admin", "user_list": ["admin"]}],
            "topic_id": topic,
            "filter": {
                "condition": "OR",
                "is_support_filter": True,
                "rule": ["code = 400", "trace_rating = incident"],
            },
        },
        ("POST", "/v3/{domain_id}/checkbucket"): {
            "buckets": [
                {
                    "bucket_name": "b1",
                    "bucket_location": "local-1",
                    "is_support_trace_files_encryption": False,
                }
            ]
        },
        ("POST", "/v3/{project_id}/{resource_type}/{resource_id}/tags/create"): {
            "tags": [{"key": "k", "value": "v"}]
        },
        ("PUT", "/v2/{project_id}/notifications/topics/{topic_urn}"): {"display_name": "renamed"},
        ("POST", "/v2/{project_id}/notifications/topics/{topic_urn}/subscriptions"): {
            "protocol": "https",
            "endpoint": "https://93.184.216.34/cts",
            "remark": "r",
        },
        ("POST", "/v2/{project_id}/notifications/topics/{topic_urn}/publish"): {
            "subject": "s",
            "message": "m",
        },
        ("PUT", "/v2/{project_id}/fgs/functions/{function_urn}/config"): {
            "func_name": "sweep",
            "runtime": "Python3.10",
            "handler": "index.handler",
            "memory_size": 256,
            "timeout": 5,
            "user_data": '{"A": "1"}',
        },
        ("PUT", "/v2/{project_id}/fgs/functions/{function_urn}/code"): {
            "code_type": "inline",
            "func_code": inline_code("def handler(event, context):\n    return 2\n"),
        },
        ("POST", "/v2/{project_id}/fgs/triggers/{function_urn}"): {
            "trigger_type_code": "CTS",
            "trigger_status": "ACTIVE",
            "event_data": {"name": "sweep_trigger", "operations": ["IAM:user:login"]},
        },
        ("POST", "/v1.0/{project_id}/kms/describe-key"): {"key_id": key},
        ("POST", "/v1.0/{project_id}/kms/list-keys"): {"limit": "10"},
        ("POST", "/v3/{project_id}/archive/query"): {
            "sql": "SELECT count(*) FROM traces",
            "tracker_name": "sweep",
        },
        ("POST", "/v3/projects/{project_id}/source-tokens"): {"name": "sweep", "source": "kubernetes"},
        ("POST", "/v3/{project_id}/sources/kubernetes"): kubernetes,
        ("POST", "/v3/{project_id}/sources/s3"): bucket,
    }


@pytest.fixture
async def world(
    api: Api, make_trace: TraceFactory, caplog: pytest.LogCaptureFixture
) -> tuple[dict[str, Any], dict[str, str]]:
    """A trace accepted before the sweep, and the resources the routes name."""
    caplog.set_level(logging.WARNING)
    trace = make_trace()
    stored = await api.client.post(f"/v3/{api.creds.project_id}/traces", json={"traces": [trace]})
    assert stored.status_code == 200 and stored.json()["accepted"] == 1, stored.text
    return trace, await resources(api, trace)


async def test_every_route_answers_hostile_paths_queries_and_bodies_in_its_error_shape(
    api: Api, world: tuple[dict[str, Any], dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    trace, values = world
    findings = Findings()
    for (method, template), route in routes(api).items():
        names = re.findall(r"{(\w+)(?::\w+)?}", template)
        for name in names:
            for segment in HOSTILE_SEGMENTS:
                path = fill(template, values, (name, segment))
                findings.check(await send(api, method, path), route, method, path, f"{name}={segment}")
        path = fill(template, values)
        for query in HOSTILE_QUERIES:
            findings.check(await send(api, method, path, params=query), route, method, path, str(query))
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            for raw in HOSTILE_BODIES:
                findings.check(await send(api, method, path, body=raw), route, method, path, repr(raw[:40]))
    assert not findings.problems, "\n".join(findings.problems)
    assert findings.requests > 3000
    await everything_is_still_there(api, trace, caplog)


async def test_each_field_of_an_accepted_body_made_hostile_is_refused_or_taken(
    api: Api,
    world: tuple[dict[str, Any], dict[str, str]],
    make_trace: TraceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace, values = world
    values["resource_type"], values["resource_id"] = "cts-tracker", values["tracker_id"]
    bodies = accepted_bodies(values, make_trace())
    findings = Findings()
    known = routes(api)
    for (method, template), body in bodies.items():
        path = fill(template, values)
        first = await send(api, method, path, body=orjson.dumps(body))
        assert first.status_code < 300, f"the accepted body of {method} {template}: {first.text}"
        for field in field_paths(body):
            for value in HOSTILE_VALUES:
                changed = json.dumps(replaced(body, field, value)).encode()  # orjson stops at 64-bit ints
                what = f"{'.'.join(map(str, field))}={value!r}"
                resp = await send(api, method, path, body=changed)
                findings.check(resp, known[method, template], method, path, what)
    assert not findings.problems, "\n".join(findings.problems)
    assert findings.requests > 1000
    await everything_is_still_there(api, trace, caplog)


async def everything_is_still_there(
    api: Api, trace: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    found = await api.list(trace_id=trace["trace_id"])
    assert found.status_code == 200 and [t["trace_id"] for t in found.json()["traces"]] == [trace["trace_id"]]
    refused = [r.getMessage() for r in caplog.records if "audit trace rejected" in r.getMessage()]
    assert not refused, refused[:5]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[:5]
