"""The middleware inside real apps (FastAPI, Flask) recording into a real OpenCTS over HTTP."""

from __future__ import annotations

from pathlib import Path

import flask
import httpx
import pytest
from fastapi import FastAPI, Request, Response

from client_helpers import client_settings, stored, traces, wait_stored
from opencts.client import AsyncClient, Client, Resource
from opencts.client.asgi import OpenCTSMiddleware as AsgiMiddleware
from opencts.client.wsgi import OpenCTSMiddleware as WsgiMiddleware
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow


def fastapi_app(client: AsyncClient) -> FastAPI:
    app = FastAPI()

    @app.post("/widgets/{wid}")
    async def create_widget(wid: str, request: Request) -> dict[str, str]:
        request.state.user_name = "dana"
        return {"id": wid}

    @app.delete("/widgets/{wid}")
    async def delete_widget(wid: str) -> Response:
        return Response(status_code=404)

    @app.get("/widgets")
    async def list_widgets() -> list[str]:
        return []

    def resource(request: Request) -> Resource:
        return Resource(type="widget", id=request.path_params.get("wid"))

    app.add_middleware(AsgiMiddleware, client=client, resource=resource)
    return app


async def test_fastapi_app_answers_while_opencts_is_down(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        settings = client_settings(server, tmp_path / "spool")
        server.stop()
        async with AsyncClient(settings) as client:
            app = fastapi_app(client)
            transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                for i in range(20):
                    assert (
                        await http.post(f"/widgets/w{i}", headers={"X-Request-Id": f"r{i}"})
                    ).status_code == 200
                assert (await http.delete("/widgets/w1")).status_code == 404
                assert (await http.get("/widgets")).status_code == 200
            assert not await client.flush(0.3)
            assert client.stats().recorded == 21 and client.stats().accepted == 0
            server.start()
            assert await client.flush(30)
        wait_stored(server, settings.service_type, 21)
        found = traces(server, settings.service_type)
        created = [t for t in found if t["trace_name"] == "create_widget"]
        assert len(created) == 20
        assert {t["request_id"] for t in created} == {f"r{i}" for i in range(20)}
        assert created[0]["user"]["name"] == "dana" and created[0]["source_ip"] == "192.0.2.9"
        assert created[0]["resource_type"] == "widget" and created[0]["code"] == "200"
        (deleted,) = [t for t in found if t["trace_name"] == "delete_widget"]
        assert deleted["trace_rating"] == "warning" and deleted["code"] == "404"
    finally:
        server.stop()


def test_flask_app_records_state_changing_requests(live_server: ServerProcess, tmp_path: Path) -> None:
    settings = client_settings(live_server, tmp_path / "spool")
    app = flask.Flask("shop")

    @app.post("/orders")
    def create_order() -> tuple[str, int]:
        flask.request.environ["opencts.user"] = "erin"
        return "created", 201

    @app.put("/orders/<oid>")
    def update_order(oid: str) -> str:
        raise RuntimeError("boom")

    @app.get("/orders")
    def list_orders() -> str:
        return "[]"

    with Client(settings) as client:
        app.wsgi_app = WsgiMiddleware(app.wsgi_app, client)  # type: ignore[method-assign]
        web = app.test_client()
        for _ in range(5):
            assert web.post("/orders", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 201
        assert web.put("/orders/o1").status_code == 500
        assert web.get("/orders").status_code == 200
        assert client.flush(10)
    assert stored(live_server, settings.service_type) == 6
    found = traces(live_server, settings.service_type)
    orders = [t for t in found if t["trace_name"] == "create_order"]
    assert len(orders) == 5 and orders[0]["user"]["name"] == "erin"
    assert orders[0]["source_ip"] == "198.51.100.4" and orders[0]["code"] == "201"
    (failed,) = [t for t in found if t["trace_name"] == "update_order"]
    assert failed["trace_rating"] == "incident"
