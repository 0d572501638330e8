"""Object names in the CTS layout, and reading them back."""

from __future__ import annotations

import pytest

from opencts.archive import layout

PROJECT = "0123456789abcdef0123456789abcdef"
AT = 1_464_625_256_000  # 2016-05-30T16:20:56Z


def test_trace_file_key_follows_the_cts_layout() -> None:
    key = layout.trace_file_key(
        region="cn-north-4",
        project_id=PROJECT,
        tracker="system",
        service="ECS",
        prefix="File-Prefix",
        at_ms=AT,
        random16="21d36ced8c8af71e",
    )
    assert key == (
        "CloudTraces/cn-north-4/2016/5/30/system/ECS/"
        f"File-Prefix_CloudTrace_cn-north-4-{PROJECT}_2016-05-30T16-20-56Z_21d36ced8c8af71e.json.gz"
    )


def test_no_service_folder_no_prefix_json_and_encrypted() -> None:
    key = layout.trace_file_key(
        region="local-1",
        project_id=PROJECT,
        tracker="data1",
        service=None,
        prefix=None,
        at_ms=AT,
        random16="0" * 16,
        compress="json",
        encrypted=True,
    )
    name = f"CloudTrace_local-1-{PROJECT}_2016-05-30T16-20-56Z_{'0' * 16}.json.enc"
    assert key == f"CloudTraces/local-1/2016/5/30/data1/{name}"


@pytest.mark.parametrize("prefix", [None, "p", "a_b_c", "CloudTrace"])
@pytest.mark.parametrize("service", [None, "IAM"])
def test_every_trace_file_key_reads_back(prefix: str | None, service: str | None) -> None:
    key = layout.trace_file_key(
        region="eu-de",
        project_id=PROJECT,
        tracker="t.1",
        service=service,
        prefix=prefix,
        at_ms=AT,
        random16=layout.file_random("tid", service, 1, 9),
    )
    parsed = layout.parse_key(key)
    assert parsed is not None
    assert (parsed.kind, parsed.region, parsed.tracker, parsed.service, parsed.project_id) == (
        "trace",
        "eu-de",
        "t.1",
        service,
        PROJECT,
    )
    assert (parsed.year, parsed.month, parsed.day, parsed.stamp_ms) == (2016, 5, 30, AT)
    assert parsed.prefix == prefix and not parsed.encrypted and parsed.compress == "gzip"


def test_digest_signature_and_leaves_keys_read_back() -> None:
    hour = 1_464_624_000_000  # 2016-05-30T16:00:00Z
    digest = layout.digest_key(
        region="eu-de", project_id=PROJECT, tracker="system", prefix="x", hour_start_ms=hour
    )
    assert digest.endswith(f"system/Digest/x_CloudTrace-Digest_eu-de-{PROJECT}_2016-05-30T17-00-00Z.json.gz")
    leaves = layout.leaves_key(
        region="eu-de", project_id=PROJECT, tracker="system", prefix="x", hour_start_ms=hour
    )
    kinds = [layout.parse_key(k) for k in (digest, layout.signature_key(digest), leaves)]
    assert [k.kind if k else None for k in kinds] == ["digest", "signature", "leaves"]
    assert all(k is not None and k.stamp_ms == hour + 3_600_000 and k.day == 30 for k in kinds)


def test_the_hour_before_midnight_is_filed_under_its_own_day() -> None:
    hour = 1_464_649_200_000  # 2016-05-30T23:00:00Z; its digest's stamp is the next day
    digest = layout.digest_key(
        region="r", project_id=PROJECT, tracker="system", prefix=None, hour_start_ms=hour
    )
    assert digest.startswith("CloudTraces/r/2016/5/30/system/Digest/")
    assert "_2016-05-31T00-00-00Z" in digest


@pytest.mark.parametrize(
    "key",
    [
        "CloudTraces/r/2016/05/30/system/x_CloudTrace_r-p_2016-05-30T16-20-56Z_0123456789abcdef.json.gz",
        "CloudTraces/r/2016/5/30/system/CloudTrace_r-p_2016-05-30T16-20-56Z.json.gz",
        "CloudTraces/r/2016/5/30/system/Digest/CloudTrace_r-p_2016-05-30T16-20-56Z_0123456789abcdef.json.gz",
        "CloudTraces/r/2016/5/30/system/CloudTrace_other-p_2016-05-30T16-20-56Z_0123456789abcdef.json.gz",
        "CloudTraces/r/2016/5/30/system/CloudTrace_r-p_2016-13-30T16-20-56Z_0123456789abcdef.json.gz",
        "notes/readme.txt",
    ],
)
def test_strangers_are_not_read_as_archive_objects(key: str) -> None:
    assert layout.parse_key(key) is None


def test_file_random_is_fixed_by_what_the_file_holds() -> None:
    assert layout.file_random("t", "ECS", 1, 5) == layout.file_random("t", "ECS", 1, 5)
    others = {
        layout.file_random("t", "ECS", 1, 6),
        layout.file_random("t", "IAM", 1, 5),
        layout.file_random("u", "ECS", 1, 5),
    }
    assert layout.file_random("t", "ECS", 1, 5) not in others and len(others) == 3
