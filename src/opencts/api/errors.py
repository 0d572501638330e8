"""Every error leaves as ``{"error_code": "CTS.xxxx", "error_msg": ...}`` with an ``X-Request-Id``.

Nothing below this module decides HTTP shapes, and nothing here leaks a traceback to the client.
"""

from __future__ import annotations

import logging
import uuid

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencts.errors import OpenCTSError, Overloaded
from opencts.validation import describe_request

log = logging.getLogger("opencts.api")

_STATUS_CODES = {
    400: "CTS.0001",
    401: "CTS.0401",
    403: "CTS.0403",
    404: "CTS.0404",
    405: "CTS.0405",
    408: "CTS.0408",
    409: "CTS.0409",
    413: "CTS.0413",
    415: "CTS.0415",
    422: "CTS.0001",
    429: "CTS.0429",
}


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else uuid.uuid4().hex


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    rid = request_id(request)
    body = orjson.dumps({"error_code": code, "error_msg": message, "request_id": rid})
    all_headers = {"X-Request-Id": rid, **(headers or {})}
    return Response(body, status_code=status, media_type="application/json", headers=all_headers)


class RequestIdMiddleware:
    """Give every request an id (kept in ``state``) and every response the ``X-Request-Id`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def install(app: FastAPI) -> None:
    @app.exception_handler(OpenCTSError)
    async def _domain(request: Request, exc: OpenCTSError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
        if exc.status >= 500:
            log.error("internal error %s: %r", request_id(request), exc)
        return error_response(request, exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 400, "CTS.0001", describe_request(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, f"CTS.0{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such API: {request.method} {request.url.path}"
        return error_response(request, exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client left, or missed the read deadline (api.server), before its body was all there.
        log.info("request %s: the client went away before its body arrived", request_id(request))
        return error_response(request, 408, "CTS.0408", "the request body did not arrive in time")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # The database refused a value (a NUL byte, an out-of-range number): that is bad input, not a bug.
        log.info("database refused a value in request %s: %s", request_id(request), type(exc.orig).__name__)
        return error_response(
            request, 400, "CTS.0001", "a parameter holds characters or a value that is not allowed"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in request %s", request_id(request))
        return error_response(
            request, 500, "CTS.9999", "internal error; quote the request id to the operator"
        )
