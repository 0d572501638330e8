"""The S3-compatible store over HTTP against a real S3 server (moto's), through the same interface as
the local store: objects, buckets, what is wrong with a bucket, lifecycle rules another client can read."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from mypy_boto3_s3.type_defs import LifecycleRuleTypeDef

from opencts.archive.s3 import RULE_ID_PREFIX, WRITE_CHECK_KEY, S3Store
from opencts.archive.storage import NoSuchObject, StorageError, open_store
from opencts.config import Settings
from opencts.testing.ports import free_port
from opencts.testing.s3 import S3Server


@pytest.fixture
def store(s3_settings: Settings) -> S3Store:
    opened = open_store(s3_settings)
    assert isinstance(opened, S3Store)
    return opened


def test_open_store_reads_the_s3_settings(store: S3Store, s3_server: str) -> None:
    assert store.url == s3_server
    assert "secret" not in repr(store.url)


def test_an_s3_url_with_a_host_and_no_endpoint_is_that_host_over_https(tmp_path: Path) -> None:
    opened = open_store(Settings(data_dir=tmp_path, storage_url="s3://obs.example.com:8443", s3_region="r1"))
    assert isinstance(opened, S3Store) and opened.url == "https://obs.example.com:8443"
    assert opened.region == "r1"


def test_put_get_head_list_delete(store: S3Store) -> None:
    store.create_bucket("bkt-1")
    store.create_bucket("bkt-1")  # again: ours already, no error
    for key in ("b/2", "a/1", "b/1", "c"):
        store.put("bkt-1", key, key.encode(), metadata={"signature": "ab12"} if key == "c" else None)
    assert store.get("bkt-1", "b/1") == b"b/1"
    assert [i.key for i in store.list("bkt-1")] == ["a/1", "b/1", "b/2", "c"]
    assert [i.key for i in store.list("bkt-1", "b/")] == ["b/1", "b/2"]
    info = store.head("bkt-1", "c")
    assert info is not None and info.size == 1 and info.metadata == {"signature": "ab12"}
    assert store.head("bkt-1", "nope") is None
    with pytest.raises(NoSuchObject):
        store.get("bkt-1", "nope")
    store.put("bkt-1", "c", b"replaced")
    assert store.get("bkt-1", "c") == b"replaced"
    store.delete("bkt-1", "c")
    store.delete("bkt-1", "c")  # deleting what is gone is no error (S3 semantics)
    assert store.head("bkt-1", "c") is None


def test_create_is_fenced_by_if_none_match(store: S3Store) -> None:
    store.create_bucket("fenced")
    assert store.create("fenced", "k", b"first", metadata={"signature": "ab12"}) is True
    assert store.create("fenced", "k", b"second") is False  # 412 from the store, not a replacement
    assert store.get("fenced", "k") == b"first"
    with pytest.raises(StorageError) as raised:
        store.create("absent-bucket", "k", b"x")
    assert raised.value.detail == "noBucket"


def test_listing_pages_beyond_a_thousand_keys(store: S3Store) -> None:
    store.create_bucket("many-keys")
    for n in range(1005):
        store.client.put_object(Bucket="many-keys", Key=f"k/{n:05d}", Body=b"")
    keys = [i.key for i in store.list("many-keys", "k/")]
    assert len(keys) == 1005 and keys == sorted(keys)


def test_a_missing_bucket_is_no_bucket(store: S3Store) -> None:
    assert store.bucket_problem("absent") == "noBucket"
    with pytest.raises(StorageError) as raised:
        store.put("absent", "k", b"x")
    assert raised.value.detail == "noBucket"
    with pytest.raises(StorageError) as raised:
        list(store.list("absent"))
    assert raised.value.detail == "noBucket"


def test_a_writable_bucket_has_no_problem_and_keeps_no_check_object(store: S3Store) -> None:
    store.create_bucket("fine")
    store.create_bucket("located", "cn-north-4")  # made in the store's region: S3 allows no other
    assert store.bucket_problem("fine") is None and store.bucket_problem("located") is None
    assert store.head("fine", WRITE_CHECK_KEY) is None


def test_a_forbidden_bucket_is_a_policy_error(store: S3Store, s3_server: str, s3_settings: Settings) -> None:
    """moto checks IAM policies once told to: a user allowed one bucket is refused the other."""
    store.create_bucket("allowed")
    store.create_bucket("forbidden")
    iam = boto3.client(
        "iam",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    iam.create_user(UserName="archiver")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::allowed", "arn:aws:s3:::allowed/*"],
            }
        ],
    }
    iam.put_user_policy(UserName="archiver", PolicyName="one-bucket", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="archiver")["AccessKey"]
    limited = S3Store(
        endpoint=s3_server,
        access_key=key["AccessKeyId"],
        secret_key=key["SecretAccessKey"],
        region=s3_settings.s3_region or s3_settings.region,
    )
    server = S3Server(int(s3_server.rsplit(":", 1)[1]))
    server.set_auth(enforced=True)
    try:
        assert limited.bucket_problem("allowed") is None
        assert limited.bucket_problem("forbidden") == "bucketPolicyError"
        with pytest.raises(StorageError) as raised:
            limited.put("forbidden", "k", b"x")
        assert raised.value.detail == "bucketPolicyError"
    finally:
        server.set_auth(enforced=False)


def test_lifecycle_rules_are_visible_to_any_s3_client(store: S3Store, s3_server: str) -> None:
    store.create_bucket("data-bucket")
    other: LifecycleRuleTypeDef = {
        "ID": "someone-else",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    }
    store.client.put_bucket_lifecycle_configuration(
        Bucket="data-bucket", LifecycleConfiguration={"Rules": [other]}
    )
    store.set_expiry("data-bucket", "CloudTraces/", 30)
    store.set_expiry("data-bucket", "CloudTraces/", 7)  # replaces its own rule
    plain = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    rules = {r["ID"]: r for r in plain.get_bucket_lifecycle_configuration(Bucket="data-bucket")["Rules"]}
    assert set(rules) == {"someone-else", f"{RULE_ID_PREFIX}CloudTraces/"}
    mine = rules[f"{RULE_ID_PREFIX}CloudTraces/"]
    assert mine["Expiration"]["Days"] == 7 and mine["Filter"]["Prefix"] == "CloudTraces/"
    store.set_expiry("data-bucket", "CloudTraces/", 0)  # removed; the other rule stays
    rules = {r["ID"]: r for r in plain.get_bucket_lifecycle_configuration(Bucket="data-bucket")["Rules"]}
    assert set(rules) == {"someone-else"}
    assert store.expire(10**13) == 0  # the S3 store applies its rules itself


def test_a_store_that_cannot_be_reached_is_unavailable() -> None:
    down = S3Store(endpoint=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", region="r1")
    assert down.bucket_problem("bkt-1") == "unavailable"
    with pytest.raises(StorageError) as raised:
        down.put("bkt-1", "k", b"x")
    assert raised.value.detail == "unavailable"
    with pytest.raises(StorageError):
        down.get("bkt-1", "k")
