"""The Configure Tracker form, turned into the UpdateTracker body the API takes, so the console changes a
tracker only in ways the API would accept, checked by the same model."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from opencts.errors import BadRequest
from opencts.trackers.model import UpdateTrackerRequestBody

_ON = ("on", "true", "1")


def _flag(form: dict[str, str], name: str) -> bool:
    return form.get(name, "").lower() in _ON


def update_body(tracker: dict[str, Any], form: dict[str, str]) -> UpdateTrackerRequestBody:
    """Every field of the form, sent as given: an empty bucket turns the transfer off."""
    system = tracker["tracker_type"] == "system"
    obs: dict[str, Any] = {
        "bucket_name": form.get("bucket_name", "").strip(),
        "file_prefix_name": form.get("file_prefix_name", "").strip(),
        "compress_type": form.get("compress_type") or "gzip",
        "is_sort_by_service": _flag(form, "is_sort_by_service"),
    }
    if not system:
        days = form.get("bucket_lifecycle", "").strip()
        if days:
            if not days.isdigit():
                raise BadRequest("retention (days) must be a whole number of days, or empty to keep files")
            obs["bucket_lifecycle"] = int(days)
    body: dict[str, Any] = {
        "tracker_type": tracker["tracker_type"],
        "tracker_name": tracker["tracker_name"],
        "obs_info": obs,
        "is_lts_enabled": _flag(form, "is_lts_enabled"),
        "is_support_validate": _flag(form, "is_support_validate"),
    }
    if system:
        encrypt = _flag(form, "is_support_trace_files_encryption")
        body["is_support_trace_files_encryption"] = encrypt
        kms_id = form.get("kms_id", "").strip()
        if kms_id:
            body["kms_id"] = kms_id
    return UpdateTrackerRequestBody.model_validate(body)


def status_body(tracker: dict[str, Any], status: str) -> UpdateTrackerRequestBody:
    if status not in ("enabled", "disabled"):
        raise BadRequest("status must be enabled or disabled; use the buttons of the tracker list")
    return UpdateTrackerRequestBody.model_validate(
        {"tracker_type": tracker["tracker_type"], "tracker_name": tracker["tracker_name"], "status": status}
    )


def messages(exc: ValidationError) -> list[str]:
    """Pydantic's errors as sentences naming the form field."""
    out = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p not in ("obs_info",)) or "form"
        out.append(f"{where}: {error['msg']}")
    return out


def notice(done: str | None) -> str | None:
    """The line the tracker list shows after a change (``saved:NAME``, ``enabled:NAME``…)."""
    if not done or ":" not in done:
        return None
    what, _, name = done.partition(":")
    words = {"saved": "saved", "enabled": "enabled", "disabled": "disabled", "deleted": "deleted"}
    return f"Tracker {name[:64]} {words[what]}." if what in words else None
