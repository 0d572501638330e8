"""``/console/archive``: the Archive page. Per tracker with a bucket: its transfer and verification status
(``archive.status``, what ``GET /archive/status`` answers), the result of its last verification and a
"Verify now" form (``archive.verifications``, through the API's own ``ask``), its files per day and the
files of a chosen day (``archive.status.written_files``, as ``GET /archive/files``), and a form that runs
SQL over the archived files through the API's own query service (``api.archive_query.run_query``: the same
body model, the same sandbox, row cap and timeout).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from opencts.api.archive_query import MAX_ROWS, ArchiveQueryBody, run_query
from opencts.api.archive_verifications import VerificationBody, ask
from opencts.api.deps import Services
from opencts.archive import status, verifications
from opencts.clock import DAY_MS, now_ms
from opencts.console import archive_view
from opencts.console.access import ConsoleUser
from opencts.console.pages import ConsoleRoute, check_csrf, read_form, render, signed_in
from opencts.errors import BadRequest, OpenCTSError
from opencts.trackers import repository
from opencts.validation import describe

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

#: the query the form starts with: what a person asks first
EXAMPLE_SQL = (
    "SELECT service_type, trace_name, count(*) AS traces\n"
    "FROM traces\n"
    "GROUP BY service_type, trace_name\n"
    "ORDER BY traces DESC\n"
    "LIMIT 20"
)
#: rows the page shows of an answer (the API's cap is larger; a page of 10,000 rows helps nobody)
PAGE_ROWS = 500
#: files one day lists on the page
DAY_FILES = 200
#: a tracker's earlier verifications the page lists
HISTORY = 10


def _day_ms(text: str, what: str) -> int:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise BadRequest(f"{what} {text[:20]!r} is not a date; pick one (YYYY-MM-DD)") from None


async def _overview(
    services: Services, user: ConsoleUser, tracker: str | None, day: str | None
) -> dict[str, Any]:
    now = now_ms()
    day_ms = _day_ms(day, "day") if day else None

    def read(conn: Any) -> dict[str, Any]:
        statuses = status.tracker_statuses(conn, user.project_id, now=now)
        settings = {t["tracker_name"]: t for t in repository.list_trackers(conn, project_id=user.project_id)}
        chosen = tracker if any(s.tracker_name == tracker for s in statuses) else None
        if chosen is None and statuses:
            chosen = statuses[0].tracker_name
        per_day: list[archive_view.Day] = []
        files = None
        history: list[verifications.Verification] = []
        if chosen is not None:
            target_id = str(settings[chosen]["id"])
            per_day = archive_view.days(conn, target_id, now=now)
            if day_ms is not None:
                files = status.written_files(conn, user.project_id, chosen, day_ms=day_ms, limit=DAY_FILES)
            history = verifications.listing(conn, user.project_id, tracker_name=chosen, limit=HISTORY)
        last = verifications.latest(conn, user.project_id)
        return {
            "statuses": statuses,
            "settings": settings,
            "chosen": chosen,
            "per_day": per_day,
            "day": day if day_ms is not None else None,
            "files": files,
            "last_verification": last,
            "history": history,
            "verifying": any(not v.done for v in last.values()),
        }

    return await services.db.read(read)


def _refresh_url(tracker: str | None, wait: str) -> str:
    """Where the page reloads itself while a verification runs: a query that changes on every round, since
    a browser treats a URL that differs only by its #fragment as a scroll, not a reload."""
    n = int(wait) + 1 if wait.isdigit() and len(wait) < 6 else 1
    query = urllib.parse.urlencode({**({"tracker": tracker} if tracker else {}), "wait": n})
    return f"/console/archive?{query}#verification"


def _every(seconds: float) -> str:
    """The schedule's interval in words ("" when off)."""
    if seconds <= 0:
        return ""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''}" if n > 1 else unit
    return f"{seconds:g} seconds"


def _form(values: dict[str, str]) -> dict[str, str]:
    today = datetime.fromtimestamp(now_ms() / 1000, UTC)
    return {
        "sql": values.get("sql", EXAMPLE_SQL),
        "tracker": values.get("tracker", ""),
        "from": values.get("from", (today - timedelta(days=7)).strftime("%Y-%m-%d")),
        "to": values.get("to", today.strftime("%Y-%m-%d")),
        "limit": values.get("limit", "100"),
    }


async def _page(
    request: Request,
    services: Services,
    user: ConsoleUser,
    values: dict[str, str],
    *,
    answer: dict[str, Any] | None = None,
    error: str | None = None,
    verify_error: str | None = None,
    status_code: int = 200,
) -> Response:
    params = request.query_params
    overview = await _overview(services, user, params.get("tracker"), params.get("day"))
    context = {
        **overview,
        "form": _form(values),
        "answer": answer,
        "error": error,
        "verify_error": verify_error,
        "may_verify": user.principal.can("cts:archive:verify"),
        "settings_interval": _every(services.settings.archive_verify_interval),
        "max_rows": MAX_ROWS,
        "quote": urllib.parse.quote,
        "refresh_url": _refresh_url(overview["chosen"], params.get("wait", "0")),
    }
    return render(request, "archive.html", context, status=status_code)


@router.get("/archive", name="consoleArchive")
async def archive_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:archive:list")
    return await _page(request, services, user, {})


@router.post("/archive", name="consoleArchiveQuery")
async def archive_query(request: Request) -> Response:
    services, user = await signed_in(request, "cts:archive:list")
    form = await read_form(request, limit=256 * 1024)
    check_csrf(user, form)
    try:
        start = _day_ms(form.get("from", ""), "from")
        end = _day_ms(form.get("to", ""), "to") + DAY_MS
        limit = form.get("limit", "100").strip()
        body = ArchiveQueryBody.model_validate(
            {
                "sql": form.get("sql", ""),
                "tracker_name": form.get("tracker") or None,
                "from": start,
                "to": end,
                "limit": int(limit) if limit.isdigit() else limit,
            }
        )
        answer = await run_query(services, user.project_id, body)
    except ValidationError as exc:
        return await _page(request, services, user, form, error=describe(exc), status_code=400)
    except OpenCTSError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, services, user, form, error=exc.message, status_code=exc.status)
    shown = {
        "columns": answer.columns,
        "rows": answer.rows[:PAGE_ROWS],
        "count": len(answer.rows),
        "truncated": answer.truncated,
        "files": answer.files,
    }
    return await _page(request, services, user, form, answer=shown)


@router.post("/archive/verify", name="consoleArchiveVerify")
async def archive_verify(request: Request) -> Response:
    """ "Verify now": queue a verification of the chosen tracker's archive; the page shows it running, then
    its result (a second click while one waits or runs shows that one)."""
    services, user = await signed_in(request, "cts:archive:verify")
    form = await read_form(request)
    check_csrf(user, form)
    tracker = form.get("tracker", "")
    try:
        body = VerificationBody.model_validate(
            {"tracker_name": tracker, "proofs": form.get("proofs") == "on"}
        )
        await ask(services, user.project_id, body, user.principal.user_name)
    except ValidationError as exc:
        return await _page(request, services, user, {}, verify_error=describe(exc), status_code=400)
    except OpenCTSError as exc:
        if exc.status >= 500:
            raise
        return await _page(request, services, user, {}, verify_error=exc.message, status_code=exc.status)
    target = f"/console/archive?tracker={urllib.parse.quote(tracker)}#verification"
    return RedirectResponse(target, status_code=303)
