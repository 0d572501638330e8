"""The S3-compatible store (OBS, MinIO, AWS S3, moto), through boto3.

Why boto3, of the three well-kept clients that could do this job:

- **boto3** (AWS, Apache-2.0, released weekly): speaks to any S3-compatible endpoint with path-style
  addressing, SigV4, retries with backoff and connection pooling; it has the whole API this store needs
  (lifecycle rules, object metadata, ``head_bucket``) and typed stubs (``boto3-stubs[s3]``) for mypy
  strict. Its errors carry the S3 error code, which maps one to one onto a tracker's ``detail``. moto, the
  S3 server the tests run against, is built and tested against it. The cost: a heavy import (~0.3 s, paid
  once, when a store is opened) and a synchronous client, which suits the transfer's threads.
- **obstore** (Rust ``object_store`` bindings): fast, async and sync, small API, but it abstracts over
  clouds and exposes no lifecycle configuration, no bucket creation and no bucket-level checks, so expiry,
  ``is_obs_created`` and CheckObsBuckets would need a second client anyway; its errors are generic.
- **minio** (MinIO's Python client): complete and light (urllib3), with lifecycle and bucket calls, but
  it is tuned to MinIO (virtual-host quirks with other providers, a smaller user base outside it) and
  ships its own untyped error classes; boto3 covers OBS and AWS as well as MinIO.

Errors become :class:`StorageError` with the ``detail`` a tracker shows: ``NoSuchBucket`` -> ``noBucket``;
``AccessDenied`` and any 403 -> ``bucketPolicyError``; a connection that fails, times out or a 5xx ->
``unavailable``. A missing object is :class:`NoSuchObject`. Retries are kept short: two attempts, each
waiting at most ``OPENCTS_S3_TIMEOUT`` (5 s) to connect and as long for every answer, so a store that is
down or hangs surfaces as ``unavailable`` in about twice that (botocore's defaults, 60 s and 3 or more
attempts, took 86 to 175 s) and the transfer retries the whole file later instead of a thread hanging in
the client.

Archive objects are created, never replaced: :meth:`S3Store.create` sends ``If-None-Match: *`` (S3's
conditional write; OBS, MinIO and moto 5 answer 412 when the key exists), so two nodes can never
overwrite each other's file.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from opencts.archive.storage import Detail, NoSuchObject, ObjectInfo, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import LifecycleRuleOutputTypeDef, LifecycleRuleTypeDef

#: lifecycle rules this store writes carry this prefix in their ID; rules of others are kept untouched
RULE_ID_PREFIX = "opencts-expire:"
#: the object a write check puts and deletes again, outside ``CloudTraces/`` so no reader lists it
WRITE_CHECK_KEY = "opencts-write-check"

_MISSING_BUCKET = {"NoSuchBucket", "NoSuchBucketPolicy"}
_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_NO_LIFECYCLE = {"NoSuchLifecycleConfiguration"}
_REFUSED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def _detail_of(exc: ClientError) -> Detail:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _MISSING_BUCKET:
        return "noBucket"
    if code in _REFUSED or status in (401, 403):
        return "bucketPolicyError"
    return "unavailable"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    """Buckets of an S3-compatible store; every method is one or a few requests, none cached."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        region: str,
        timeout: float = 5.0,
        attempts: int = 2,
    ) -> None:
        self.url = endpoint or f"https://s3.{region}.amazonaws.com"
        self.region = region
        config = Config(
            region_name=region,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=config,
        )

    @property
    def client(self) -> S3Client:
        """The boto3 client itself, for what this interface does not cover (tests, tools)."""
        return self._client

    def _fail(self, exc: Exception, what: str, bucket: str) -> NoReturn:
        if isinstance(exc, ClientError):
            detail = _detail_of(exc)
            raise StorageError(detail, f"{what} (bucket {bucket!r} at {self.url}): {exc}") from None
        raise StorageError("unavailable", f"{what}: {self.url} cannot be reached: {exc}") from None

    def bucket_problem(self, bucket: str) -> Detail | None:
        """None when the bucket exists and an object can be written and deleted in it.

        ``head_bucket`` alone is not the truth: a bucket policy may let us see the bucket and still
        refuse writes, so a small object is written (outside ``CloudTraces/``) and removed again.
        """
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return "noBucket" if status == 404 or _code(exc) in _MISSING_BUCKET else _detail_of(exc)
        except BotoCoreError:
            return "unavailable"
        try:
            self._client.put_object(Bucket=bucket, Key=WRITE_CHECK_KEY, Body=b"")
            self._client.delete_object(Bucket=bucket, Key=WRITE_CHECK_KEY)
        except ClientError as exc:
            return _detail_of(exc)
        except BotoCoreError:
            return "unavailable"
        return None

    def create_bucket(self, bucket: str, location: str | None = None) -> None:
        """Create ``bucket`` in the region the store signs for.

        ``location`` (a tracker's ``bucket_location``) is not sent: S3 and OBS refuse a location
        constraint other than the region of the endpoint the request goes to, so the bucket can only be
        made where ``OPENCTS_S3_REGION`` says.
        """
        try:
            if self.region == "us-east-1":  # S3 refuses a location constraint naming its default region
                self._client.create_bucket(Bucket=bucket)
            else:
                self._client.create_bucket(
                    Bucket=bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            if _code(exc) in ("BucketAlreadyOwnedByYou",):
                return
            self._fail(exc, f"cannot create bucket {bucket!r}", bucket)
        except BotoCoreError as exc:
            self._fail(exc, f"cannot create bucket {bucket!r}", bucket)

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {})
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"cannot write {key!r}", bucket)

    def create(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
        """PUT with ``If-None-Match: *``: the store refuses (412) when the key exists.

        A retry of a PUT whose answer was lost also gets 412: the object is then this call's own bytes,
        which the caller reads back like anyone else's.
        """
        try:
            self._client.put_object(
                Bucket=bucket, Key=key, Body=data, Metadata=metadata or {}, IfNoneMatch="*"
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 412 or _code(exc) == "PreconditionFailed":
                return False
            self._fail(exc, f"cannot write {key!r}", bucket)
        except BotoCoreError as exc:
            self._fail(exc, f"cannot write {key!r}", bucket)
        return True

    def get(self, bucket: str, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING_OBJECT:
                raise NoSuchObject(key) from None
            self._fail(exc, f"cannot read {key!r}", bucket)
        except BotoCoreError as exc:
            self._fail(exc, f"cannot read {key!r}", bucket)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            found = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 404 and _code(exc) not in _MISSING_BUCKET:
                return None
            self._fail(exc, f"cannot read {key!r}", bucket)
        except BotoCoreError as exc:
            self._fail(exc, f"cannot read {key!r}", bucket)
        return ObjectInfo(key, found["ContentLength"], dict(found.get("Metadata", {})))

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Pages of 1,000 keys, fetched as the caller iterates (S3 lists in key order)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], item["Size"])
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"cannot list {prefix!r}", bucket)

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._client.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, f"cannot delete {key!r}", bucket)

    def _rules(self, bucket: str) -> builtins.list[LifecycleRuleOutputTypeDef]:
        try:
            return list(self._client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"])
        except ClientError as exc:
            if _code(exc) in _NO_LIFECYCLE:
                return []
            self._fail(exc, "cannot read the lifecycle rules", bucket)
        except BotoCoreError as exc:
            self._fail(exc, "cannot read the lifecycle rules", bucket)

    def set_expiry(self, bucket: str, prefix: str, days: int) -> None:
        """Add or replace this store's rule for ``prefix`` (``days`` <= 0 removes it); other rules stay.

        The rule's ID names the prefix, so setting a prefix's expiry twice replaces its rule.
        """
        rule_id = f"{RULE_ID_PREFIX}{prefix}"[:255]
        rules: builtins.list[Any] = [r for r in self._rules(bucket) if r.get("ID") != rule_id]
        if days > 0:
            new: LifecycleRuleTypeDef = {
                "ID": rule_id,
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Expiration": {"Days": days},
            }
            rules.append(new)
        try:
            if rules:
                self._client.put_bucket_lifecycle_configuration(
                    Bucket=bucket, LifecycleConfiguration={"Rules": rules}
                )
            else:
                self._client.delete_bucket_lifecycle(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            self._fail(exc, "cannot set the lifecycle rules", bucket)

    def expire(self, now_ms: int) -> int:
        """Nothing to do: the S3 store applies its own lifecycle rules. Returns 0 objects deleted."""
        return 0
