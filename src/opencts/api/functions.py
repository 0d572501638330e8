"""FunctionGraph v2 functions, on the paths ``huaweicloudsdkfunctiongraph.v2.FunctionGraphClient`` calls.

Spec §4. URNs arrive percent-encoded and are decoded by the router; a URN names the function with or
without ``:latest``. A synchronous invocation answers ``{request_id, result, log, status}`` with HTTP 200
whatever the handler did (``status`` 200 or 500 says that), because the SDK raises on an HTTP error and
the caller could not read the handler's error then; 429 when the function is saturated. Beyond the SDK:
``invocations/{request_id}`` returns one invocation's record with its whole log (FunctionGraph keeps logs
in LTS; ``opencts functions logs`` reads this), and ``dead-letters`` lists and re-drives the queued
invocations that failed every attempt.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from opencts.api.auth import MAX_SIGNED_BODY, require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep, read_body, require_json
from opencts.clock import MINUTE_MS, iso_ms, now_ms
from opencts.errors import BadRequest, MalformedJSON, NotFound, Overloaded
from opencts.functions import code as code_mod
from opencts.functions import invocations, repository, triggers
from opencts.functions.model import (
    INVOCATION_STATUSES,
    CreateFunctionRequestBody,
    UpdateFunctionCodeRequestBody,
    UpdateFunctionConfigRequestBody,
)
from opencts.functions.repository import DEFAULT_PAGE, MAX_PAGE, FunctionRecord
from opencts.functions.runtime import TooBusy
from opencts.functions.service import FunctionService, sealed_context
from opencts.iam.principal import Principal

router = APIRouter(tags=["functiongraph"])

Creator = Annotated[Principal, Depends(require("functiongraph:function:create"))]
Updater = Annotated[Principal, Depends(require("functiongraph:function:update"))]
Deleter = Annotated[Principal, Depends(require("functiongraph:function:delete"))]
Lister = Annotated[Principal, Depends(require("functiongraph:function:list"))]
Getter = Annotated[Principal, Depends(require("functiongraph:function:get"))]
Invoker = Annotated[Principal, Depends(require("functiongraph:function:invoke"))]

BASE = "/v2/{project_id}/fgs/functions"
ONE = BASE + "/{function_urn}"
#: what ``X-Cff-Log-Type: tail`` returns of the log
LOG_TAIL = 4096
#: the longest window the statistics cover: FunctionGraph's period is the last N minutes, up to a month
MAX_PERIOD_MINUTES = 31 * 24 * 60


def _service(services: Services) -> FunctionService:
    if services.functions is None:
        raise NotFound("FunctionGraph is not enabled on this server")
    return services.functions


def _seal(services: Services, func_id: str, value: str | None) -> str | None:
    if not value:
        return None
    return services.box.seal(value.encode(), context=sealed_context(func_id))


async def _record(services: Services, project_id: str, urn: str) -> FunctionRecord:
    return await services.db.read(lambda conn: repository.get_by_urn(conn, project_id, urn))


def _int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer, not {raw[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be {low} to {high}")
    return value


def _time_param(request: Request, name: str) -> int | None:
    """Milliseconds, seconds, or an ISO date-time (the SDK sends its ``datetime`` as text)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if raw.isdigit():
        value = int(raw)
        return value if value > 10**11 else value * 1000
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: {raw[:40]!r} is neither milliseconds nor an ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _event(request: Request) -> bytes:
    """The invocation's event: any JSON object (an empty body is ``{}``), kept as the bytes sent."""
    require_json(request)
    raw = await read_body(request, MAX_SIGNED_BODY)
    if not raw.strip():
        return b"{}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the event is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedJSON("the event must be a JSON object")
    return bytes(raw)


# --- functions ----------------------------------------------------------------------------------------


@router.post(BASE, name="createFunction", summary="Create a function (inline or zip code, base64)")
async def create_function(
    project_id: str, request: Request, services: ServicesDep, caller: Creator
) -> Response:
    _service(services)
    body = await json_body(request, CreateFunctionRequestBody, limit=code_mod.MAX_CODE_BODY)
    assert body.func_code is not None and body.func_code.file is not None  # checked by the model
    code = code_mod.package(body.code_type, body.func_code.file, body.handler, body.code_filename)
    now = now_ms()

    def create(conn: Any) -> FunctionRecord:
        record = repository.create(
            conn,
            project_id=project_id,
            region=services.settings.region,
            body=body,
            code=code,
            encrypted_user_data=None,
            now=now,
        )
        if body.encrypted_user_data:
            record = repository.set_encrypted_user_data(
                conn, record, _seal(services, record.func_id, body.encrypted_user_data)
            )
        return record

    record = await services.db.write(create)
    return json_response(repository.function_object(record))


@router.get(BASE, name="listFunctions", summary="List functions (marker, maxitems, package_name, func_name)")
async def list_functions(
    project_id: str, request: Request, services: ServicesDep, caller: Lister
) -> Response:
    marker = _int_param(request, "marker", 0, low=0, high=10**9)
    limit = _int_param(request, "maxitems", DEFAULT_PAGE, low=1, high=MAX_PAGE)
    package = request.query_params.get("package_name") or None
    name = request.query_params.get("func_name") or None
    found, next_marker, count = await services.db.read(
        lambda conn: repository.list_functions(
            conn, project_id, marker=marker, limit=limit, package=package, name_contains=name
        )
    )
    return json_response(
        {
            "functions": [repository.function_object(r, summary=True) for r in found],
            "next_marker": next_marker if next_marker < count else 0,
            "count": count,
        }
    )


@router.get(ONE + "/config", name="showFunctionConfig", summary="A function's configuration")
async def show_function_config(
    project_id: str, function_urn: str, services: ServicesDep, caller: Getter
) -> Response:
    return json_response(repository.function_object(await _record(services, project_id, function_urn)))


@router.put(ONE + "/config", name="updateFunctionConfig", summary="Change a function's configuration")
async def update_function_config(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Updater
) -> Response:
    service = _service(services)
    body = await json_body(request, UpdateFunctionConfigRequestBody)
    now = now_ms()

    def change(conn: Any) -> FunctionRecord:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return repository.update_config(
            conn,
            record,
            body=body,
            encrypted_user_data=_seal(services, record.func_id, body.encrypted_user_data),
            now=now,
        )

    record = await services.db.write(change)
    service.forget(record.func_id)
    return json_response(repository.function_object(record))


def _code_object(record: FunctionRecord, source: str | None) -> dict[str, Any]:
    return {
        "func_urn": record.versioned_urn,
        "func_name": record.name,
        "domain_id": record.domain_id,
        "runtime": record.runtime,
        "code_type": record.code_type,
        "code_url": "",
        "code_filename": record.code_filename or "",
        "code_size": record.code_size,
        "digest": record.code_digest,
        "last_modified": iso_ms(record.last_modified),
        "func_code": {"file": source, "link": ""},
        "depend_list": [],
        "depend_version_list": [],
    }


@router.get(ONE + "/code", name="showFunctionCode", summary="A function's code (base64)")
async def show_function_code(
    project_id: str, function_urn: str, services: ServicesDep, caller: Getter
) -> Response:
    def read(conn: Any) -> tuple[FunctionRecord, str]:
        record = repository.get_by_urn(conn, project_id, function_urn)
        data = repository.code_of(conn, record.func_id, record.code_digest)
        return record, code_mod.source_of(record.code_type, data)

    record, source = await services.db.read(read)
    return json_response(_code_object(record, source))


@router.put(ONE + "/code", name="updateFunctionCode", summary="Replace a function's code")
async def update_function_code(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Updater
) -> Response:
    service = _service(services)
    body = await json_body(request, UpdateFunctionCodeRequestBody, limit=code_mod.MAX_CODE_BODY)
    assert body.func_code is not None and body.func_code.file is not None  # checked by the model
    file_b64 = body.func_code.file
    now = now_ms()

    def change(conn: Any) -> FunctionRecord:
        record = repository.get_by_urn(conn, project_id, function_urn)
        code = code_mod.package(body.code_type, file_b64, record.handler, body.code_filename)
        return repository.update_code(conn, record, code_type=body.code_type, code=code, now=now)

    record = await services.db.write(change)
    service.forget(record.func_id)
    return json_response(_code_object(record, None))


@router.delete(ONE, name="deleteFunction", summary="Delete a function, its triggers and its invocations")
async def delete_function(
    project_id: str, function_urn: str, services: ServicesDep, caller: Deleter
) -> Response:
    service = _service(services)

    def remove(conn: Any) -> FunctionRecord:
        record = repository.get_by_urn(conn, project_id, function_urn)
        # its CTS triggers are key event notifications, which no foreign key reaches
        triggers.delete_for_function(conn, record)
        repository.delete_function(conn, record)
        return record

    record = await services.db.write(remove)
    service.forget(record.func_id)
    services.matchers.invalidate(project_id)
    return Response(status_code=204)


# --- invocations --------------------------------------------------------------------------------------


@router.post(ONE + "/invocations", name="invokeFunction", summary="Invoke synchronously")
async def invoke_function(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Invoker
) -> Response:
    service = _service(services)
    record = await _record(services, project_id, function_urn)
    event = await _event(request)
    request_id = str(uuid.uuid4())
    started = now_ms()
    try:
        result = await service.invoke(record, event, request_id=request_id)
    except TooBusy:
        now = now_ms()
        await services.db.write(
            lambda conn: invocations.record_rejected(
                conn, project_id=project_id, func_id=record.func_id, request_id=request_id, now=now
            )
        )
        raise Overloaded(
            f"function {record.name} is running {services.settings.functions_concurrency} invocations and"
            f" has {services.settings.functions_queue_limit} waiting; try again shortly"
        ) from None
    finished = now_ms()
    await services.db.write(
        lambda conn: invocations.record_sync(
            conn, project_id=project_id, func_id=record.func_id, result=result, started=started, now=finished
        )
    )
    tail = request.headers.get("x-cff-log-type", "").lower() == "tail"
    log_text = result.log.encode()[-LOG_TAIL:].decode(errors="ignore") if tail else ""
    summary = {
        "duration": round(result.duration_ms, 3),
        "billingDuration": max(1, int(result.duration_ms + 0.999)),
        "memorySize": record.memory_size,
    }
    headers = {"X-Cff-Request-Id": request_id, "X-Cff-Invoke-Summary": orjson.dumps(summary).decode()}
    if tail:
        headers["X-Cff-Function-Log"] = base64.b64encode(log_text.encode()).decode()
    body = {
        "request_id": request_id,
        "result": result.result,
        "log": log_text,
        "status": 200 if result.status == "success" else 500,
    }
    return json_response(body, headers=headers)


@router.post(ONE + "/invocations-async", name="asyncInvokeFunction", status_code=202, summary="Invoke later")
async def async_invoke_function(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Invoker
) -> Response:
    service = _service(services)
    event = await _event(request)
    now = now_ms()

    def queue(conn: Any) -> str:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return invocations.enqueue(
            conn, project_id=project_id, func_id=record.func_id, source="async", event=event, now=now
        )

    request_id = await services.db.write(queue)
    service.wake()
    return json_response({"request_id": request_id}, 202)


def _invocation_object(row: Any) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "status": row.status,
        "error_message": row.error_message or "",
        "error_code": row.error_code or 0,
        "start_time": iso_ms(row.start_time or row.created_at),
        "end_time": iso_ms(row.end_time) if row.end_time else "",
        # beyond FunctionGraph's fields: where it came from and how often it ran
        "source": row.source,
        "attempts": row.attempts,
        "trigger_id": row.trigger_id,
        "trace_id": row.trace_id,
        "duration": row.duration_ms,
    }


@router.get(ONE + "/async-invocations", name="listAsyncInvocations", summary="Async and trigger invocations")
async def list_async_invocations(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Getter
) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in INVOCATION_STATUSES:
        raise BadRequest(f"status: must be one of {', '.join(INVOCATION_STATUSES)}")
    body = await _invocation_page(
        services,
        request,
        project_id,
        function_urn,
        status=status,
        request_id=request.query_params.get("request_id") or None,
        begin=_time_param(request, "query_begin_time"),
        end=_time_param(request, "query_end_time"),
    )
    return json_response(body)


async def _invocation_page(
    services: Services, request: Request, project_id: str, function_urn: str, **where: Any
) -> dict[str, Any]:
    """A page of a function's async and trigger invocations: ``marker`` is an offset, ``limit`` ≤ 500."""
    marker = _int_param(request, "marker", 0, low=0, high=10**9)
    limit = _int_param(request, "limit", 100, low=1, high=500)

    def read(conn: Any) -> tuple[list[Any], int, int]:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return invocations.list_invocations(
            conn, project_id=project_id, func_id=record.func_id, marker=marker, limit=limit, **where
        )

    rows, next_marker, count = await services.db.read(read)
    return {
        "invocations": [_invocation_object(r) for r in rows],
        "count": count,
        "next_marker": next_marker if next_marker < count else 0,
    }


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    request_id: str
    type: str | None = None


@router.post(ONE + "/cancel", name="cancelAsyncInvocation", summary="Discard a queued async invocation")
async def cancel_async_invocation(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Invoker
) -> Response:
    body = await json_body(request, CancelBody)

    def cancel(conn: Any) -> None:
        record = repository.get_by_urn(conn, project_id, function_urn)
        invocations.cancel(conn, project_id=project_id, func_id=record.func_id, request_id=body.request_id)

    await services.db.write(cancel)
    return json_response({})


@router.get(ONE + "/invocations/{request_id}", name="showInvocation", summary="One invocation, log included")
async def show_invocation(
    project_id: str, function_urn: str, request_id: str, services: ServicesDep, caller: Getter
) -> Response:
    def read(conn: Any) -> Any:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return invocations.get_invocation(
            conn, project_id=project_id, func_id=record.func_id, request_id=request_id
        )

    row = await services.db.read(read)
    return json_response({**_invocation_object(row), "result": row.result, "log": row.log or ""})


@router.get(ONE + "/dead-letters", name="listDeadLetters", summary="Queued invocations that failed every try")
async def list_dead_letters(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Getter
) -> Response:
    page = await _invocation_page(services, request, project_id, function_urn, status="FAIL")
    return json_response({"dead_letters": page.pop("invocations"), **page})


class RedriveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_ids: list[str] | None = None


@router.post(ONE + "/dead-letters/redrive", name="redriveDeadLetters", summary="Queue dead letters again")
async def redrive_dead_letters(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Invoker
) -> Response:
    service = _service(services)
    body = await json_body(request, RedriveBody)
    if body.request_ids is not None and not 1 <= len(body.request_ids) <= 1000:
        raise BadRequest("request_ids: name 1 to 1000 invocations, or leave it out for all")
    now = now_ms()

    def redrive(conn: Any) -> int:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return invocations.redrive(
            conn, project_id=project_id, func_id=record.func_id, request_ids=body.request_ids, now=now
        )

    count = await services.db.write(redrive)
    service.wake()
    return json_response({"count": count})


# --- statistics ---------------------------------------------------------------------------------------


def _period(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PERIOD_MINUTES:
        raise BadRequest(f"period: the last N minutes, 1 to {MAX_PERIOD_MINUTES}; not {value[:20]!r}")
    return int(value)


async def _series(
    services: Services, project_id: str, function_urn: str, period: str
) -> dict[str, list[dict[str, float]]]:
    minutes = _period(period)
    # about 60 points whatever the period, on whole minutes
    step = max(1, -(-minutes // 60)) * MINUTE_MS
    until = (now_ms() // MINUTE_MS + 1) * MINUTE_MS
    since = until - minutes * MINUTE_MS

    def read(conn: Any) -> list[invocations.Bucket]:
        record = repository.get_by_urn(conn, project_id, function_urn)
        return invocations.statistics(
            conn, project_id=project_id, func_id=record.func_id, since=since, until=until, step_ms=step
        )

    buckets = await services.db.read(read)

    def series(values: list[float]) -> list[dict[str, float]]:
        return [{"timestamp": b.start, "value": v} for b, v in zip(buckets, values, strict=True)]

    return {
        "count": series([b.count for b in buckets]),
        "duration": series([b.total_duration / b.count if b.count else 0 for b in buckets]),
        "fail_count": series([b.fail_count for b in buckets]),
        "max_duration": series([b.max_duration for b in buckets]),
        "min_duration": series([b.min_duration or 0 for b in buckets]),
        "reject_count": series([b.reject_count for b in buckets]),
        "function_error_count": series([b.function_errors for b in buckets]),
        "system_error_count": series([b.system_errors for b in buckets]),
        "reserved_instance_num": series([0 for _ in buckets]),
        "concurrency_num": series([0 for _ in buckets]),
    }


@router.get(
    "/v2/{project_id}/fgs/functions/{function_urn}/statistics/{period}",
    name="listFunctionStatistics",
    summary="Invocations, durations and failures over the last N minutes",
)
async def list_function_statistics(
    project_id: str, function_urn: str, period: str, services: ServicesDep, caller: Getter
) -> Response:
    return json_response(await _series(services, project_id, function_urn, period))


@router.get(
    "/v2/{project_id}/fgs/functions/{function_urn}/slareports/{period}",
    name="showFunctionMetrics",
    summary="The statistics, with this node's warm instances",
)
async def show_function_metrics(
    project_id: str, function_urn: str, period: str, services: ServicesDep, caller: Getter
) -> Response:
    body = await _series(services, project_id, function_urn, period)
    warm = _service(services).pool.stats().get("workers", 0)
    body["instance_num"] = [{**point, "value": float(warm)} for point in body["count"]]
    return json_response(body)
