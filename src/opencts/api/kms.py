"""The key service's API, on the paths ``huaweicloudsdkkms`` (KMS v1.0) calls: every call is a POST with a
JSON body naming the key. ``rotate-key`` is OpenCTS's own (KMS rotates on a schedule only): it adds a
version at once. Handlers only translate HTTP to calls into :mod:`opencts.kms`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.clock import now_ms
from opencts.errors import OpenCTSError
from opencts.iam.principal import Principal
from opencts.kms import keys
from opencts.kms.model import CreateKey, KeyRef, ListKeys

router = APIRouter(tags=["kms"])

_BASE = "/v1.0/{project_id}/kms"

Creator = Annotated[Principal, Depends(require("kms:cmk:create"))]
Lister = Annotated[Principal, Depends(require("kms:cmk:list"))]
Getter = Annotated[Principal, Depends(require("kms:cmk:get"))]
Enabler = Annotated[Principal, Depends(require("kms:cmk:enable"))]
Disabler = Annotated[Principal, Depends(require("kms:cmk:disable"))]
Rotator = Annotated[Principal, Depends(require("kms:cmk:rotate"))]


def _kms(services: Services) -> Any:
    if services.kms is None:
        raise OpenCTSError("the key service is not running")
    return services.kms


@router.post(
    f"{_BASE}/create-key", name="createKey", summary="Create a key (AES-256, for envelope encryption)"
)
async def create_key(project_id: str, request: Request, services: ServicesDep, caller: Creator) -> Response:
    body = await json_body(request, CreateKey)
    box = _kms(services).box
    key_id = await services.db.write(
        lambda conn: keys.create(
            conn, box, project_id=project_id, domain_id=caller.domain_id, body=body, now=now_ms()
        )
    )
    return json_response({"key_info": {"key_id": key_id, "domain_id": caller.domain_id}})


@router.post(f"{_BASE}/list-keys", name="listKeys", summary="List the project's keys, a page at a time")
async def list_keys(project_id: str, request: Request, services: ServicesDep, caller: Lister) -> Response:
    body = await json_body(request, ListKeys)
    limit = int(body.limit or 1000)
    offset = int(body.marker or 0)
    rows, total = await services.db.read(
        lambda conn: keys.page(conn, project_id, limit=limit, offset=offset, state=body.key_state)
    )
    truncated = offset + len(rows) < total
    return json_response(
        {
            "keys": [r.key_id for r in rows],
            "key_details": [keys.render(r) for r in rows],
            "next_marker": str(offset + len(rows)) if truncated else "",
            "truncated": "true" if truncated else "false",
            "total": total,
        }
    )


@router.post(f"{_BASE}/describe-key", name="showKey", summary="Describe one key")
async def describe_key(project_id: str, request: Request, services: ServicesDep, caller: Getter) -> Response:
    body = await json_body(request, KeyRef)
    row = await services.db.read(lambda conn: keys.get(conn, project_id, body.key_id))
    return json_response({"key_info": keys.render(row)})


async def _set_state(project_id: str, request: Request, services: Services, *, enabled: bool) -> Response:
    body = await json_body(request, KeyRef)
    state = await services.db.write(
        lambda conn: keys.set_state(conn, project_id, body.key_id, enabled=enabled, now=now_ms())
    )
    return json_response({"key_info": {"key_id": body.key_id, "key_state": state}})


@router.post(f"{_BASE}/enable-key", name="enableKey", summary="Enable a key: new files may use it again")
async def enable_key(project_id: str, request: Request, services: ServicesDep, caller: Enabler) -> Response:
    return await _set_state(project_id, request, services, enabled=True)


@router.post(
    f"{_BASE}/disable-key",
    name="disableKey",
    summary="Disable a key: no new file is encrypted under it; files already written stay readable",
)
async def disable_key(project_id: str, request: Request, services: ServicesDep, caller: Disabler) -> Response:
    return await _set_state(project_id, request, services, enabled=False)


@router.post(
    f"{_BASE}/rotate-key",
    name="rotateKey",
    summary="Rotate a key now: a new version encrypts new files; earlier versions still decrypt old ones",
)
async def rotate_key(project_id: str, request: Request, services: ServicesDep, caller: Rotator) -> Response:
    body = await json_body(request, KeyRef)
    box = _kms(services).box

    def run(conn: Connection) -> int:
        return keys.rotate(conn, box, project_id, body.key_id, now=now_ms())

    version = await services.db.write(run)
    return json_response({"key_info": {"key_id": body.key_id, "key_version": version}})
