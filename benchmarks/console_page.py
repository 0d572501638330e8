"""Trace List page latency: the console's ``GET /console/traces`` against the ListTraces API it reads
through, over a big trace log (default 1,000,000 traces over 7 days).

1. Builds the dataset as the query benchmark does (``_dataset.build_dataset``) and starts ``opencts serve``
   on it.
2. Logs in to the console through its login form (a cookie session), then times, one request at a time
   from one client, the Trace List page and the signed ListTraces call with the same window, filters and
   page size (20 rows), for each case: the default last hour, the whole week, and each console filter
   over the week (trace source, resource type, operator, status, trace name).
3. Prints p50/p95/p99 (ms, as the client sees them over loopback) per case and for all cases together,
   against the issue's floor: the page's p95 at most 100 ms; and the server's own time for the page (the
   access log's duration of each timed request, found by its ``X-Request-Id``), p50/p95.
4. Times the dashboard the same way (its charts, tops and recent incidents over the last 24 hours).

The page's extra cost over the API is its HTML: a form, and a table row (and a hidden details row) per
trace, rendered by Jinja2 from the log's columns; the stored JSON is never parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sqlite3
import time
from pathlib import Path

import httpx
from _dataset import build_dataset, retention_days_for
from _measure import console, db_size, human_bytes, load_note, percentile, verdict, wait_until_idle
from _server import scratch_space
from rich.table import Table

from opencts.clock import DAY_MS, now_ms
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.testing.server import ServerProcess

FLOOR_P95_MS = 100.0
PAGE = 20
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: console parameter -> trace column, for the busiest value of each
FILTERS = {
    "service_type": "service_type",
    "resource_type": "resource_type",
    "user": "user_name",
    "trace_rating": "trace_rating",
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=int, default=1_000_000, help="traces in the database (default 1M)")
    p.add_argument("--samples", type=int, default=100, help="timed requests per case and side (100)")
    p.add_argument("--workers", type=int, default=1, help="row-generating processes during the build")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--catch-up-timeout", type=float, default=1800.0,
                   help="seconds to wait for the server's consumers to catch up with the log")  # fmt: skip
    return p.parse_args()


def busiest(db_path: Path, project_id: str, column: str) -> str:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            f"SELECT {column}, count(*) AS n FROM traces WHERE project_id = ? AND kind = 'system'"
            f" AND {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC LIMIT 3",
            (project_id,),
        ).fetchall()
    return str(row[-1][0])  # the third busiest: a filter that narrows, not the whole log


def log_in(url: str, creds: BootstrapCredentials) -> httpx.Client:
    browser = httpx.Client(base_url=url, timeout=30)
    page = browser.get("/console/login")
    token = _CSRF.search(page.text)
    assert token, "the login page has no CSRF token"
    resp = browser.post(
        "/console/login",
        data={
            "csrf_token": token[1],
            "account": creds.domain_name,
            "user_name": creds.user_name,
            "password": creds.password,
        },
    )
    assert resp.status_code == 303, resp.text[:300]
    return browser


_ACCESS = re.compile(r" (\d+\.\d)ms principal=\S+ request_id=(\S+)")


def timed(client: httpx.Client, path: str, params: dict[str, str], ids: list[str] | None = None) -> float:
    """The request's time as the client sees it; its request id goes to ``ids`` (for the server's time)."""
    began = time.perf_counter()
    resp = client.get(path, params=params)
    elapsed = (time.perf_counter() - began) * 1000
    assert resp.status_code == 200, f"{path} {params}: {resp.status_code} {resp.text[:300]}"
    if ids is not None:
        ids.append(resp.headers.get("x-request-id", ""))
    return elapsed


def server_times(server: ServerProcess, ids: list[str]) -> list[float]:
    """The access log's durations (ms) of the requests ``ids``: the server's own time, without loopback."""
    found = {m[2]: float(m[1]) for m in _ACCESS.finditer(server.log())}
    return [found[i] for i in ids if i in found]


def main() -> None:
    args = parse_args()
    with scratch_space("console-", keep=args.keep) as scratch:
        run(args, scratch)


def run(args: argparse.Namespace, scratch: Path) -> None:
    end = now_ms()
    start = end - 7 * DAY_MS + 10 * 60_000
    console.print(
        f"[bold]console page benchmark[/]: building {args.traces:,} traces over 7 days in {scratch}"
    )
    creds, _, stats = build_dataset(
        scratch, args.traces, start_ms=start, end_ms=end, seed=args.seed, workers=args.workers
    )
    console.print(f"built in {stats.total_s:,.0f}s; database {human_bytes(db_size(scratch))}")
    db_path = scratch / "opencts.db"
    cases: list[tuple[str, dict[str, str], dict[str, str]]] = [("last hour", {"range": "1h"}, {})]
    week_api = {"from": str(start - 1), "to": "{now}"}
    cases.append(("week", {"range": "7d"}, week_api))
    for param, column in FILTERS.items():
        value = busiest(db_path, creds.project_id, column)
        cases.append((f"week, {param}={value}", {"range": "7d", param: value}, {**week_api, param: value}))
    name = busiest(db_path, creds.project_id, "trace_name")
    cases.append(
        (
            f"week, trace_name={name}",
            {"range": "7d", "search": "trace_name", "search_value": name},
            {**week_api, "trace_name": name},
        )
    )
    retention = retention_days_for(start)
    env = {"OPENCTS_RETENTION_DAYS": str(retention)} if retention != 7 else {}
    # the access log (INFO, as a server logs by default) holds each request's own duration
    server = ServerProcess(scratch, env, log_level="info", log_path=scratch / "server.log").start(120.0)
    try:
        with server.client() as client:  # one small request first: the server's lazy start-up costs
            client.get(f"/v3/{creds.project_id}/traces", params={"limit": "1"}).raise_for_status()
        waited = wait_until_idle(server, timeout=args.catch_up_timeout)
        console.print(f"server idle (consumers caught up with the log) after {waited:,.0f}s")
        measure(args, server, creds, cases)
    finally:
        server.stop()


def measure(
    args: argparse.Namespace,
    server: ServerProcess,
    creds: BootstrapCredentials,
    cases: list[tuple[str, dict[str, str], dict[str, str]]],
) -> None:
    api_path = f"/v3/{creds.project_id}/traces"
    rng = random.Random(args.seed)
    page_all: list[float] = []
    api_all: list[float] = []
    table = Table(title=f"Trace List page vs ListTraces, {PAGE} rows, {args.traces:,} traces in the log")
    table.add_column("case", no_wrap=True)
    for col in (
        "page p50",
        "page p95",
        "page p99",
        "server p50",
        "server p95",
        "API p50",
        "API p95",
        "API p99",
    ):
        table.add_column(col, justify="right")
    table.add_column(f"page p95 ≤ {FLOOR_P95_MS:.0f} ms")
    load = load_note()
    browser = log_in(server.url, creds)  # closed by contextlib.closing
    server_all: list[float] = []
    with contextlib.closing(browser), server.client() as api:
        for case, page_params, api_params in cases:
            page_params = {**page_params, "limit": str(PAGE)}
            for _ in range(5):  # warm-up: caches, the term index's first use of a column
                timed(browser, "/console/traces", page_params)
            page_ms: list[float] = []
            api_ms: list[float] = []
            ids: list[str] = []
            for _ in range(args.samples):
                wanted = {k: (str(now_ms()) if v == "{now}" else v) for k, v in api_params.items()}
                wanted["limit"] = str(PAGE)
                sides = [("page", page_params), ("api", wanted)]
                rng.shuffle(sides)  # neither side always runs second, on caches the other warmed
                for side, params in sides:
                    if side == "page":
                        page_ms.append(timed(browser, "/console/traces", params, ids))
                    else:
                        api_ms.append(timed(api, api_path, params))
            page_all += page_ms
            api_all += api_ms
            inside = server_times(server, ids)
            server_all += inside
            p95 = percentile(page_ms, 95)
            table.add_row(
                case,
                *(f"{percentile(page_ms, q):.1f}" for q in (50, 95, 99)),
                *(f"{percentile(inside, q):.1f}" if inside else "-" for q in (50, 95)),
                *(f"{percentile(api_ms, q):.1f}" for q in (50, 95, 99)),
                verdict(p95 <= FLOOR_P95_MS),
            )
        table.add_row(
            "all cases",
            *(f"{percentile(page_all, q):.1f}" for q in (50, 95, 99)),
            *(f"{percentile(server_all, q):.1f}" if server_all else "-" for q in (50, 95)),
            *(f"{percentile(api_all, q):.1f}" for q in (50, 95, 99)),
            verdict(percentile(page_all, 95) <= FLOOR_P95_MS),
        )
        dash_ids: list[str] = []
        for _ in range(3):
            timed(browser, "/console/", {})
        dash = [timed(browser, "/console/", {}, dash_ids) for _ in range(max(args.samples // 5, 10))]
        dash_server = server_times(server, dash_ids)
        table.add_row(
            "dashboard (24 h: charts, tops, incidents)",
            *(f"{percentile(dash, q):.1f}" for q in (50, 95, 99)),
            *(f"{percentile(dash_server, q):.1f}" if dash_server else "-" for q in (50, 95)),
            "-",
            "-",
            "-",
            "",
        )
    console.print(table)
    console.print(f"machine: {load} before, {load_note()} after")


if __name__ == "__main__":
    main()
