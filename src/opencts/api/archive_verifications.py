"""Verifications of a tracker's archive run by the server (OpenCTS's own API; ``archive.verifications``).

- ``POST /v3/{project_id}/archive/verifications`` ``{"tracker_name": T, "proofs": false}``: queue one
  (202 with it; the one already waiting or running for that tracker, 200, when there is one)
- ``GET /v3/{project_id}/archive/verifications[?tracker_name=T][&limit=N]``: newest first
- ``GET /v3/{project_id}/archive/verifications/{id}``: one, with its findings

Reading needs ``cts:archive:list``; asking for one reads a whole archive, so it needs
``cts:archive:verify`` (the CTS administrators and Tenant Administrator, not the read-only roles).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.archive import verifications
from opencts.archive.verifications import Verification
from opencts.clock import now_ms
from opencts.iam.principal import Principal

router = APIRouter(tags=["archive"])
Reader = Annotated[Principal, Depends(require("cts:archive:list"))]
Verifier = Annotated[Principal, Depends(require("cts:archive:verify"))]


class VerificationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracker_name: str = Field(min_length=1, max_length=64)
    proofs: bool = Field(default=False, description="also check every trace against the signed Merkle tree")


async def ask(
    services: Services, project_id: str, body: VerificationBody, requested_by: str
) -> tuple[Verification, bool]:
    """Queue a verification (the API and the console's "Verify now" ask here) and wake this node's worker."""
    now = now_ms()
    found, queued = await services.db.write(
        lambda conn: verifications.request(
            conn,
            project_id=project_id,
            tracker_name=body.tracker_name,
            proofs=body.proofs,
            requested_by=requested_by,
            now=now,
        )
    )
    if queued and services.verifications is not None:
        services.verifications.wake()
    return found, queued


@router.post(
    "/v3/{project_id}/archive/verifications",
    name="createArchiveVerification",
    summary="Verify a tracker's archive on the server: digest signatures, the chain, every file",
)
async def create_verification(
    project_id: str, request: Request, services: ServicesDep, caller: Verifier
) -> Response:
    body = await json_body(request, VerificationBody)
    found, queued = await ask(services, project_id, body, caller.user_name)
    return json_response(found.to_json(), status=202 if queued else 200)


@router.get(
    "/v3/{project_id}/archive/verifications",
    name="listArchiveVerifications",
    summary="The project's archive verifications, newest first",
)
async def list_verifications(
    project_id: str,
    services: ServicesDep,
    caller: Reader,
    tracker_name: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    found = await services.db.read(
        lambda conn: verifications.listing(conn, project_id, tracker_name=tracker_name, limit=limit)
    )
    return json_response({"verifications": [v.to_json() for v in found]})


@router.get(
    "/v3/{project_id}/archive/verifications/{verification_id}",
    name="showArchiveVerification",
    summary="One archive verification with its findings",
)
async def show_verification(
    project_id: str, verification_id: str, services: ServicesDep, caller: Reader
) -> Response:
    found = await services.db.read(lambda conn: verifications.get(conn, project_id, verification_id))
    return json_response(found.to_json())
