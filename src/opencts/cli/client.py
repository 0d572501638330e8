"""A small signed HTTP client for the CLI: finds the endpoint and credentials, turns errors into messages."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opencts.config import DEFAULT_BIND
from opencts.iam.signature import HmacAuth


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
    """Flags first, then ``OPENCTS_*`` variables, then the data dir's ``credentials.json``."""
    env = os.environ
    endpoint = endpoint or env.get("OPENCTS_ENDPOINT") or f"http://{env.get('OPENCTS_BIND', DEFAULT_BIND)}"
    ak, sk, project = (
        env.get("OPENCTS_ACCESS_KEY"),
        env.get("OPENCTS_SECRET_KEY"),
        env.get("OPENCTS_PROJECT_ID"),
    )
    if ak and sk and project:
        return Target(endpoint.rstrip("/"), ak, sk, project, env.get("OPENCTS_DOMAIN_ID"))
    path = (data_dir or Path(env.get("OPENCTS_DATA_DIR", "data"))) / "credentials.json"
    try:
        creds = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(
            f"no credentials: set OPENCTS_ACCESS_KEY, OPENCTS_SECRET_KEY and OPENCTS_PROJECT_ID, "
            f"or point --data-dir at the server's data directory ({path} does not exist)"
        ) from None
    return Target(
        endpoint.rstrip("/"),
        creds["access_key"],
        creds["secret_key"],
        creds["project_id"],
        creds.get("domain_id"),
        creds.get("domain_name"),
    )


class ApiClient:
    def __init__(self, target: Target, *, timeout: float = 60.0) -> None:
        self.target = target
        self.http = httpx.Client(
            base_url=target.endpoint,
            auth=HmacAuth(target.access_key, target.secret_key, project_id=target.project_id, nonce=True),
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    @property
    def project(self) -> str:
        return self.target.project_id

    @staticmethod
    def check(resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            try:
                data = resp.json()
                # CTS answers error_code/error_msg, SMN answers code/message
                code = data.get("error_code") or data.get("code") or "?"
                message = data.get("error_msg") or data.get("message") or resp.text
            except ValueError:
                code, message = "?", resp.text[:200]
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
            raise SystemExit(f"cannot reach OpenCTS at {self.target.endpoint}: {exc}") from None
        return self.check(resp)

    def post_raw(self, path: str, content: bytes) -> httpx.Response:
        """Send an already-encoded body; the caller reads per-item results even on a 400."""
        try:
            return self.http.post(path, content=content, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise SystemExit(f"cannot reach OpenCTS at {self.target.endpoint}: {exc}") from None
