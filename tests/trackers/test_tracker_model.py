"""Tracker request bodies: every documented rule, and messages that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opencts.trackers.model import (
    CheckBucketRequest,
    CreateTrackerRequestBody,
    TagsRequestBody,
    UpdateTrackerRequestBody,
    bucket_name_problem,
    check_bucket,
    check_config,
)
from opencts.validation import describe


def data(**extra: Any) -> dict[str, Any]:
    return {
        "tracker_type": "data",
        "tracker_name": "obs-reads",
        "data_bucket": {"data_bucket_name": "watched"},
        **extra,
    }


def problem(model: type[Any], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return describe(info.value)


def test_a_full_system_tracker_body_is_accepted() -> None:
    body = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "system",
            "tracker_name": "system",
            "agency_name": "cts_admin_trust",
            "is_organization_tracker": True,
            "management_event_selector": {"exclude_service": ["KMS", "KMS"]},
            "is_lts_enabled": True,
            "is_support_trace_files_encryption": True,
            "kms_id": "13a4207c-7abe-4b68",
            "is_support_validate": True,
            "obs_info": {
                "bucket_name": "trace-files",
                "file_prefix_name": "a-b_c.d",
                "is_obs_created": False,
                "compress_type": "json",
                "is_sort_by_service": False,
            },
        }
    )
    given = body.given()
    assert given["management_event_selector"] == {"exclude_service": ["KMS"]}
    assert given["obs_info"]["compress_type"] == "json"
    assert "tracker_name" not in given and "tracker_type" not in given
    check_config("system", given)


def test_a_data_tracker_needs_its_bucket() -> None:
    bare = {"tracker_type": "data", "tracker_name": "x"}
    assert "data_bucket_name" in problem(CreateTrackerRequestBody, bare)
    bucket = {"data_bucket_name": "b-1", "data_event": ["READ"]}
    body = CreateTrackerRequestBody.model_validate(data(data_bucket=bucket))
    assert body.data_bucket is not None and body.data_bucket.data_event == ["READ"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tracker_type": "system", "tracker_name": "mgmt"}, "must be named 'system'"),
        ({"tracker_type": "audit", "tracker_name": "system"}, "tracker_type: Input should be 'system' or"),
        ({"tracker_name": "system"}, "tracker_type: is required"),
        ({"tracker_type": "system"}, "tracker_name: is required"),
        (data(tracker_name="system"), "'system' is the management tracker's name"),
        (data(tracker_name="-lead"), "1-64 characters"),
        (data(tracker_name="a" * 65), "1-64 characters"),
        (data(tracker_name="has space"), "1-64 characters"),
        (data(tracker_name=""), "1-64 characters"),
        (data(is_lts_enable=True), "is_lts_enable: is not a field of this request"),
        (data(is_lts_enabled="true"), "is_lts_enabled: Input should be a valid boolean"),
        (data(agency_name="other"), "agency_name: Input should be 'cts_admin_trust'"),
        (data(obs_info={"bucket_name": "Upper"}), "may only hold lower-case"),
        (data(obs_info={"bucket_name": "ab"}), "3-63 characters"),
        (data(obs_info={"bucket_name": "a..b"}), "'..'"),
        (data(obs_info={"bucket_name": "-ab"}), "start and end"),
        (data(obs_info={"bucket_name": "192.168.1.1"}), "IP address"),
        (data(obs_info={"bucket_name": "ok-bucket", "file_prefix_name": "bad/prefix"}), "file_prefix_name"),
        (data(obs_info={"bucket_name": "ok-bucket", "file_prefix_name": "x" * 65}), "file_prefix_name"),
        (data(obs_info={"bucket_name": "ok-bucket", "compress_type": "zip"}), "'gzip' or 'json'"),
        (data(obs_info={"bucket_name": "ok-bucket", "bucket_lifecycle": 0}), "bucket_lifecycle"),
        (data(obs_info={"bucket_name": "ok-bucket", "bucket_lifecycle": 30.5}), "bucket_lifecycle"),
        (data(data_bucket={"data_bucket_name": "b-1", "data_event": ["DELETE"]}), "'READ' or 'WRITE'"),
        (data(data_bucket={"data_bucket_name": "b-1", "data_event": []}), "data_event"),
        (data(data_bucket={"data_bucket_name": "B!"}), "data_bucket.data_bucket_name"),
        (data(data_bucket="bucket"), "data_bucket: Input should be a valid dictionary"),
        (
            {
                "tracker_type": "system",
                "tracker_name": "system",
                "management_event_selector": {"exclude_service": ["ECS"]},
            },
            "only KMS can be excluded",
        ),
        ({"tracker_type": "system", "tracker_name": "system", "kms_id": "bad id!"}, "kms_id"),
    ],
)
def test_bad_create_bodies(body: dict[str, Any], message: str) -> None:
    assert message in problem(CreateTrackerRequestBody, body)


def test_update_takes_a_status_and_does_not_need_the_bucket() -> None:
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "data", "tracker_name": "t", "status": "disabled"}
    )
    assert body.status == "disabled" and body.given() == {}
    assert "'enabled' or 'disabled'" in problem(
        UpdateTrackerRequestBody, {"tracker_type": "system", "tracker_name": "system", "status": "paused"}
    )
    assert "status" in problem(CreateTrackerRequestBody, data(status="enabled"))


@pytest.mark.parametrize(
    ("tracker_type", "config", "message"),
    [
        ("data", {"is_organization_tracker": True}, "only to the management tracker"),
        ("data", {"management_event_selector": {"exclude_service": ["KMS"]}}, "only to the management"),
        ("data", {"kms_id": "k1"}, "only to the management tracker"),
        ("data", {"is_support_trace_files_encryption": True, "kms_id": "k"}, "only to the management"),
        ("system", {"data_bucket": {"data_bucket_name": "b"}}, "only to data trackers"),
        ("system", {"obs_info": {"bucket_lifecycle": 30}}, "only to data trackers"),
        ("system", {"is_support_trace_files_encryption": True}, "needs kms_id"),
    ],
)
def test_settings_that_do_not_fit_the_tracker_type(
    tracker_type: str, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_config(tracker_type, config)


def test_off_values_of_system_settings_are_harmless_on_data_trackers() -> None:
    check_config(
        "data",
        {
            "is_organization_tracker": False,
            "is_support_trace_files_encryption": False,
            "management_event_selector": {"exclude_service": []},
            "is_support_validate": True,
        },
    )


@pytest.mark.parametrize("name", ["abc", "a.b-c", "trace-files-2024", "0bucket", "a" * 63])
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Abc", "a_b", "a..b", "a.-b", "a-.b", ".ab", "ab-", "10.0.0.1"]
)
def test_invalid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name) is not None


def test_check_bucket_reports_per_bucket() -> None:
    ok = check_bucket(CheckBucketRequest(bucket_name="trace-files", bucket_location="cn-north-4"))
    assert ok["check_bucket_response"] == {
        "error_code": None,
        "error_message": None,
        "response_code": 200,
        "success": True,
    }
    bad = check_bucket(CheckBucketRequest(bucket_name="Bad_Name", bucket_location="cn-north-4"))
    assert bad["check_bucket_response"]["error_code"] == "InvalidBucketName"
    assert bad["check_bucket_response"]["success"] is False
    where = check_bucket(CheckBucketRequest(bucket_name="good", bucket_location="North 4"))
    assert where["check_bucket_response"]["error_code"] == "InvalidLocationConstraint"
    enc = check_bucket(
        CheckBucketRequest(bucket_name="good", bucket_location="r1", is_support_trace_files_encryption=True)
    )
    assert enc["check_bucket_response"]["error_code"] == "InvalidArgument"
    assert "kms_id" in enc["check_bucket_response"]["error_message"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([], "at least 1"),
        ([{"key": f"k{i}", "value": "v"} for i in range(21)], "at most 20"),
        ([{"key": "", "value": "v"}], "must not be empty"),
        ([{"key": "k" * 129, "value": "v"}], "longer than 128"),
        ([{"key": "k", "value": "v" * 256}], "longer than 255"),
        ([{"key": "a=b", "value": "v"}], "'='"),
        ([{"key": "a/b", "value": "v"}], "'/'"),
        ([{"key": "k", "value": "a|b"}], "'|'"),
        ([{"key": "k", "value": "tab\there"}], "control character"),
        ([{"key": "k", "value": "1"}, {"key": "k", "value": "2"}], "repeated: k"),
        ([{"value": "v"}], "tags.0.key: is required"),
    ],
)
def test_bad_tags(tags: list[dict[str, Any]], message: str) -> None:
    assert message in problem(TagsRequestBody, {"tags": tags})


def test_tags_with_empty_or_missing_values() -> None:
    body = TagsRequestBody.model_validate({"tags": [{"key": "env", "value": ""}, {"key": "team"}]})
    assert [(t.key, t.value) for t in body.tags] == [("env", ""), ("team", None)]
