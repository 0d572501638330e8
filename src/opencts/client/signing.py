"""Signing requests to OpenCTS as the official SDK signs them (``SDK-HMAC-SHA256``), for our own clients.

:func:`sign_headers` gives the headers of one request (any HTTP library); :class:`HmacAuth` signs every
request of an ``httpx`` client. Both compute the signature with :func:`opencts.iam.signature.authorization`,
the functions the server verifies with, so the CLI, the tests and the benchmarks go through the same check
as the SDK. This lives outside ``iam``, which verifies and needs no HTTP client.
"""

from __future__ import annotations

import secrets
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from opencts.iam.signature import DATE_FORMAT, DATE_HEADER, authorization, canonical_query

__all__ = ["HmacAuth", "sign_headers"]


def _format_date(now: datetime | None) -> str:
    """A naive ``now`` is taken to be UTC already, as the SDK's ``datetime.utcnow()`` is."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is not None:
        now = now.astimezone(UTC)
    return now.strftime(DATE_FORMAT)


def _to_wire(value: str) -> str:
    """The latin-1 view of the value's UTF-8 bytes: what ``requests`` needs to put UTF-8 on the wire."""
    return value if value.isascii() else value.encode("utf-8").decode("latin-1")


def sign_headers(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """All headers to send for this request, ``Authorization`` included, signed as the SDK signs.

    Adds ``Host`` (the URL's host[:port]) and ``X-Sdk-Date`` unless given, and signs every header whose name
    has no underscore. Send the URL byte for byte as given: the server signs the path and query it receives.
    Unlike the SDK we never add ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` for non-JSON bodies: the body is
    always hashed, which the server accepts for any content type and which keeps the body tamper-proof.
    Values are returned in the latin-1 form ``requests`` expects (identical for ASCII values).
    """
    parts = urlsplit(url)
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if lower == "authorization":
            continue  # replaced below; signing the old value would only break the signature
        if lower in seen:
            raise ValueError(f"header {name!r} given twice (header names are case-insensitive)")
        seen.add(lower)
        out[name] = _to_wire(value.strip())
    if "host" not in seen:
        out["Host"] = parts.netloc.rpartition("@")[2]
    if DATE_HEADER not in seen:
        out["X-Sdk-Date"] = _format_date(now)
    signed = sorted(name.lower() for name in out if "_" not in name)
    out["Authorization"] = authorization(
        method=method,
        path=parts.path,
        query_string=parts.query,
        headers=out,
        signed_headers=signed,
        body=body,
        access_key=access_key,
        secret_key=secret_key,
    )
    return out


class HmacAuth(httpx.Auth):
    """httpx authentication that signs each request with an AK/SK pair, for the OpenCTS CLI.

    The query is rewritten to its canonical form before signing, as the SDK does, so that what is signed is
    exactly what goes on the wire regardless of how httpx encoded ``params`` (it writes spaces as ``+``).
    Transport headers that httpx adds and proxies may change (``Accept-Encoding``, ``Connection``,
    ``Content-Length``...) are left unsigned, matching the SDK, which never signs what ``requests`` adds.
    """

    requires_request_body = True
    _UNSIGNED = frozenset(
        {
            "accept",
            "accept-encoding",
            "authorization",
            "connection",
            "content-length",
            "keep-alive",
            "proxy-authorization",
            "te",
            "transfer-encoding",
            "upgrade",
        }
    )

    def __init__(
        self, access_key: str, secret_key: str, project_id: str | None = None, *, nonce: bool = False
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._project_id = project_id
        self._nonce = nonce

    def __repr__(self) -> str:
        # Never show the SK, e.g. in a traceback that prints the client's auth.
        return f"HmacAuth(access_key={self._access_key!r}, project_id={self._project_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        query = request.url.query.decode("ascii")
        wire_query = canonical_query(query)
        if wire_query != query:
            request.url = request.url.copy_with(query=wire_query.encode("ascii") if wire_query else None)

        if self._project_id is not None:
            request.headers["X-Project-Id"] = self._project_id
        if DATE_HEADER not in request.headers:
            request.headers["X-Sdk-Date"] = _format_date(None)
        if self._nonce:
            # A signed random header makes every request's signature unique, so running the same command
            # twice within one second is not mistaken for a replay by the server.
            request.headers["X-Request-Nonce"] = secrets.token_hex(8)

        wire_headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers.raw:
            # First occurrence wins, as with Starlette's Headers.get on the server.
            wire_headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        signed = sorted(name for name in wire_headers if "_" not in name and name not in self._UNSIGNED)

        request.headers["Authorization"] = authorization(
            method=request.method,
            path=request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            query_string=request.url.query.decode("ascii"),
            headers=wire_headers,
            signed_headers=signed,
            body=request.content,
            access_key=self._access_key,
            secret_key=self._secret_key,
        )
        yield request
