"""CheckObsBuckets telling the truth: the bucket exists and takes writes in the configured store, and the
key named for encryption is the caller's and enabled, beside the checks of the request itself.

Store problems answer with OBS's error codes (``NoSuchBucket`` 404, ``AccessDenied`` 403,
``ServiceUnavailable`` 503); key problems with the key service's codes (``KMS.0207`` no such key,
``KMS.0303`` disabled).
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from opencts.archive.storage import ObjectStore
from opencts.kms.errors import KEY_DISABLED, KEY_NOT_FOUND
from opencts.kms.keys import ENABLED
from opencts.store.tables import kms_keys
from opencts.trackers.model import BucketProblem

_STORE_PROBLEMS: dict[str, tuple[str, int, str]] = {
    "noBucket": ("NoSuchBucket", 404, "bucket {bucket} does not exist in {url}"),
    "bucketPolicyError": ("AccessDenied", 403, "OpenCTS may not write to bucket {bucket} in {url}"),
    "unavailable": ("ServiceUnavailable", 503, "the object store {url} cannot be reached"),
}


def store_problem(store: ObjectStore, bucket: str) -> BucketProblem | None:
    """Whether trace files can be written to ``bucket`` now (a few requests to the store; blocking)."""
    detail = store.bucket_problem(bucket)
    if detail is None:
        return None
    code, status, text = _STORE_PROBLEMS[detail]
    return (code, text.format(bucket=bucket, url=store.url), status)


def key_problem(
    conn: Connection, *, kms_id: str, project_id: str | None, domain_id: str
) -> BucketProblem | None:
    """Whether ``kms_id`` is a key the caller's project (or, for a domain-scoped call, account) holds,
    enabled; another project's key is as unknown as one that never existed."""
    owner = kms_keys.c.project_id == project_id if project_id else kms_keys.c.domain_id == domain_id
    state = conn.execute(select(kms_keys.c.key_state).where(kms_keys.c.key_id == kms_id, owner)).scalar()
    if state is None:
        return (KEY_NOT_FOUND, f"kms_id {kms_id}: no such key in the key service", 400)
    if state != ENABLED:
        return (KEY_DISABLED, f"kms_id {kms_id}: the key is disabled", 400)
    return None
