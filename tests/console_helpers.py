"""Helpers of the console's tests: a browser-like client of the in-process app that logs in through the
login form (cookies kept, CSRF tokens read from the pages as a browser would send them back)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from playwright.async_api import Page, expect

from opencts.iam.bootstrap import BootstrapCredentials
from opencts.testing.server import RunningServer

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(page)
    assert found, "the page has no form with a CSRF token"
    return found[1]


def browser(app: FastAPI, base_url: str = "http://127.0.0.1:8080") -> httpx.AsyncClient:
    """A client without credentials that keeps cookies, as a browser does; redirects are not followed so
    tests see them."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def log_in_form(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """Fetch the login page (for its CSRF token and cookie) and post ``fields`` with it."""
    page = await client.get("/console/login")
    assert page.status_code == 200, page.text
    return await client.post("/console/login", data={"csrf_token": csrf_of(page.text), **fields})


async def log_in_password(client: httpx.AsyncClient, creds: BootstrapCredentials) -> httpx.Response:
    return await log_in_form(
        client,
        method="password",
        account=creds.domain_name,
        user_name=creds.user_name,
        password=creds.password,
    )


@asynccontextmanager
async def logged_in(app: FastAPI, creds: BootstrapCredentials) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client with a console session as the bootstrap admin."""
    async with browser(app) as client:
        resp = await log_in_password(client, creds)
        assert resp.status_code == 303, resp.text
        yield client


async def log_in_page(page: Page, server: RunningServer) -> None:
    """Log in through the console's login form in a real browser page, as the bootstrap admin."""
    await page.goto(f"{server.url}/console/login")
    await page.get_by_label("Account", exact=True).fill(server.creds.domain_name)
    await page.get_by_label("User name", exact=True).fill(server.creds.user_name)
    await page.get_by_label("Password", exact=True).fill(server.creds.password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
