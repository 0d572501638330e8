"""The one interface to object storage: a local folder per bucket by default, or any S3-compatible store.

Methods are synchronous: the S3 client is, and the verifier and CLI call them from thread pools; the
service calls them through ``asyncio.to_thread``. Every failure a caller can act on is a
:class:`StorageError` whose ``detail`` is what a tracker shows (``noBucket``, ``bucketPolicyError``) or
``unavailable`` when the store cannot be reached at all; a missing object is :class:`NoSuchObject`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from opencts.config import Settings

Detail = Literal["noBucket", "bucketPolicyError", "unavailable"]


class StorageError(Exception):
    """The store refused or could not be reached; ``detail`` says which, the message says why."""

    def __init__(self, detail: Detail, message: str) -> None:
        super().__init__(message)
        self.detail: Detail = detail


class NoSuchObject(KeyError):
    """The object does not exist (a verifier's "missing file")."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    #: where the store is, for messages (never with credentials)
    url: str

    def bucket_problem(self, bucket: str) -> Detail | None:
        """None when objects can be written to ``bucket``; otherwise what is wrong with it."""
        ...

    def create_bucket(self, bucket: str, location: str | None = None) -> None:
        """Create ``bucket`` if it does not exist (no error when it does and is ours)."""
        ...

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Write the whole object at once, replacing any earlier one of that key."""
        ...

    def get(self, bucket: str, key: str) -> bytes: ...

    def head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order (``metadata`` left empty: ask :meth:`head`)."""
        ...

    def delete(self, bucket: str, key: str) -> None: ...

    def set_expiry(self, bucket: str, prefix: str, days: int) -> None:
        """Objects under ``prefix`` are deleted ``days`` after they were written (a lifecycle rule)."""
        ...


class LocalStore:
    """Buckets as folders under ``root``: bucket ``b1`` is ``root/b1``, an object key its relative path.

    Writes go to a temporary file beside the target, are flushed to disk and renamed over it, so a
    reader (or a crash) sees the old object or the new one, never half of one. Names starting with
    ``.`` are the store's own (temporary files, lifecycle rules) and never listed.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def _bucket(self, bucket: str) -> Path:
        if not bucket or "/" in bucket or bucket.startswith("."):
            raise StorageError("noBucket", f"{bucket!r} is not a bucket name")
        return self.root / bucket

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise StorageError("bucketPolicyError", f"object key {key!r} is not allowed in a local bucket")
        return self._bucket(bucket).joinpath(*parts)

    def bucket_problem(self, bucket: str) -> Detail | None:
        path = self._bucket(bucket)
        if not path.is_dir():
            return "noBucket"
        return None if os.access(path, os.W_OK | os.X_OK) else "bucketPolicyError"

    def create_bucket(self, bucket: str, location: str | None = None) -> None:
        try:
            self._bucket(bucket).mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise StorageError("bucketPolicyError", f"cannot create bucket {bucket!r}: {exc}") from None

    def _existing_bucket(self, bucket: str) -> Path:
        problem = self.bucket_problem(bucket)
        if problem:
            raise StorageError(problem, f"bucket {bucket!r} does not exist in {self.url}")
        return self._bucket(bucket)

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self._existing_bucket(bucket)
        target = self._path(bucket, key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except PermissionError as exc:
            raise StorageError("bucketPolicyError", f"cannot write {key!r} to {bucket!r}: {exc}") from None

    def get(self, bucket: str, key: str) -> bytes:
        self._existing_bucket(bucket)
        try:
            return self._path(bucket, key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NoSuchObject(key) from None
        except PermissionError as exc:
            raise StorageError("bucketPolicyError", f"cannot read {key!r} in {bucket!r}: {exc}") from None

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        self._existing_bucket(bucket)
        path = self._path(bucket, key)
        return ObjectInfo(key, path.stat().st_size) if path.is_file() else None

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._existing_bucket(bucket)
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(base)
            for name in filenames:
                if name.startswith("."):
                    continue
                key = (rel / name).as_posix() if rel.parts else name
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, (Path(dirpath) / name).stat().st_size))
        found.sort(key=lambda info: info.key)
        return iter(found)

    def delete(self, bucket: str, key: str) -> None:
        self._existing_bucket(bucket)
        self._path(bucket, key).unlink(missing_ok=True)

    def set_expiry(self, bucket: str, prefix: str, days: int) -> None:
        raise NotImplementedError("local lifecycle rules come with the transfer (issue 12, H1)")


def open_store(settings: Settings) -> ObjectStore:
    """The store ``OPENCTS_STORAGE_URL`` names (default ``file://DATA_DIR/buckets``)."""
    url = settings.storage_url or (settings.data_dir / "buckets").resolve().as_uri()
    if url.startswith("file://"):
        root = Path(url.removeprefix("file://"))
        root.mkdir(parents=True, exist_ok=True)
        return LocalStore(root)
    raise StorageError("unavailable", f"OPENCTS_STORAGE_URL {url!r}: only file:// is supported so far")
