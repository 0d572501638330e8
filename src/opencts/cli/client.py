"""A small signed HTTP client for the CLI: finds the endpoint and credentials, turns errors into messages."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opencts.client.signing import HmacAuth
from opencts.config import DEFAULT_BIND


class CliError(Exception):
    """Something the user can fix (no credentials, a server that cannot be reached, a missing file):
    reported as one line, never as a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str | None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


@dataclass(frozen=True)
class Target:
    endpoint: str
    access_key: str
    secret_key: str
    project_id: str
    domain_id: str | None = None
    domain_name: str | None = None


def resolve_target(endpoint: str | None, data_dir: Path | None) -> Target:
    """Flags first, then ``OPENCTS_*`` variables, then the data dir's ``credentials.json``.

    ``OPENCTS_PROJECT_ID`` alone picks another project of the same account for the data dir's access
    key. An access key without its secret key (or the reverse), or a pair without a project, is refused:
    mixing them with the data dir's credentials would sign as someone else than the user meant.
    """
    env = os.environ
    endpoint = endpoint or env.get("OPENCTS_ENDPOINT") or f"http://{env.get('OPENCTS_BIND', DEFAULT_BIND)}"
    ak, sk, project = (
        env.get("OPENCTS_ACCESS_KEY"),
        env.get("OPENCTS_SECRET_KEY"),
        env.get("OPENCTS_PROJECT_ID"),
    )
    if bool(ak) != bool(sk):
        given, missing = (
            ("OPENCTS_ACCESS_KEY", "OPENCTS_SECRET_KEY")
            if ak
            else ("OPENCTS_SECRET_KEY", "OPENCTS_ACCESS_KEY")
        )
        raise CliError(f"{given} is set but {missing} is not: set both (and OPENCTS_PROJECT_ID), or neither")
    if ak and sk:
        if not project:
            raise CliError(
                "OPENCTS_ACCESS_KEY and OPENCTS_SECRET_KEY need OPENCTS_PROJECT_ID too"
                " (the project they act in)"
            )
        return Target(endpoint.rstrip("/"), ak, sk, project, env.get("OPENCTS_DOMAIN_ID"))
    path = (data_dir or Path(env.get("OPENCTS_DATA_DIR", "data"))) / "credentials.json"
    try:
        creds = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(
            f"no credentials: set OPENCTS_ACCESS_KEY, OPENCTS_SECRET_KEY and OPENCTS_PROJECT_ID, "
            f"or point --data-dir at the server's data directory ({path} does not exist)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    return Target(
        endpoint.rstrip("/"),
        creds["access_key"],
        creds["secret_key"],
        project or creds["project_id"],
        creds.get("domain_id"),
        creds.get("domain_name"),
    )


class ApiClient:
    def __init__(self, target: Target, *, timeout: float = 60.0) -> None:
        self.target = target
        try:
            self.http = httpx.Client(
                base_url=target.endpoint,
                auth=HmacAuth(target.access_key, target.secret_key, project_id=target.project_id, nonce=True),
                timeout=timeout,
            )
        except httpx.InvalidURL as exc:
            raise CliError(f"--endpoint {target.endpoint!r} is not a usable URL: {exc}") from None
        if self.http.base_url.scheme not in ("http", "https") or not self.http.base_url.host:
            self.http.close()
            raise CliError(f"--endpoint {target.endpoint!r} is not an http:// or https:// URL")

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    @property
    def project(self) -> str:
        return self.target.project_id

    def unreachable(self, exc: httpx.TransportError) -> CliError:
        return CliError(f"cannot reach OpenCTS at {self.target.endpoint}: {exc or type(exc).__name__}")

    @staticmethod
    def check(resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            try:
                data = resp.json()
                if not isinstance(data, dict):
                    raise ValueError("not an error document")
                # CTS and IAM answer error_code/error_msg, SMN code/message
                code = str(data.get("error_code") or data.get("code") or resp.reason_phrase)
                message = str(data.get("error_msg") or data.get("message") or resp.text[:200])
            except ValueError:
                # not OpenCTS answering (a proxy's error page): its text without the markup
                code = resp.reason_phrase or "error"
                message = " ".join(re.sub(r"<[^>]*>", " ", resp.text[:2000]).split())[:200]
            raise ApiError(resp.status_code, code, message, resp.headers.get("x-request-id"))
        return resp

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        try:
            resp = self.http.request(method, path, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        return self.check(resp)

    def post_raw(self, path: str, content: bytes) -> httpx.Response:
        """Send an already-encoded body; the caller reads per-item results even on a 400."""
        try:
            return self.http.post(path, content=content, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
