"""S3-style bucket notifications (MinIO, Ceph RGW webhook targets) as OBS data-event traces."""

from __future__ import annotations

SERVICE_TYPE = "OBS"
RESOURCE_TYPE = "object"

#: S3 event name (without the ``s3:`` prefix) -> the OBS operation name its trace carries
TRACE_NAMES: dict[str, str] = {
    "ObjectCreated:Put": "PUT.OBJECT",
    "ObjectCreated:Post": "POST.OBJECT",
    "ObjectCreated:Copy": "COPY.OBJECT",
    "ObjectCreated:CompleteMultipartUpload": "POST.UPLOAD",
    "ObjectCreated:PutRetention": "PUT.OBJECT_RETENTION",
    "ObjectCreated:PutLegalHold": "PUT.OBJECT_LEGALHOLD",
    "ObjectCreated:PutTagging": "PUT.OBJECT_TAGGING",
    "ObjectCreated:DeleteTagging": "DELETE.OBJECT_TAGGING",
    "ObjectRemoved:Delete": "DELETE.OBJECT",
    "ObjectRemoved:DeleteMarkerCreated": "DELETE.OBJECT",
    "ObjectAccessed:Get": "GET.OBJECT",
    "ObjectAccessed:Head": "HEAD.OBJECT",
    "ObjectAccessed:GetRetention": "GET.OBJECT_RETENTION",
    "ObjectAccessed:GetLegalHold": "GET.OBJECT_LEGALHOLD",
    "ObjectAccessed:Attributes": "GET.OBJECT_ATTRIBUTES",
}

#: service_type -> resource_type -> trace names, for the ListOperations catalogue
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    SERVICE_TYPE: {RESOURCE_TYPE: tuple(dict.fromkeys(TRACE_NAMES.values()))}
}
