"""The webhooks of ``opencts.sources``: Kubernetes audit ``EventList`` and S3 bucket notifications.

Producers authenticate like any other caller, or (what they are made for) with a source token of their
kind: ``Authorization: Bearer TOKEN``. Each batch is mapped and checked whole before anything is stored:
one malformed event is a 400 that names it, and nothing of the batch is kept. Otherwise the traces take the
ingest path (``TraceWriter``: tracker policy, group commit) and the answer, the ingest summary, comes only
once they are durable. Traces a tracker refuses (disabled, say) are reported, not failed: a webhook would
only retry a batch that can never be recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from opencts.api.auth import require
from opencts.api.bodies import json_response
from opencts.api.deps import Services, ServicesDep, read_body, require_json
from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.iam.permissions import SOURCE_ACTIONS
from opencts.iam.principal import Principal
from opencts.sources import kubernetes, s3events
from opencts.traces.ingest import prepare, summary
from opencts.traces.submitter import Submitter

router = APIRouter(tags=["sources"])
KubernetesProducer = Annotated[Principal, Depends(require(SOURCE_ACTIONS["kubernetes"], replay_safe=True))]
BucketProducer = Annotated[Principal, Depends(require(SOURCE_ACTIONS["s3"], replay_safe=True))]


async def _ingest(
    services: Services, project_id: str, traces: list[dict[str, Any]], caller: Principal, where: list[str]
) -> dict[str, Any]:
    """Store ``traces`` all or nothing; ``where[i]`` names the item trace ``i`` came from, for a 400."""
    batch = prepare(
        traces,
        project_id=project_id,
        now=now_ms(),
        retention_ms=services.writer.retention_ms,
        submitter=Submitter.of(caller),
    )
    for result in batch.results:
        if result.status == "rejected":
            raise BadRequest(f"{where[result.index]}: {result.reason}; nothing of the batch was stored")
    return summary(await services.writer.write_prepared(project_id, batch))


async def _body(request: Request, services: Services, limit: int) -> bytes:
    """The webhook's JSON body; 429 first when the writer could not queue the batch anyway."""
    require_json(request)
    services.writer.commits.refuse_if_full()
    return await read_body(request, limit)


@router.post(
    "/v3/{project_id}/sources/kubernetes",
    name="putKubernetesAudit",
    summary="Kubernetes audit webhook: an audit.k8s.io/v1 EventList, one trace per event (auditID.stage)",
)
async def put_kubernetes_audit(
    project_id: str, request: Request, services: ServicesDep, caller: KubernetesProducer
) -> Response:
    items = kubernetes.parse_event_list(await _body(request, services, kubernetes.MAX_BODY_BYTES))
    traces = kubernetes.to_traces(items)
    where = [f"items[{i}] (auditID {t['request_id']!r})" for i, t in enumerate(traces)]
    return json_response(await _ingest(services, project_id, traces, caller, where))


@router.post(
    "/v3/{project_id}/sources/s3",
    name="putBucketEvents",
    summary="S3 bucket notifications (MinIO, Ceph): data traces on the data trackers of the bucket",
)
async def put_bucket_events(
    project_id: str, request: Request, services: ServicesDep, caller: BucketProducer
) -> Response:
    records = s3events.parse_notification(await _body(request, services, s3events.MAX_BODY_BYTES))
    trackers = await services.db.read(lambda conn: s3events.data_trackers(conn, project_id))
    mapped = s3events.to_traces(records, trackers)
    where = [f"Records[{i}]" for i in mapped.record_of]
    body = await _ingest(services, project_id, mapped.traces, caller, where)
    return json_response({"records": len(records), "ignored": mapped.ignored, **body})
