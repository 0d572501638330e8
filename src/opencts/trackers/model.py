"""Tracker request bodies (CTS v3 ``CreateTrackerRequestBody``, ``UpdateTrackerRequestBody``) and their rules.

The official SDK checks nothing before sending (a ``None`` field is just left out), so every rule CTS
documents is enforced here, with a message that names the field. Types are strict: ``"true"`` is not a
boolean and ``1.0`` is not an integer, because the SDK sends real JSON types and anything else is a bug
the caller wants to hear about. Unknown fields are refused so that a typo (``is_lts_enable``) is not
silently ignored.

Rules that depend on the tracker type are checked on the *whole* configuration (:func:`check_config`), so
that an update is judged on the tracker it would produce, not only on the fields it sends.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

SYSTEM_TRACKER = "system"
MAX_DATA_TRACKERS = 100
MAX_SYSTEM_TRACKERS = 1
AGENCY_NAME = "cts_admin_trust"
EXCLUDABLE_SERVICES = ("KMS",)
DATA_EVENTS = ("READ", "WRITE")

DATA_TRACKER_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
_BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
_LOCATION = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

FilePrefix = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z._-]{0,64}$")]
KmsId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z_:-]{0,127}$")]


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid OBS (S3-compatible) bucket name, or None if it is.

    OBS: 3-63 characters of lower-case letters, digits, ``-`` and ``.``, starting and ending with a letter
    or digit, no ``..``, no ``.`` next to ``-``, and not shaped like an IPv4 address.
    """
    if not 3 <= len(name) <= 63:
        return f"bucket name {name!r} must be 3-63 characters long"
    if not _BUCKET_CHARS.match(name):
        return f"bucket name {name!r} may only hold lower-case letters, digits, '-' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return f"bucket name {name!r} must start and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return f"bucket name {name!r} must not contain '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return None
    return f"bucket name {name!r} must not be formatted as an IP address"


def location_problem(location: str) -> str | None:
    """Why ``location`` is not a region id such as ``cn-north-4``, or None."""
    if not _LOCATION.match(location):
        return f"bucket location {location!r} must be a region id such as cn-north-4 (a-z, 0-9, '-')"
    return None


def tag_text_problem(what: str, text: str, max_length: int) -> str | None:
    """Tag keys and values: length, no control characters, none of ``= * < > \\ , | /``."""
    if len(text) > max_length:
        return f"tag {what} {text[:20]!r}... is longer than {max_length} characters"
    for ch in text:
        if ord(ch) < 32 or ord(ch) == 127:
            return f"tag {what} {text!r} contains a control character"
        if ch in "=*<>\\,|/":
            return f"tag {what} {text!r} contains {ch!r}; = * < > \\ , | / are not allowed"
    return None


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ManagementEventSelector(_Body):
    exclude_service: list[str] = Field(default_factory=list)

    @field_validator("exclude_service")
    @classmethod
    def _only_kms(cls, value: list[str]) -> list[str]:
        for service in value:
            if service not in EXCLUDABLE_SERVICES:
                raise ValueError(f"only KMS can be excluded (hides KMS createDatakey), not {service!r}")
        return list(dict.fromkeys(value))


class TrackerObsInfo(_Body):
    """Where trace files go. An empty or missing ``bucket_name`` means no transfer to object storage."""

    bucket_name: str | None = None
    file_prefix_name: FilePrefix | None = None
    is_obs_created: bool | None = None
    bucket_lifecycle: int | None = Field(None, ge=1, le=3650, description="days (data trackers)")
    compress_type: Literal["gzip", "json"] | None = None
    is_sort_by_service: bool | None = None

    @field_validator("bucket_name")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value:
            problem = bucket_name_problem(value)
            if problem:
                raise ValueError(problem)
        return value


class DataBucket(_Body):
    data_bucket_name: str | None = None
    data_event: list[Literal["READ", "WRITE"]] | None = Field(None, min_length=1, max_length=2)

    @field_validator("data_bucket_name")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None:
            problem = bucket_name_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("data_event")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None


class _TrackerBody(_Body):
    tracker_type: Literal["system", "data"]
    tracker_name: str
    agency_name: Literal["cts_admin_trust"] | None = None
    is_organization_tracker: bool | None = None
    management_event_selector: ManagementEventSelector | None = None
    is_lts_enabled: bool | None = None
    obs_info: TrackerObsInfo | None = None
    is_support_trace_files_encryption: bool | None = None
    kms_id: KmsId | None = None
    is_support_validate: bool | None = None
    data_bucket: DataBucket | None = None

    @model_validator(mode="after")
    def _name_fits_type(self) -> _TrackerBody:
        if self.tracker_type == "system":
            if self.tracker_name != SYSTEM_TRACKER:
                raise ValueError("the management tracker (tracker_type system) must be named 'system'")
        elif self.tracker_name == SYSTEM_TRACKER:
            raise ValueError("'system' is the management tracker's name; choose another for a data tracker")
        elif not DATA_TRACKER_NAME.match(self.tracker_name):
            raise ValueError(
                "tracker_name of a data tracker must be 1-64 characters of letters, digits, '.', '_' and '-',"
                " starting with a letter or digit"
            )
        return self

    def given(self) -> dict[str, Any]:
        """The settings the caller actually sent (``None`` means "not sent"), as plain data."""
        return self.model_dump(exclude_none=True, exclude={"tracker_type", "tracker_name", "status"})


class CreateTrackerRequestBody(_TrackerBody):
    @model_validator(mode="after")
    def _complete(self) -> CreateTrackerRequestBody:
        bucket = self.data_bucket.data_bucket_name if self.data_bucket else None
        if self.tracker_type == "data" and not bucket:
            raise ValueError(
                "a data tracker needs data_bucket.data_bucket_name: the bucket whose operations it records"
            )
        return self


class UpdateTrackerRequestBody(_TrackerBody):
    status: Literal["enabled", "disabled"] | None = None


def check_config(tracker_type: str, config: dict[str, Any]) -> None:
    """Refuse settings that make no sense for the tracker type; raises ValueError with the reason.

    Sending a system-only setting with its "off" value to a data tracker (``is_organization_tracker:
    false``) is harmless and accepted; turning it on is refused.
    """
    if tracker_type == "data":
        if config.get("is_organization_tracker"):
            raise ValueError("is_organization_tracker applies only to the management tracker")
        if (config.get("management_event_selector") or {}).get("exclude_service"):
            raise ValueError("management_event_selector applies only to the management tracker")
        if config.get("is_support_trace_files_encryption") or config.get("kms_id"):
            raise ValueError(
                "trace file encryption (is_support_trace_files_encryption, kms_id) applies only"
                " to the management tracker"
            )
    else:
        if config.get("data_bucket"):
            raise ValueError("data_bucket applies only to data trackers")
        if (config.get("obs_info") or {}).get("bucket_lifecycle") is not None:
            raise ValueError("obs_info.bucket_lifecycle applies only to data trackers")
    if config.get("is_support_trace_files_encryption") and not config.get("kms_id"):
        raise ValueError("is_support_trace_files_encryption needs kms_id: the KMS key encrypting trace files")


class CheckBucketRequest(_Body):
    bucket_name: str
    bucket_location: str
    kms_id: str | None = None
    is_support_trace_files_encryption: bool | None = None


class CheckObsBucketsRequestBody(_Body):
    buckets: list[CheckBucketRequest] = Field(min_length=1, max_length=50)


class Tag(_Body):
    key: str
    value: str | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value:
            raise ValueError("tag key must not be empty")
        problem = tag_text_problem("key", value, 128)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        if value is not None:
            problem = tag_text_problem("value", value, 255)
            if problem:
                raise ValueError(problem)
        return value


class TagsRequestBody(_Body):
    """``{"tags": [{key, value}]}`` for batch create and batch delete (value missing = delete by key)."""

    tags: list[Tag] = Field(min_length=1, max_length=20)

    @field_validator("tags")
    @classmethod
    def _distinct_keys(cls, value: list[Tag]) -> list[Tag]:
        keys = [t.key for t in value]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"tag keys must be distinct in one request; repeated: {', '.join(dupes)}")
        return value


#: why a bucket cannot take trace files: (error code, message, response code), OBS's codes where OBS has one
BucketProblem = tuple[str, str, int]


def bucket_request_problem(req: CheckBucketRequest) -> BucketProblem | None:
    """What is wrong with the request itself: the bucket's name or location, encryption without a key."""
    name_problem = bucket_name_problem(req.bucket_name)
    location = location_problem(req.bucket_location)
    if name_problem:
        return ("InvalidBucketName", name_problem, 400)
    if location:
        return ("InvalidLocationConstraint", location, 400)
    if req.is_support_trace_files_encryption and not req.kms_id:
        return ("InvalidArgument", "is_support_trace_files_encryption needs kms_id: the key to use", 400)
    return None


def bucket_check_result(req: CheckBucketRequest, problem: BucketProblem | None) -> dict[str, Any]:
    """One bucket's entry in CheckObsBuckets' answer."""
    result = {
        "error_code": problem[0] if problem else None,
        "error_message": problem[1] if problem else None,
        "response_code": problem[2] if problem else 200,
        "success": problem is None,
    }
    return {
        "bucket_name": req.bucket_name,
        "bucket_location": req.bucket_location,
        "kms_id": req.kms_id,
        "is_support_trace_files_encryption": bool(req.is_support_trace_files_encryption),
        "check_bucket_response": result,
    }


def check_bucket(req: CheckBucketRequest) -> dict[str, Any]:
    """CheckObsBuckets for one bucket, as far as the request alone tells (``trackers.bucket_check`` asks
    the store and the key service the rest)."""
    return bucket_check_result(req, bucket_request_problem(req))
