"""A small, valid ``audit.k8s.io/v1`` EventList of the last seconds, for tests that need one to post
(the mapping itself is tested with the documented-format vectors in ``vectors/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opencts.clock import now_ms


def event_list(*audit_ids: str) -> dict[str, Any]:
    """One ``delete`` of pod ``default/web`` per audit id, two seconds ago."""
    stamp = datetime.fromtimestamp((now_ms() - 2000) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    items = [
        {
            "level": "Metadata",
            "auditID": audit_id,
            "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/default/pods/web",
            "verb": "delete",
            "user": {"username": "alice"},
            "sourceIPs": ["10.0.0.5"],
            "objectRef": {"resource": "pods", "namespace": "default", "name": "web", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp,
        }
        for audit_id in audit_ids
    ]
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
