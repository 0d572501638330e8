"""CTS v3 beyond traces and notifications: trackers, quotas, operations, catalogues, buckets and tags.

Paths and methods are exactly the ones ``huaweicloudsdkcts.v3.CtsClient`` calls (note the singular
``/tracker`` for create/update and the plural ``/trackers`` for list/delete, and DELETE with a body for
tags). Each route's ``name`` is the CTS operation name, which the self-audit records as the trace name.
Handlers only translate HTTP to calls into :mod:`opencts.trackers`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.archive import buckets
from opencts.errors import BadRequest
from opencts.iam.principal import Principal
from opencts.notifications import repository as notification_repository
from opencts.trackers import bucket_check, catalogue, operations, repository
from opencts.trackers.model import (
    CheckBucketRequest,
    CheckObsBucketsRequestBody,
    CreateTrackerRequestBody,
    TagsRequestBody,
    UpdateTrackerRequestBody,
    bucket_check_result,
    bucket_request_problem,
)

router = APIRouter(tags=["cts"])


# The caller, authenticated, scoped to the path's project (or domain) and allowed the action.
TrackerCreator = Annotated[Principal, Depends(require("cts:tracker:create"))]
TrackerUpdater = Annotated[Principal, Depends(require("cts:tracker:update"))]
TrackerDeleter = Annotated[Principal, Depends(require("cts:tracker:delete"))]
TrackerLister = Annotated[Principal, Depends(require("cts:tracker:list"))]
QuotaLister = Annotated[Principal, Depends(require("cts:quota:list"))]
OperationLister = Annotated[Principal, Depends(require("cts:operation:list"))]
ResourceLister = Annotated[Principal, Depends(require("cts:resource:list"))]
UserLister = Annotated[Principal, Depends(require("cts:user:list"))]
BucketChecker = Annotated[Principal, Depends(require("cts:bucket:check"))]
TagCreator = Annotated[Principal, Depends(require("cts:tag:create"))]
TagDeleter = Annotated[Principal, Depends(require("cts:tag:delete"))]


def _params(*names: tuple[str, str]) -> dict[str, Any]:
    """OpenAPI documentation of query parameters read from ``request.query_params``."""
    return {
        "parameters": [
            {"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
            for n, d in names
        ]
    }


_TRACKER_PARAMS = _params(
    ("tracker_name", "one tracker by name"), ("tracker_type", "system (the management tracker) or data")
)


def _query(request: Request, name: str, *, allow_empty: bool = True) -> str | None:
    value = request.query_params.get(name)
    if value is None or (value == "" and allow_empty):
        return None
    if value == "":
        raise BadRequest(f"{name} must not be empty; leave it out instead")
    return value


@router.post("/v3/{project_id}/tracker", name="createTracker", status_code=201, summary="Create a tracker")
async def create_tracker(
    project_id: str, request: Request, services: ServicesDep, caller: TrackerCreator
) -> Response:
    body = await json_body(request, CreateTrackerRequestBody)
    tracker = await services.db.write(
        lambda conn: repository.create_tracker(conn, project_id=project_id, body=body)
    )
    services.policies.invalidate(project_id)
    if services.storage is not None:
        await asyncio.to_thread(buckets.prepare, services.storage, services.settings.region, tracker)
    return json_response(tracker, 201)


@router.put("/v3/{project_id}/tracker", name="updateTracker", summary="Update a tracker (fields sent only)")
async def update_tracker(
    project_id: str, request: Request, services: ServicesDep, caller: TrackerUpdater
) -> Response:
    body = await json_body(request, UpdateTrackerRequestBody)
    await services.db.write(lambda conn: repository.update_tracker(conn, project_id=project_id, body=body))
    services.policies.invalidate(project_id)
    return json_response({})


@router.get(
    "/v3/{project_id}/trackers",
    name="listTrackers",
    summary="List trackers, optionally by tracker_name and tracker_type",
    openapi_extra=_TRACKER_PARAMS,
)
async def list_trackers(
    project_id: str, request: Request, services: ServicesDep, caller: TrackerLister
) -> Response:
    name, kind = _query(request, "tracker_name"), _query(request, "tracker_type")
    found = await services.db.read(
        lambda conn: repository.list_trackers(
            conn, project_id=project_id, tracker_name=name, tracker_type=kind
        )
    )
    return json_response({"trackers": found})


@router.delete(
    "/v3/{project_id}/trackers",
    name="deleteTracker",
    summary="Delete one tracker by tracker_name, or (no name) every tracker of tracker_type (default data)",
    openapi_extra=_TRACKER_PARAMS,
)
async def delete_tracker(
    project_id: str, request: Request, services: ServicesDep, caller: TrackerDeleter
) -> Response:
    name = _query(request, "tracker_name", allow_empty=False)
    kind = _query(request, "tracker_type")
    await services.db.write(
        lambda conn: repository.delete_trackers(
            conn, project_id=project_id, tracker_name=name, tracker_type=kind
        )
    )
    services.policies.invalidate(project_id)
    return json_response({})


@router.get("/v3/{project_id}/quotas", name="listQuotas", summary="Tracker and notification quotas")
async def list_quotas(project_id: str, services: ServicesDep, caller: QuotaLister) -> Response:
    resources = await services.db.read(
        lambda conn: repository.quotas(
            conn, project_id, notifications_used=notification_repository.count(conn, project_id)
        )
    )
    return json_response({"resources": resources})


@router.get(
    "/v3/{project_id}/operations",
    name="listOperations",
    summary="Operations each service reports, by service_type and resource_type",
    openapi_extra=_params(("service_type", "e.g. ECS"), ("resource_type", "needs service_type")),
)
async def list_operations(project_id: str, request: Request, caller: OperationLister) -> Response:
    found = operations.list_operations(_query(request, "service_type"), _query(request, "resource_type"))
    return json_response({"operations": found})


@router.get(
    "/v3/{domain_id}/resources",
    name="listTraceResources",
    summary="Services and resource types named by the account's traces in the last 7 days",
)
async def list_trace_resources(domain_id: str, services: ServicesDep, caller: ResourceLister) -> Response:
    found = await services.db.read(lambda conn: catalogue.trace_resource_list(conn, domain_id=domain_id))
    return json_response({"resources": found})


@router.get(
    "/v3/{project_id}/user-resources",
    name="listUserResources",
    summary="Users named by the project's traces in the last 30 days",
)
async def list_user_resources(project_id: str, services: ServicesDep, caller: UserLister) -> Response:
    found = await services.db.read(lambda conn: catalogue.user_list(conn, project_id=project_id))
    return json_response({"users": found})


@router.post(
    "/v3/{domain_id}/checkbucket",
    name="checkObsBuckets",
    summary="Check that buckets can receive trace files: they exist and take writes, the key is usable",
)
async def check_obs_buckets(
    domain_id: str, request: Request, services: ServicesDep, caller: BucketChecker
) -> Response:
    body = await json_body(request, CheckObsBucketsRequestBody)
    return json_response({"buckets": [await _check_bucket(services, caller, b) for b in body.buckets]})


async def _check_bucket(services: Services, caller: Principal, req: CheckBucketRequest) -> dict[str, Any]:
    problem = bucket_request_problem(req)
    if problem is None and services.storage is not None:
        problem = await asyncio.to_thread(bucket_check.store_problem, services.storage, req.bucket_name)
    if problem is None and req.is_support_trace_files_encryption and req.kms_id:
        kms_id = req.kms_id
        problem = await services.db.read(
            lambda conn: bucket_check.key_problem(
                conn, kms_id=kms_id, project_id=caller.project_id, domain_id=caller.domain_id
            )
        )
    return bucket_check_result(req, problem)


@router.post(
    "/v3/{project_id}/{resource_type}/{resource_id}/tags/create",
    name="batchCreateResourceTags",
    summary="Add tags to a tracker (resource_type cts-tracker); existing keys get the new value",
)
async def batch_create_resource_tags(
    project_id: str,
    resource_type: str,
    resource_id: str,
    request: Request,
    services: ServicesDep,
    caller: TagCreator,
) -> Response:
    body = await json_body(request, TagsRequestBody)
    await services.db.write(
        lambda conn: repository.add_tags(
            conn, project_id=project_id, resource_type=resource_type, resource_id=resource_id, tags=body.tags
        )
    )
    return json_response({})


@router.delete(
    "/v3/{project_id}/{resource_type}/{resource_id}/tags/delete",
    name="batchDeleteResourceTags",
    summary="Remove tags from a tracker, by key (and value when one is given); the tags travel in the body",
)
async def batch_delete_resource_tags(
    project_id: str,
    resource_type: str,
    resource_id: str,
    request: Request,
    services: ServicesDep,
    caller: TagDeleter,
) -> Response:
    body = await json_body(request, TagsRequestBody)
    await services.db.write(
        lambda conn: repository.remove_tags(
            conn, project_id=project_id, resource_type=resource_type, resource_id=resource_id, tags=body.tags
        )
    )
    return json_response({})
