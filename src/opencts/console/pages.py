"""``/console``: the web console's routes. Each page is one handler that reads through the same modules
the API routes use, checks the same action names, and renders one Jinja template.

Pages answer HTML, never the API's JSON: without a session a page redirects to the login form (keeping
where it was going), and an error is a page that says what to do. Every POST carries the session's CSRF
token; a form without it is refused before anything changes.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer
from sqlalchemy import Connection

from opencts.api.deps import Services, get_services, read_body
from opencts.clock import DAY_MS, iso_ms, now_ms
from opencts.console import access, charts, dashboard, dashboard_tops, trace_list, trackers_form
from opencts.console.access import ConsoleUser
from opencts.console.trace_list import Suggestions
from opencts.errors import BadRequest, Forbidden, NotFound, OpenCTSError, TooManyAttempts, Unauthorized
from opencts.traces.export import export_csv
from opencts.traces.query import TraceQuery
from opencts.trackers import repository

MAX_FORM_BYTES = 64 * 1024
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "functions.js": "text/javascript; charset=utf-8",
}
_HIGHLIGHT = HtmlFormatter(cssclass="highlight")
_HIGHLIGHT_CSS: str = _HIGHLIGHT.get_style_defs(".highlight")  # type: ignore[no-untyped-call]
_ENV = Environment(
    loader=PackageLoader("opencts.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["when"] = lambda ms: iso_ms(int(ms)) if ms is not None else ""
_ENV.filters["thousands"] = lambda n: f"{int(n):,}"


class LoginNeeded(Exception):
    """No usable session: the page redirects to the login form."""


class ConsoleRoute(APIRoute):
    """Turns the console's errors into pages: a login redirect, or an error page in the error's status.

    The API's handlers (``api.errors``) answer JSON for the same exceptions; here a person reads them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":
                    target = "/console/"
                query = urllib.parse.urlencode({"next": target})
                return RedirectResponse(f"/console/login?{query}", status_code=303)
            except OpenCTSError as exc:
                if exc.status >= 500:
                    raise
                return render(request, "error.html", {"error": exc}, status=exc.status)

        return page_errors


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    user = getattr(request.state, "console_user", None)
    body = _ENV.get_template(template).render(
        user=user, csrf=user.session.csrf_token if user else "", path=request.url.path, **context
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def signed_in(request: Request, action: str | None = None) -> tuple[Services, ConsoleUser]:
    """The services and the session's user, who may perform ``action``; else a redirect or a 403 page."""
    services = get_services(request)
    user = await access.current_user(request, services)
    if user is None:
        raise LoginNeeded
    request.state.console_user = user
    if action is not None and not user.principal.can(action):
        raise Forbidden(
            f"your roles do not allow {action} in project {user.project.name}; ask an administrator of"
            " the account for a role that does (CTS ReadOnlyAccess reads, CTS FullAccess also changes)"
        )
    return services, user


async def read_form(request: Request, *, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An urlencoded form of at most ``limit`` bytes; the last value of a repeated field wins."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest("send the form from the console page (application/x-www-form-urlencoded)")
    raw = await read_body(request, limit)
    try:
        pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read; reload the page and try again") from None
    return dict(pairs)


def check_csrf(user: ConsoleUser, form: dict[str, str]) -> None:
    if not access.csrf_ok(user.session.csrf_token, form.get("csrf_token")):
        raise Forbidden(
            "the form's security token is missing or stale (the page was open too long, or the form came"
            " from another site); reload the page and submit it again"
        )


def _safe_next(target: str | None) -> str:
    """Only a console path: a login form must not become a redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


# ---- static files -------------------------------------------------------------------------------------


@router.get("/static/{name}", name="consoleStatic")
async def static_file(name: str) -> Response:
    if name == "highlight.css":
        return Response(_HIGHLIGHT_CSS, media_type="text/css; charset=utf-8")
    if name not in _STATIC:
        raise NotFound(f"no console file {name[:64]!r}")
    data = resources.files("opencts.console").joinpath("static", name).read_bytes()
    return Response(data, media_type=_STATIC[name], headers={"Cache-Control": "max-age=3600"})


# ---- login and logout ---------------------------------------------------------------------------------


@router.get("/login", name="consoleLoginPage")
async def login_page(request: Request) -> Response:
    token = request.cookies.get(access.LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": _safe_next(request.query_params.get("next")), "error": None},
    )
    _set_cookie(request, response, access.LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", name="consoleLogin")
async def login_submit(request: Request) -> Response:
    services = get_services(request)
    form = await read_form(request)
    token = request.cookies.get(access.LOGIN_CSRF_COOKIE)
    target = _safe_next(form.get("next"))
    if not access.csrf_ok(token, form.get("csrf_token")):
        raise Forbidden("the login form expired or came from another site; reload the login page and retry")
    typed = access.Typed(
        method="aksk" if form.get("method") == "aksk" else "password",
        account=form.get("account", "").strip()[:64],
        user_name=form.get("user_name", "").strip()[:64],
        password=form.get("password", "")[:256],
        access_key=form.get("access_key", "").strip()[:64],
        secret_key=form.get("secret_key", "").strip()[:256],
        project_name=form.get("project", "").strip()[:64],
    )
    try:
        cookie, _ = await access.log_in(request, services, typed)
    except (Unauthorized, TooManyAttempts) as refused:
        context = {"login_csrf": token, "next": target, "error": refused.message, "typed": typed}
        page = render(request, "login.html", context, status=refused.status)
        if isinstance(refused, TooManyAttempts):
            page.headers["Retry-After"] = str(refused.retry_after)
        return page
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, access.COOKIE, cookie, max_age=None)
    response.delete_cookie(access.LOGIN_CSRF_COOKIE, path="/console")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="lax",
        secure=access.secure(request),
    )


@router.post("/logout", name="consoleLogout")
async def logout(request: Request) -> Response:
    services, user = await signed_in(request)
    check_csrf(user, await read_form(request))
    await access.log_out(request, services, user)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(access.COOKIE, path="/console")
    return response


# ---- dashboard ----------------------------------------------------------------------------------------


@router.get("", name="consoleRoot")
async def root() -> Response:
    return RedirectResponse("/console/", status_code=307)


@router.get("/", name="consoleDashboard")
async def dashboard_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:traces:list")
    now = now_ms()
    incidents = TraceQuery(
        time_from=now - DAY_MS, time_to=now + 1, limit=10, filters={"trace_rating": "incident"}
    )
    index = services.db.term_index

    def read(conn: Connection) -> tuple[dashboard.Figures, list[dict[str, Any]], dashboard_tops.Tops]:
        rows, _ = trace_list.page(conn, project_id=user.project_id, query=incidents, index=index)
        tops = dashboard_tops.tops(conn, user.project_id, now=now, index=index)
        return dashboard.figures(conn, user.project_id, now=now, index=index), rows, tops

    found, recent, tops = await services.db.read(read)
    context = {
        "figures": found,
        "per_hour": charts.stacked_columns(
            "Traces per hour by rating, last 24 hours (UTC)", found.per_hour, charts.RATING_COLOURS
        ),
        "by_rating": charts.bars("By rating", found.by_rating, charts.RATING_COLOURS),
        "by_service": charts.bars("Top services", found.by_service),
        "incidents": recent,
        "tops": tops,
        "top_operations": charts.bars("Top operations", tops.operations),
        "top_users": charts.bars("Top users", tops.users),
        "top_ips": charts.bars("Top source IPs", tops.source_ips),
    }
    return render(request, "dashboard.html", context)


# ---- traces -------------------------------------------------------------------------------------------


@router.get("/traces", name="consoleTraces")
async def traces_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:traces:list")
    params = request.query_params
    now = now_ms()
    error = None
    rows: list[dict[str, Any]] = []
    marker = None
    index = services.db.term_index

    def read(conn: Connection, query: TraceQuery) -> tuple[list[dict[str, Any]], str | None, Suggestions]:
        found, after = trace_list.page(conn, project_id=user.project_id, query=query, index=index)
        return found, after, trace_list.suggestions(conn, project_id=user.project_id, now=now)

    try:
        form, query = trace_list.read_form(params, now=now, retention_ms=services.settings.retention_ms)
        rows, marker, hints = await services.db.read(lambda conn: read(conn, query))
    except BadRequest as exc:
        error = exc.message
        form = trace_list.Form("1h", "", "", "system", "resource_id", "", {}, "20")
        hints = trace_list.Suggestions([], [], [])
    keep = trace_list.export_params(form)
    context = {
        "form": form,
        "rows": rows,
        "error": error,
        "ranges": trace_list.RANGES,
        "search_fields": trace_list.SEARCH_FIELDS,
        "page_sizes": trace_list.PAGE_SIZES,
        "export_query": urllib.parse.urlencode(keep),
        "next_query": urllib.parse.urlencode({**keep, "next": marker}) if marker else None,
        "first_query": urllib.parse.urlencode(keep) if params.get("next") else None,
        "now_text": trace_list.local_text(now),
        "hints": hints,
    }
    status = 400 if error else 200
    return render(request, "traces.html", context, status=status)


@router.get("/traces/export.csv", name="consoleExportTraces")
async def export_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:traces:list")
    now = now_ms()
    params = {k: v for k, v in request.query_params.items() if k not in ("next", "limit")}
    form, query = trace_list.read_form(params, now=now, retention_ms=services.settings.retention_ms)
    stream = export_csv(services.db.read_sync, user.project_id, query, services.db.term_index)
    filename = f"traces-{query.kind}-{now}.csv"
    return StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/traces/{trace_id}", name="consoleTrace")
async def trace_page(request: Request, trace_id: str) -> Response:
    services, user = await signed_in(request, "cts:traces:list")
    kind = request.query_params.get("trace_type") or "system"
    if kind not in ("system", "data") or len(trace_id) > 64:
        raise BadRequest("open a trace from the Trace List; this link is not one it makes")
    not_before = now_ms() - services.settings.retention_ms
    found = await services.db.read(
        lambda conn: trace_list.find_trace(
            conn, project_id=user.project_id, kind=kind, trace_id=trace_id, not_before=not_before
        )
    )
    if found is None:
        raise NotFound(
            f"trace {trace_id} is not in project {user.project.name} (or is older than the retention);"
            " search the Trace List for it"
        )
    text = orjson.dumps(found, option=orjson.OPT_INDENT_2).decode()
    pretty = Markup(highlight(text, JsonLexer(), _HIGHLIGHT))
    return render(request, "trace.html", {"trace": found, "pretty": pretty, "kind": kind})


# ---- trackers -----------------------------------------------------------------------------------------


@router.get("/trackers", name="consoleTrackers")
async def trackers_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:tracker:list")
    found = await services.db.read(lambda conn: repository.list_trackers(conn, project_id=user.project_id))
    notice = request.query_params.get("done")
    return render(request, "trackers.html", {"trackers": found, "notice": trackers_form.notice(notice)})


async def _tracker(services: Services, user: ConsoleUser, name: str) -> dict[str, Any]:
    found = await services.db.read(
        lambda conn: repository.list_trackers(conn, project_id=user.project_id, tracker_name=name[:64])
    )
    if not found:
        raise NotFound(f"tracker {name[:64]!r} does not exist in project {user.project.name}")
    return found[0]


@router.get("/trackers/{name}", name="consoleTracker")
async def tracker_page(request: Request, name: str) -> Response:
    services, user = await signed_in(request, "cts:tracker:list")
    tracker = await _tracker(services, user, name)
    return render(request, "tracker.html", {"tracker": tracker, "errors": [], "notice": None})


@router.post("/trackers/{name}", name="consoleConfigureTracker")
async def tracker_submit(request: Request, name: str) -> Response:
    services, user = await signed_in(request, "cts:tracker:update")
    form = await read_form(request)
    check_csrf(user, form)
    tracker = await _tracker(services, user, name)
    try:
        body = trackers_form.update_body(tracker, form)
        await services.db.write(
            lambda conn: repository.update_tracker(conn, project_id=user.project_id, body=body)
        )
    except ValidationError as exc:
        errors = trackers_form.messages(exc)
        return render(
            request, "tracker.html", {"tracker": tracker, "errors": errors, "notice": None}, status=400
        )
    except BadRequest as exc:
        context = {"tracker": tracker, "errors": [exc.message], "notice": None}
        return render(request, "tracker.html", context, status=400)
    services.policies.invalidate(user.project_id)
    await access.audit_change(request, services, user, "updateTracker", tracker["tracker_name"])
    return RedirectResponse(f"/console/trackers?done=saved:{urllib.parse.quote(name)}", status_code=303)


@router.post("/trackers/{name}/status", name="consoleTrackerStatus")
async def tracker_status(request: Request, name: str) -> Response:
    services, user = await signed_in(request, "cts:tracker:update")
    form = await read_form(request)
    check_csrf(user, form)
    tracker = await _tracker(services, user, name)
    body = trackers_form.status_body(tracker, form.get("status", ""))
    await services.db.write(
        lambda conn: repository.update_tracker(conn, project_id=user.project_id, body=body)
    )
    services.policies.invalidate(user.project_id)
    await access.audit_change(request, services, user, "updateTracker", tracker["tracker_name"])
    done = f"{body.status}:{name}"
    return RedirectResponse(f"/console/trackers?done={urllib.parse.quote(done)}", status_code=303)


@router.post("/trackers/{name}/delete", name="consoleDeleteTracker")
async def tracker_delete(request: Request, name: str) -> Response:
    services, user = await signed_in(request, "cts:tracker:delete")
    form = await read_form(request)
    check_csrf(user, form)
    tracker = await _tracker(services, user, name)
    tracker_type = str(tracker["tracker_type"])
    await services.db.write(
        lambda conn: repository.delete_trackers(
            conn, project_id=user.project_id, tracker_name=name, tracker_type=tracker_type
        )
    )
    services.policies.invalidate(user.project_id)
    await access.audit_change(request, services, user, "deleteTracker", name)
    return RedirectResponse(
        f"/console/trackers?done={urllib.parse.quote('deleted:' + name)}", status_code=303
    )
