"""``/console/functions``: the Functions pages (list, create, code, configuration, triggers, test,
invocation logs, monitoring), on the seeds' FunctionGraph console.

Each handler reads and writes through the modules the FunctionGraph API routes use
(``functions.repository``, ``functions.triggers``, ``functions.invocations``, the ``FunctionService``),
checks the API's action names, and takes its bodies from ``functions_form``, which builds them with the
API's own models. A function is addressed by package and name inside the session's project, so another
project's function is never found.
"""

from __future__ import annotations

import base64
import urllib.parse
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from opencts.api.deps import Services
from opencts.clock import MINUTE_MS, now_ms
from opencts.console import access, function_charts, functions_form
from opencts.console.access import ConsoleUser
from opencts.console.pages import ConsoleRoute, check_csrf, read_form, render, signed_in
from opencts.errors import BadRequest, Forbidden, MalformedJSON, NotFound, Overloaded
from opencts.functions import code as code_mod
from opencts.functions import invocations, repository, triggers
from opencts.functions.model import function_urn
from opencts.functions.repository import FunctionRecord
from opencts.functions.runtime import TooBusy
from opencts.functions.service import FunctionService
from opencts.functions.templates import TEMPLATES
from opencts.iam.permissions import FUNCTIONGRAPH_FULL_ACCESS, FUNCTIONGRAPH_READ_ONLY
from opencts.lts import query as lts_query
from opencts.trackers.operations import full_catalogue

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

#: the largest test event the Test tab sends (the API's signed-body limit is larger; a form is not)
MAX_EVENT_CHARS = 32 * 1024
#: Monitoring's periods: the last N minutes
PERIODS = {"60": "Last hour", "1440": "Last day", "10080": "Last week"}
TABS = ("code", "configuration", "triggers", "test", "logs", "monitoring")


async def _signed_in(request: Request, action: str) -> tuple[Services, ConsoleUser]:
    """``pages.signed_in``, with the FunctionGraph roles named when the user's roles fall short."""
    try:
        return await signed_in(request, action)
    except Forbidden:
        user = request.state.console_user
        raise Forbidden(
            f"your roles do not allow {action} in project {user.project.name}; ask an administrator of the"
            f" account for {FUNCTIONGRAPH_READ_ONLY} (to read functions and their logs) or"
            f" {FUNCTIONGRAPH_FULL_ACCESS} (also to create, change, invoke and delete them)"
        ) from None


def _service(services: Services) -> FunctionService:
    if services.functions is None:
        raise NotFound("FunctionGraph is not enabled on this server; start it with functions enabled")
    return services.functions


def _base(package: str, name: str) -> str:
    return f"/console/functions/{urllib.parse.quote(package, safe='')}/{urllib.parse.quote(name, safe='')}"


async def _function(services: Services, user: ConsoleUser, package: str, name: str) -> FunctionRecord:
    urn = function_urn(services.settings.region, user.project_id, package[:64], name[:64])
    try:
        return await services.db.read(lambda conn: repository.get_by_urn(conn, user.project_id, urn))
    except (NotFound, BadRequest):
        raise NotFound(
            f"function {package[:64]}/{name[:64]} does not exist in project {user.project.name};"
            " pick one from the Functions list"
        ) from None


def _page(
    request: Request,
    template: str,
    record: FunctionRecord,
    tab: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> Response:
    return render(
        request,
        template,
        {"function": record, "base": _base(record.package, record.name), "tab": tab, "tabs": TABS, **context},
        status=status,
    )


def _done(base: str, tab: str, notice: str) -> Response:
    query = urllib.parse.urlencode({"done": notice})
    path = base if tab == "code" else f"{base}/{tab}"
    return RedirectResponse(f"{path}?{query}", status_code=303)


def _notice(request: Request) -> str | None:
    text = request.query_params.get("done")
    return text[:200] if text else None


# ---- list and create ---------------------------------------------------------------------------------


@router.get("/functions", name="consoleFunctions")
async def functions_page(request: Request) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:list")
    found, _, count = await services.db.read(
        lambda conn: repository.list_functions(conn, user.project_id, limit=400)
    )
    context = {
        "functions": found,
        "count": count,
        "enabled": services.functions is not None,
        "templates": TEMPLATES,
        "notice": _notice(request),
        "can_create": user.principal.can("functiongraph:function:create"),
    }
    return render(request, "functions.html", context)


@router.get("/functions/new", name="consoleNewFunction")
async def new_function_page(request: Request) -> Response:
    await _signed_in(request, "functiongraph:function:create")
    template = request.query_params.get("template") or ""
    form = functions_form.from_template(template) if template else functions_form.FunctionForm()
    return _create_page(request, form, [])


def _create_page(
    request: Request, form: functions_form.FunctionForm, errors: list[str], status: int = 200
) -> Response:
    context = {
        "form": form,
        "errors": errors,
        "templates": TEMPLATES,
        "runtimes": functions_form.RUNTIME_CHOICES,
        "memories": functions_form.MEMORY_CHOICES,
        "hints": functions_form.TEMPLATE_HINTS,
    }
    return render(request, "function_new.html", context, status=status)


@router.post("/functions/new", name="consoleCreateFunction")
async def create_function(request: Request) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:create")
    raw = await read_form(request, limit=code_mod.MAX_INLINE_SOURCE)
    check_csrf(user, raw)
    _service(services)
    form = functions_form.read_function_form(raw)
    now = now_ms()
    try:
        body = functions_form.create_body(form)
        assert body.func_code is not None and body.func_code.file is not None  # checked by the model
        code = code_mod.package(body.code_type, body.func_code.file, body.handler, None)
        record = await services.db.write(
            lambda conn: repository.create(
                conn,
                project_id=user.project_id,
                region=services.settings.region,
                body=body,
                code=code,
                encrypted_user_data=None,
                now=now,
            )
        )
    except ValidationError as exc:
        return _create_page(request, form, functions_form.messages(exc), 400)
    except BadRequest as exc:
        return _create_page(request, form, [exc.message], 400)
    await access.audit_change(request, services, user, "createFunction", record.name)
    return _done(_base(record.package, record.name), "code", f"Function {record.name} created.")


# ---- one function: code and configuration ---------------------------------------------------------------


@router.get("/functions/{package}/{name}", name="consoleFunction")
async def function_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:get")
    record = await _function(services, user, package, name)
    source = await services.db.read(lambda conn: _source(conn, record))
    return _page(
        request,
        "function_code.html",
        record,
        "code",
        {"code": source, "errors": [], "notice": _notice(request)},
    )


def _source(conn: Connection, record: FunctionRecord) -> str | None:
    """The inline source as text; None for uploaded zips, which the console does not edit."""
    if record.code_type != "inline":
        return None
    data = repository.code_of(conn, record.func_id, record.code_digest)
    return base64.b64decode(code_mod.source_of(record.code_type, data)).decode(errors="replace")


@router.post("/functions/{package}/{name}/code", name="consoleUpdateFunctionCode")
async def update_code(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:update")
    raw = await read_form(request, limit=code_mod.MAX_INLINE_SOURCE)
    check_csrf(user, raw)
    service = _service(services)
    record = await _function(services, user, package, name)
    text = raw.get("code", "")
    now = now_ms()
    try:
        file_b64 = functions_form.code_b64(text)

        def change(conn: Connection) -> FunctionRecord:
            current = repository.get_by_urn(conn, user.project_id, record.func_urn)
            code = code_mod.package("inline", file_b64, current.handler, None)
            return repository.update_code(conn, current, code_type="inline", code=code, now=now)

        await services.db.write(change)
    except BadRequest as exc:
        context = {"code": text, "errors": [exc.message], "notice": None}
        return _page(request, "function_code.html", record, "code", context, status=400)
    service.forget(record.func_id)
    await access.audit_change(request, services, user, "updateFunctionCode", record.name)
    return _done(_base(package, name), "code", "Code saved.")


@router.get("/functions/{package}/{name}/configuration", name="consoleFunctionConfig")
async def config_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:get")
    record = await _function(services, user, package, name)
    return _config_page(request, record, _form_of(record), [], _notice(request))


def _form_of(record: FunctionRecord) -> functions_form.FunctionForm:
    return functions_form.FunctionForm(
        name=record.name,
        package=record.package,
        runtime=record.runtime,
        handler=record.handler,
        memory=str(record.memory_size),
        timeout=str(record.timeout),
        agency=record.xrole or "",
        description=record.description,
        env=list(record.environment().items()),
    )


def _config_page(
    request: Request,
    record: FunctionRecord,
    form: functions_form.FunctionForm,
    errors: list[str],
    notice: str | None,
    status: int = 200,
) -> Response:
    context = {
        "form": form,
        "errors": errors,
        "notice": notice,
        "runtimes": functions_form.RUNTIME_CHOICES,
        "memories": functions_form.MEMORY_CHOICES,
        "sealed": bool(record.encrypted_user_data),
    }
    return _page(request, "function_config.html", record, "configuration", context, status=status)


@router.post("/functions/{package}/{name}/configuration", name="consoleUpdateFunctionConfig")
async def update_config(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:update")
    raw = await read_form(request)
    check_csrf(user, raw)
    service = _service(services)
    record = await _function(services, user, package, name)
    form = functions_form.read_function_form(raw)
    now = now_ms()
    try:
        body = functions_form.config_body(record.name, form)

        def change(conn: Connection) -> FunctionRecord:
            current = repository.get_by_urn(conn, user.project_id, record.func_urn)
            # the console shows no encrypted variables: those set through the API stay as they are
            return repository.update_config(
                conn, current, body=body, encrypted_user_data=current.encrypted_user_data, now=now
            )

        await services.db.write(change)
    except ValidationError as exc:
        return _config_page(request, record, form, functions_form.messages(exc), None, 400)
    except BadRequest as exc:
        return _config_page(request, record, form, [exc.message], None, 400)
    service.forget(record.func_id)
    await access.audit_change(request, services, user, "updateFunctionConfig", record.name)
    return _done(_base(package, name), "configuration", "Configuration saved.")


@router.post("/functions/{package}/{name}/delete", name="consoleDeleteFunction")
async def delete_function(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:delete")
    check_csrf(user, await read_form(request))
    service = _service(services)
    record = await _function(services, user, package, name)

    def remove(conn: Connection) -> None:
        triggers.delete_for_function(conn, record)
        repository.delete_function(conn, record)

    await services.db.write(remove)
    service.forget(record.func_id)
    services.matchers.invalidate(user.project_id)
    await access.audit_change(request, services, user, "deleteFunction", record.name)
    query = urllib.parse.urlencode({"done": f"Function {record.name} deleted."})
    return RedirectResponse(f"/console/functions?{query}", status_code=303)


# ---- triggers ----------------------------------------------------------------------------------------


@router.get("/functions/{package}/{name}/triggers", name="consoleFunctionTriggers")
async def triggers_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:trigger:list")
    record = await _function(services, user, package, name)
    opened = request.query_params.get("create") == "1"
    return await _triggers_page(request, services, user, record, functions_form.TriggerForm(), [], opened)


async def _triggers_page(
    request: Request,
    services: Services,
    user: ConsoleUser,
    record: FunctionRecord,
    form: functions_form.TriggerForm,
    errors: list[str],
    opened: bool,
    status: int = 200,
) -> Response:
    def read(conn: Connection) -> tuple[list[dict[str, Any]], int, list[tuple[str, str]]]:
        found = triggers.list_triggers(conn, function=record)
        streams = []
        for group in lts_query.list_groups(conn, user.project_id):
            for stream in lts_query.list_streams(conn, user.project_id, group["log_group_id"]):
                label = f"{group['log_group_name']} / {stream['log_stream_name']}"
                streams.append((f"{group['log_group_id']}/{stream['log_stream_id']}", label))
        return found, triggers.count(conn, user.project_id), streams

    found, used, streams = await services.db.read(read)
    catalogue = full_catalogue()
    context = {
        "triggers": found,
        "form": form,
        "errors": errors,
        "opened": opened or bool(errors),
        "used": used,
        "limit": triggers.MAX_CTS_TRIGGERS,
        "streams": streams,
        "services_list": sorted(catalogue),
        "resource_types": sorted({r for s in catalogue.values() for r in s}),
        "operation_names": sorted({n for s in catalogue.values() for names in s.values() for n in names}),
        "notice": _notice(request),
    }
    return _page(request, "function_triggers.html", record, "triggers", context, status=status)


def _triggers_changed(services: Services, project_id: str) -> None:
    services.matchers.invalidate(project_id)
    services.matchers.warm(services.db, project_id)


@router.post("/functions/{package}/{name}/triggers", name="consoleCreateFunctionTrigger")
async def create_trigger(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:trigger:create")
    raw = await read_form(request)
    check_csrf(user, raw)
    record = await _function(services, user, package, name)
    form = functions_form.read_trigger_form(raw)
    now = now_ms()
    try:
        body = functions_form.trigger_body(form)
        await services.db.write(lambda conn: triggers.create(conn, function=record, body=body, now=now))
    except ValidationError as exc:
        errors = functions_form.messages(exc)
        return await _triggers_page(request, services, user, record, form, errors, True, 400)
    except (BadRequest, NotFound) as exc:
        return await _triggers_page(request, services, user, record, form, [exc.message], True, exc.status)
    _triggers_changed(services, user.project_id)
    await access.audit_change(request, services, user, "createFunctionTrigger", record.name)
    return _done(_base(package, name), "triggers", f"{form.trigger_type} trigger created.")


@router.post("/functions/{package}/{name}/triggers/{kind}/{trigger_id}/status", name="consoleTriggerStatus")
async def trigger_status(request: Request, package: str, name: str, kind: str, trigger_id: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:trigger:update")
    raw = await read_form(request)
    check_csrf(user, raw)
    record = await _function(services, user, package, name)
    status = raw.get("status", "")
    if status not in ("ACTIVE", "DISABLED"):
        raise BadRequest("status must be ACTIVE or DISABLED; use the buttons of the trigger list")
    body = triggers.UpdateTriggerBody(trigger_status=status)  # type: ignore[arg-type]
    now = now_ms()
    await services.db.write(
        lambda conn: triggers.update_trigger(
            conn, function=record, trigger_type_code=kind, trigger_id=trigger_id[:64], body=body, now=now
        )
    )
    _triggers_changed(services, user.project_id)
    await access.audit_change(request, services, user, "updateTrigger", record.name)
    word = "enabled" if status == "ACTIVE" else "disabled"
    return _done(_base(package, name), "triggers", f"Trigger {word}.")


@router.post("/functions/{package}/{name}/triggers/{kind}/{trigger_id}/delete", name="consoleDeleteTrigger")
async def trigger_delete(request: Request, package: str, name: str, kind: str, trigger_id: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:trigger:delete")
    check_csrf(user, await read_form(request))
    record = await _function(services, user, package, name)
    await services.db.write(
        lambda conn: triggers.delete_trigger(
            conn, function=record, trigger_type_code=kind, trigger_id=trigger_id[:64]
        )
    )
    _triggers_changed(services, user.project_id)
    await access.audit_change(request, services, user, "deleteFunctionTrigger", record.name)
    return _done(_base(package, name), "triggers", "Trigger deleted.")


# ---- test (invoke) -------------------------------------------------------------------------------------


@router.get("/functions/{package}/{name}/test", name="consoleFunctionTest")
async def test_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:invoke")
    record = await _function(services, user, package, name)
    event = functions_form.login_event(
        project_id=user.project_id,
        domain_id=user.principal.domain_id,
        user_name=user.principal.user_name,
        source_ip=access.client_ip(request) or "192.0.2.1",
        now=now_ms(),
    )
    return _page(
        request, "function_test.html", record, "test", {"event": event, "outcome": None, "errors": []}
    )


def _event_bytes(text: str) -> bytes:
    """The event as the API takes it: a JSON object (empty is ``{}``)."""
    if len(text) > MAX_EVENT_CHARS:
        raise BadRequest(f"the test event is longer than {MAX_EVENT_CHARS:,} characters; shorten it")
    if not text.strip():
        return b"{}"
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"the test event is not valid JSON ({exc}); correct it and run again") from None
    if not isinstance(doc, dict):
        raise MalformedJSON("the test event must be a JSON object ({...})")
    return text.encode()


@router.post("/functions/{package}/{name}/test", name="consoleInvokeFunction")
async def invoke(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:invoke")
    raw = await read_form(request)
    check_csrf(user, raw)
    service = _service(services)
    record = await _function(services, user, package, name)
    text = raw.get("event", "")
    try:
        event = _event_bytes(text)
    except BadRequest as exc:
        context = {"event": text, "outcome": None, "errors": [exc.message]}
        return _page(request, "function_test.html", record, "test", context, status=400)
    request_id = str(uuid.uuid4())
    started = now_ms()
    try:
        result = await service.invoke(record, event, request_id=request_id)
    except TooBusy:
        now = now_ms()
        await services.db.write(
            lambda conn: invocations.record_rejected(
                conn, project_id=user.project_id, func_id=record.func_id, request_id=request_id, now=now
            )
        )
        raise Overloaded(
            f"function {record.name} is busy with as many invocations as it may run;"
            " run the test again shortly"
        ) from None
    finished = now_ms()
    await services.db.write(
        lambda conn: invocations.record_sync(
            conn,
            project_id=user.project_id,
            func_id=record.func_id,
            result=result,
            started=started,
            now=finished,
        )
    )
    await access.audit_change(request, services, user, "invokeFunction", record.name)
    outcome = {
        "request_id": request_id,
        "status": result.status,
        "result": result.result,
        "log": result.log,
        "duration": round(result.duration_ms, 1),
    }
    return _page(
        request, "function_test.html", record, "test", {"event": text, "outcome": outcome, "errors": []}
    )


# ---- invocation logs -----------------------------------------------------------------------------------


@router.get("/functions/{package}/{name}/logs", name="consoleFunctionLogs")
async def logs_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:get")
    record = await _function(services, user, package, name)
    status = request.query_params.get("status") or None
    if status is not None and status not in ("WAIT", "RUNNING", "SUCCESS", "FAIL", "DISCARD"):
        status = None
    marker = request.query_params.get("marker", "0")
    offset = int(marker) if marker.isdigit() and int(marker) < 10**6 else 0
    rows, next_marker, count = await services.db.read(
        lambda conn: invocations.list_invocations(
            conn,
            project_id=user.project_id,
            func_id=record.func_id,
            sources=("sync", "async", "trigger"),
            status=status,
            marker=offset,
            limit=50,
        )
    )
    context = {
        "invocations": rows,
        "count": count,
        "status": status or "",
        "next_marker": next_marker if next_marker < count else None,
        "prev_marker": max(offset - 50, 0) if offset else None,
    }
    return _page(request, "function_logs.html", record, "logs", context)


@router.get("/functions/{package}/{name}/logs/{request_id}", name="consoleFunctionInvocation")
async def invocation_page(request: Request, package: str, name: str, request_id: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:get")
    record = await _function(services, user, package, name)
    row = await services.db.read(
        lambda conn: invocations.get_invocation(
            conn, project_id=user.project_id, func_id=record.func_id, request_id=request_id[:64]
        )
    )
    return _page(request, "function_invocation.html", record, "logs", {"row": row})


# ---- monitoring --------------------------------------------------------------------------------------


@router.get("/functions/{package}/{name}/monitoring", name="consoleFunctionMonitoring")
async def monitoring_page(request: Request, package: str, name: str) -> Response:
    services, user = await _signed_in(request, "functiongraph:function:get")
    record = await _function(services, user, package, name)
    period = request.query_params.get("period", "60")
    if period not in PERIODS:
        period = "60"
    minutes = int(period)
    step = max(1, -(-minutes // 60)) * MINUTE_MS  # about 60 points, as the statistics API draws them
    until = (now_ms() // MINUTE_MS + 1) * MINUTE_MS
    since = until - minutes * MINUTE_MS
    buckets = await services.db.read(
        lambda conn: invocations.statistics(
            conn, project_id=user.project_id, func_id=record.func_id, since=since, until=until, step_ms=step
        )
    )
    context = {"charts": function_charts.monitoring(buckets, step), "period": period, "periods": PERIODS}
    return _page(request, "function_monitoring.html", record, "monitoring", context)
