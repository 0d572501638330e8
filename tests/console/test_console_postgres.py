"""The console on PostgreSQL: the same flows as on SQLite (every Trace List filter, marker paging, Export CSV
against ListTraces, the dashboard, login and logout, project isolation) run again with the log, sessions and
catalogue in the local PostgreSQL, so the console's SQL holds on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console import test_console_login as login_tests
from console import test_console_traces as trace_tests
from cts_helpers import Api, TraceFactory, in_process_api
from opencts.config import Settings

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_api(tmp_path: Path, postgres_url: str) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0, database_url=postgres_url
    )
    async with in_process_api(settings) as api:
        yield api


async def test_filters_on_postgres(pg_api: Api, make_trace: TraceFactory) -> None:
    await trace_tests.test_every_filter_narrows_the_list_as_list_traces_does(pg_api, make_trace)


async def test_paging_on_postgres(pg_api: Api, make_trace: TraceFactory) -> None:
    await trace_tests.test_paging_by_markers_walks_every_trace_once_and_the_url_keeps_the_query(
        pg_api, make_trace
    )


async def test_export_on_postgres(pg_api: Api, make_trace: TraceFactory) -> None:
    await trace_tests.test_export_csv_holds_what_list_traces_lists(pg_api, make_trace)


async def test_dashboard_on_postgres(pg_api: Api, make_trace: TraceFactory) -> None:
    await trace_tests.test_dashboard_draws_the_charts_on_the_server(pg_api, make_trace)


async def test_isolation_on_postgres(pg_api: Api, make_trace: TraceFactory) -> None:
    await trace_tests.test_a_session_sees_only_its_own_project(pg_api, make_trace)


async def test_login_and_logout_on_postgres(pg_api: Api) -> None:
    await login_tests.test_logout_ends_the_session_everywhere_and_both_are_iam_traces(pg_api)
