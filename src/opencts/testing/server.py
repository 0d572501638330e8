"""A real OpenCTS for tests and benchmarks: ``opencts serve`` in its own process, or uvicorn in this loop.

``ServerProcess`` runs the command a user runs, on a free port with its own data dir, and waits for
``/health``; its output goes to a log file beside the data dir, read back when it fails to start.
``running_server`` serves the app in the caller's event loop, so a test can reach into
``app.state.services`` while every request still crosses a real socket.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from opencts.api.app import create_app
from opencts.client.signing import HmacAuth
from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.testing.ports import free_port
from opencts.testing.waiting import until, wait_for

SERVE = [sys.executable, "-c", "from opencts.cli.main import main; main()", "serve"]


def signer(creds: BootstrapCredentials, *, nonce: bool = False) -> HmacAuth:
    """Request signing as the bootstrap admin of ``creds``."""
    return HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id, nonce=nonce)


class ServerProcess:
    """``opencts serve`` as a subprocess on a free 127.0.0.1 port; a context manager that always stops it.

    ``env`` adds ``OPENCTS_*`` settings; the caller's own ``OPENCTS_*`` variables are never passed on.
    """

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        *,
        log_level: str = "warning",
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.with_name(f"{data_dir.name}-server.log")
        self.env = dict(env or {})
        self.log_level = log_level
        #: the PostgreSQL URL the server runs on, None for the SQLite file in its data dir
        self.database_url = self.env.get("OPENCTS_DATABASE_URL")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "the server was not started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    @cached_property
    def creds(self) -> BootstrapCredentials:
        """What the first start wrote to ``credentials.json`` (a node joining a shared database has none)."""
        return read_credentials(self.data_dir / "credentials.json")

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it to answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
        env.update(self.env)
        args = ["--data-dir", str(self.data_dir), "--bind", f"127.0.0.1:{self.port}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*SERVE, *args, "--log-level", self.log_level],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
            )
        return self

    def healthy(self) -> bool:
        """Whether ``/health`` answers 200; AssertionError with the log if the process has exited."""
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> ServerProcess:
        """Wait until ``/health`` answers; stops the process if it never does."""
        try:
            wait_for(self.healthy, timeout, "the server to answer /health", interval=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Launch, and wait until ``/health`` answers."""
        return self.launch().wait_healthy(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no server output)"

    def client(self, *, timeout: float = 30.0, nonce: bool = False) -> httpx.Client:
        """A client signed as the bootstrap admin."""
        return httpx.Client(base_url=self.url, auth=signer(self.creds, nonce=nonce), timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing flushed (a crash)."""
        self.process.kill()
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> str:
        """Stop gracefully (SIGTERM), killing the process if it does not exit in time; returns its output."""
        proc = self._process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return self.log()

    def __enter__(self) -> ServerProcess:
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(data_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """``opencts serve`` on a free port with ``data_dir``, answering ``/health``."""
    return ServerProcess(data_dir, env).start()


async def anonymous(method: str, url: str, *, as_json: bool = True) -> httpx.Response:
    """A request without credentials (a link followed); async, since the loop may serve OpenCTS.

    ``as_json`` asks for the JSON answer a program reads; without it the links answer HTML pages.
    """
    headers = {"Accept": "application/json"} if as_json else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, url, headers=headers)


@dataclass
class RunningServer:
    """OpenCTS served in this event loop, with a signed client and SMN shortcuts the tests share."""

    url: str
    app: FastAPI
    creds: BootstrapCredentials
    client: httpx.AsyncClient

    @property
    def project(self) -> str:
        return self.creds.project_id

    @property
    def base(self) -> str:
        return f"/v2/{self.creds.project_id}/notifications"

    async def topic(self, name: str) -> str:
        resp = await self.client.post(f"{self.base}/topics", json={"name": name, "display_name": name})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["topic_urn"])

    async def subscribe(self, topic_urn: str, protocol: str, endpoint: str, **extra: Any) -> str:
        resp = await self.client.post(
            f"{self.base}/topics/{topic_urn}/subscriptions",
            json={"protocol": protocol, "endpoint": endpoint, **extra},
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["subscription_urn"])

    async def status(self, subscription_urn: str) -> int:
        subs = (await self.client.get(f"{self.base}/subscriptions")).json()["subscriptions"]
        return int(next(s["status"] for s in subs if s["subscription_urn"] == subscription_urn))

    async def wait_status(self, subscription_urn: str, status: int, timeout: float = 20.0) -> None:
        async def reached() -> bool:
            return await self.status(subscription_urn) == status

        await until(reached, timeout, f"{subscription_urn} to reach status {status}", interval=0.05)

    async def publish(self, topic_urn: str, **body: Any) -> str:
        resp = await self.client.post(f"{self.base}/topics/{topic_urn}/publish", json=body)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["message_id"])

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get(f"{self.base}/deliveries", params=params)
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["deliveries"]
        return found


@asynccontextmanager
async def running_server(
    data_dir: Path, port: int | None = None, **settings: Any
) -> AsyncIterator[RunningServer]:
    """OpenCTS under uvicorn in this event loop, on a real port; ``settings`` are ``Settings`` fields, and
    the OPENCTS_* environment supplies the rest."""
    port = port or free_port()
    config = Settings(data_dir=data_dir, bind=f"127.0.0.1:{port}", **settings)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 30, "the server to start")
        if task.done():
            task.result()
        creds = read_credentials(config.credentials_path)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, auth=signer(creds), timeout=30) as client:
            yield RunningServer(url, app, creds, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
