"""What the client library costs an app: middleware overhead per request, and traces/s delivered.

1. Starts ``opencts serve`` on a scratch data dir.
2. Middleware: a FastAPI app (called through ``httpx.ASGITransport``) and a Flask app (through its test
   client), each once bare and once with the OpenCTS middleware recording into a real ``Client`` /
   ``AsyncClient`` whose flusher sends to the server meanwhile. Every request is a POST, so each one is
   recorded; the median of 5 rounds of N requests gives microseconds per request, and the difference is
   the middleware's overhead.
3. Throughput: N traces recorded with ``Client.record`` (spool on disk, fsync on) and flushed until
   OpenCTS has them all, against posting the same traces in batches of 500 with plain ``httpx`` signed
   by ``HmacAuth``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import flask
import httpx
import orjson
from _measure import console, load_note
from _server import scratch_space
from fastapi import FastAPI
from rich.table import Table

from opencts.client import AsyncClient, Client, ClientSettings
from opencts.client.asgi import OpenCTSMiddleware as AsgiMiddleware
from opencts.client.recording import make_trace
from opencts.client.wsgi import OpenCTSMiddleware as WsgiMiddleware
from opencts.testing.server import ServerProcess, signer

ROUNDS = 5


def settings(server: ServerProcess, spool: Path, service: str) -> ClientSettings:
    creds = server.creds
    return ClientSettings(
        endpoint=server.url,
        project_id=creds.project_id,
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        service_type=service,
        spool_dir=spool,
        buffer_max_traces=1_000_000,
    )


def fastapi_app(client: AsyncClient | None) -> FastAPI:
    app = FastAPI()

    @app.post("/items/{item}")
    async def create_item(item: str) -> dict[str, str]:
        return {"id": item}

    if client is not None:
        app.add_middleware(AsgiMiddleware, client=client)
    return app


async def fastapi_us(client: AsyncClient | None, n: int) -> float:
    transport = httpx.ASGITransport(app=fastapi_app(client))
    rounds = []
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for i in range(n):
                await http.post(f"/items/{i}")
            rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def flask_us(client: Client | None, n: int) -> float:
    app = flask.Flask("bench")

    @app.post("/items/<item>")
    def create_item(item: str) -> str:
        return item

    if client is not None:
        app.wsgi_app = WsgiMiddleware(app.wsgi_app, client)  # type: ignore[method-assign]
    web = app.test_client()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i in range(n):
            web.post(f"/items/{i}")
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


async def fastapi_pair(server: ServerProcess, spool: Path, n: int) -> tuple[float, float]:
    bare = await fastapi_us(None, n)
    async with AsyncClient(settings(server, spool, "BENCHASGI")) as client:
        recorded = await fastapi_us(client, n)
        await client.flush(120)
    return bare, recorded


def throughput(server: ServerProcess, spool: Path, n: int) -> tuple[float, float]:
    with Client(settings(server, spool, "BENCHCLIENT")) as client:
        start = time.perf_counter()
        for i in range(n):
            client.record("createItem", user="bench", status=201, request_id=f"r{i}")
        assert client.flush(300), client.stats()
        client_rate = n / (time.perf_counter() - start)
        assert client.stats().accepted == n
    traces = [make_trace("createItem", service_type="BENCHHTTPX", user="bench", status=201) for _ in range(n)]
    creds = server.creds
    with httpx.Client(base_url=server.url, auth=signer(creds), timeout=60) as http:
        start = time.perf_counter()
        for i in range(0, n, 500):
            body = orjson.dumps({"traces": traces[i : i + 500]})
            resp = http.post(
                f"/v3/{creds.project_id}/traces", content=body, headers={"Content-Type": "application/json"}
            )
            assert resp.status_code == 200, resp.text
        plain_rate = n / (time.perf_counter() - start)
    return client_rate, plain_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2_000, help="requests per round and app")
    parser.add_argument("--traces", type=int, default=50_000, help="traces for the throughput run")
    args = parser.parse_args()
    with scratch_space("client") as root, ServerProcess(root / "data") as server:
        api_bare, api_rec = asyncio.run(fastapi_pair(server, root / "spool-asgi", args.requests))
        flask_bare = flask_us(None, args.requests)
        with Client(settings(server, root / "spool-wsgi", "BENCHWSGI")) as client:
            flask_rec = flask_us(client, args.requests)
            client.flush(120)
        client_rate, plain_rate = throughput(server, root / "spool-client", args.traces)
    table = Table(title=f"opencts.client overhead ({load_note()})")
    for col in ("what", "bare", "with OpenCTS", "overhead"):
        table.add_column(col, justify="right" if col != "what" else "left")
    table.add_row(
        "FastAPI POST (µs/request)", f"{api_bare:.0f}", f"{api_rec:.0f}", f"+{api_rec - api_bare:.0f} µs"
    )
    table.add_row(
        "Flask POST (µs/request)",
        f"{flask_bare:.0f}",
        f"{flask_rec:.0f}",
        f"+{flask_rec - flask_bare:.0f} µs",
    )
    table.add_row("delivered traces/s", f"{plain_rate:,.0f} (httpx)", f"{client_rate:,.0f} (Client)", "")
    console.print(table)


if __name__ == "__main__":
    main()
