"""A tracker's bucket when the tracker is created: made at once when ``is_obs_created`` asks.

A missing bucket is not an error of CreateTracker: the tracker shows ``status: error``, ``detail:
noBucket`` once its transfer meets it (the transfer also creates the bucket when it is asked to).
"""

from __future__ import annotations

from typing import Any

from opencts.archive.storage import Detail, ObjectStore, StorageError


def prepare(store: ObjectStore, region: str, tracker: dict[str, Any]) -> tuple[Detail | None, str]:
    """Create (when asked) and check the bucket of a tracker as rendered; (problem or None, message)."""
    obs = tracker.get("obs_info") or {}
    bucket = obs.get("bucket_name")
    if not bucket:
        return None, ""
    try:
        if obs.get("is_obs_created"):
            store.create_bucket(bucket, region)
        problem = store.bucket_problem(bucket)
    except StorageError as exc:
        return exc.detail, str(exc)
    return problem, f"bucket {bucket!r}: {problem}" if problem else ""
