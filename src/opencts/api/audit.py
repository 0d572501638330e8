"""The audit middleware: records OpenCTS's own API calls in its own trace log.

What is recorded: every state-changing call (except trace ingest, the data plane, which would audit
itself endlessly), logins and logouts, and every 401/403 on any route. The response is held back until its
audit trace is durable, so a caller never sees the effect of a write whose audit record could be lost.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencts.clock import now_ms
from opencts.iam.principal import Principal
from opencts.iam.projects import Project, first_project
from opencts.traces.self_audit import AuditedCall, record

log = logging.getLogger("opencts.audit")

#: routes whose successful calls are not audited (the data plane, and LTS's log query: a read sent as a
#: POST); denials still are
UNAUDITED = frozenset({"putTraces", "putKubernetesAudit", "putBucketEvents", "listLogs"})
_MAX_CAPTURE = 64 * 1024
_RESOURCE_PARAMS = (
    "resource_id",
    "user_id",
    "group_id",
    "access_key",
    "topic_urn",
    "subscription_urn",
    "function_urn",
    "trigger_id",
    "token_id",
)


def _user_of(principal: Principal) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": principal.user_id,
        "name": principal.user_name,
        "domain": {"id": principal.domain_id, "name": principal.domain_name},
        "principal_urn": f"iam::{principal.domain_id}:user:{principal.user_name}",
        "type": "User",
    }
    if principal.temporary:
        # a function acting through its agency (iam.temporary): the agency by name, the function by id
        user["principal_urn"] = f"iam::{principal.domain_id}:agency:{principal.user_name}"
        user["type"] = "AssumedAgency"
    if principal.source is not None:
        # a webhook's source token (sources.tokens): the token by name, never mistaken for a user
        user["principal_urn"] = f"iam::{principal.domain_id}:sourceToken:{principal.user_name}"
        user["type"] = "SourceToken"
    if principal.access_key:
        user["access_key_id"] = principal.access_key
    return user


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        request_chunks: list[bytes] = []
        captured = 0

        async def capture_receive() -> Message:
            nonlocal captured
            message = await receive()
            if message["type"] == "http.request" and captured < _MAX_CAPTURE:
                chunk = message.get("body", b"")
                request_chunks.append(chunk[: _MAX_CAPTURE - captured])
                captured += len(chunk)
            return message

        held: list[Message] = []
        status = 0
        audit = False

        async def hold_send(message: Message) -> None:
            nonlocal status, audit
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                name = getattr(route, "name", None)
                writes = method not in ("GET", "HEAD", "OPTIONS") and name not in UNAUDITED
                audit = name is not None and (writes or status in (401, 403))
            if not audit:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._record(scope, status, b"".join(request_chunks), held)
                for m in held:
                    await send(m)
                held.clear()

        await self.app(scope, capture_receive, hold_send)

    async def _record(self, scope: Scope, status: int, request_body: bytes, held: list[Message]) -> None:
        try:
            await self._write(scope, status, request_body, held)
        except Exception:
            # The call already happened; failing the response now would only hide it from the caller.
            log.exception("could not record the audit trace of %s %s", scope["method"], scope["path"])

    async def _write(self, scope: Scope, status: int, request_body: bytes, held: list[Message]) -> None:
        app = scope["app"]
        services = app.state.services
        state = scope.get("state", {})
        principal: Principal | None = state.get("principal")
        route = scope["route"]
        params = scope.get("path_params", {})
        response_body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        user = _user_of(principal) if principal else state.get("login_user")
        if user is None and route.name == "login":
            user = _login_attempt_user(request_body)
        project_id = await self._project(services, principal, params, state, user)
        if project_id is None:
            return
        headers = dict(held[0].get("headers", [])) if held else {}
        client = scope.get("client")
        resource_id = next((str(params[p]) for p in _RESOURCE_PARAMS if p in params), None)
        call = AuditedCall(
            operation=route.name,
            method=scope["method"],
            path=scope["path"],
            status=status,
            request_body=request_body[:_MAX_CAPTURE] or None,
            response_body=response_body[:_MAX_CAPTURE] or None,
            request_id=(headers.get(b"x-request-id") or b"").decode() or state.get("request_id", ""),
            source_ip=client[0] if client else None,
            time=now_ms(),
            user=user,
            resource_id=resource_id,
            resource_name=_resource_name(request_body, params),
        )
        await record(services.writer, project_id, call)

    async def _project(
        self,
        services: Any,
        principal: Principal | None,
        params: dict[str, Any],
        state: dict[str, Any],
        user: dict[str, Any] | None,
    ) -> str | None:
        """Which project's trail the call belongs in; None when it names no real project of anybody."""
        if principal and principal.project_id:
            candidate: str | None = principal.project_id
        else:
            candidate = params.get("project_id") or state.get("login_project")
        if candidate and await services.authenticator.project_domain(candidate) is not None:
            return candidate
        domain_id = principal.domain_id if principal else None
        domain_name = ((user or {}).get("domain") or {}).get("name")
        if domain_id is None and domain_name is None:
            return None
        found: Project | None = await services.db.read(
            lambda conn: first_project(conn, domain_id=domain_id, domain_name=domain_name)
        )
        return None if found is None else found.id


def _login_attempt_user(raw: bytes) -> dict[str, Any] | None:
    """Who tried to log in (name and account as typed), so failed logins are attributable."""
    try:
        user = orjson.loads(raw)["auth"]["identity"]["password"]["user"]
        return {"name": str(user["name"])[:64], "domain": {"name": str(user["domain"].get("name", ""))[:64]}}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _resource_name(raw: bytes, params: dict[str, Any]) -> str | None:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for key in ("tracker_name", "notification_name", "name", "func_name"):
            if isinstance(body.get(key), str):
                return str(body[key])[:256]
        for wrapper in ("user", "group", "project"):
            inner = body.get(wrapper)
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                return str(inner["name"])[:256]
    return None
