"""The one interface to object storage: a local folder per bucket by default, or any S3-compatible store.

Methods are synchronous: the S3 client is, and the verifier and CLI call them from thread pools; the
service calls them through ``asyncio.to_thread``. Every failure a caller can act on is a
:class:`StorageError` whose ``detail`` is what a tracker shows (``noBucket``, ``bucketPolicyError``) or
``unavailable`` when the store cannot be reached at all; a missing object is :class:`NoSuchObject`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from opencts.clock import DAY_MS
from opencts.config import Settings
from opencts.store.files import private_dir

Detail = Literal["noBucket", "bucketPolicyError", "unavailable"]

#: a local bucket's lifecycle rules, beside its objects (names starting with "." are never listed)
LIFECYCLE_FILE = ".lifecycle.json"


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

    def create(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
        """Write the object only if no object has that key yet: True when this call wrote it, False when
        one was there (left untouched). The archive writes through this, so two nodes, or a writer whose
        lease ran out, can never replace a file another one wrote and recorded."""
        ...

    def get(self, bucket: str, key: str) -> bytes: ...

    def head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order (``metadata`` left empty: ask :meth:`head`)."""
        ...

    def delete(self, bucket: str, key: str) -> None: ...

    def set_expiry(self, bucket: str, prefix: str, days: int) -> None:
        """Objects under ``prefix`` are deleted ``days`` after they were written (a lifecycle rule).

        Setting a prefix again replaces its rule; ``days`` <= 0 removes it.
        """
        ...

    def expire(self, now_ms: int) -> int:
        """Apply the lifecycle rules as of ``now_ms`` where the store does not apply them itself (the
        local one); returns how many objects were deleted. The transfer calls it now and then."""
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
        self._write(bucket, key, data, replace=True)

    def create(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> bool:
        return self._write(bucket, key, data, replace=False)

    def _write(self, bucket: str, key: str, data: bytes, *, replace: bool) -> bool:
        """A temporary file, flushed, then renamed over the key (``put``) or hard-linked to it (``create``):
        ``link`` fails when the name exists, where a rename would replace it, so the first writer's bytes
        stay. Either way a reader never sees half a file."""
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
                if replace:
                    os.replace(tmp, target)
                else:
                    os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                Path(tmp).unlink(missing_ok=True)
        except PermissionError as exc:
            raise StorageError("bucketPolicyError", f"cannot write {key!r} to {bucket!r}: {exc}") from None
        return True

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

    def _rules_path(self, bucket: str) -> Path:
        return self._bucket(bucket) / LIFECYCLE_FILE

    def lifecycle_rules(self, bucket: str) -> dict[str, int]:
        """The bucket's rules, ``{prefix: days}`` (empty when it has none)."""
        try:
            rules: dict[str, int] = json.loads(self._rules_path(bucket).read_text())["rules"]
        except FileNotFoundError:
            return {}
        return rules

    def set_expiry(self, bucket: str, prefix: str, days: int) -> None:
        """Keep the rule in ``.lifecycle.json`` in the bucket's folder, which :meth:`expire` applies."""
        self._existing_bucket(bucket)
        rules = self.lifecycle_rules(bucket)
        if days > 0:
            rules[prefix] = days
        else:
            rules.pop(prefix, None)
        path = self._rules_path(bucket)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump({"rules": rules}, out, sort_keys=True)
        os.replace(tmp, path)

    def expire(self, now_ms: int) -> int:
        """Delete every object older than its bucket's rule says (age from the file's modification time,
        which is when it was written: a write renames a new file into place), and the folders this
        empties. Returns how many objects went."""
        deleted = 0
        if not self.root.is_dir():
            return 0
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                for prefix, days in self.lifecycle_rules(entry.name).items():
                    deleted += self._expire_prefix(entry, prefix, now_ms - days * DAY_MS)
        return deleted

    def _expire_prefix(self, base: Path, prefix: str, cutoff_ms: int) -> int:
        deleted = 0
        for info in self.list(base.name, prefix):
            path = base / info.key
            try:
                if path.stat().st_mtime_ns // 1_000_000 < cutoff_ms:
                    path.unlink()
                    deleted += 1
                    _remove_empty_parents(path.parent, base)
            except FileNotFoundError:  # deleted meanwhile (another sweep, a caller)
                continue
        return deleted


def _remove_empty_parents(folder: Path, base: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``base`` while they are empty."""
    while folder != base and base in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        folder = folder.parent


def open_store(settings: Settings) -> ObjectStore:
    """The store ``OPENCTS_STORAGE_URL`` names (default ``file://DATA_DIR/buckets``).

    ``s3://`` is an S3-compatible store at ``OPENCTS_S3_ENDPOINT`` (or ``s3://HOST[:PORT]``, reached
    over HTTPS, when no endpoint is set; AWS S3 when neither is), signed with ``OPENCTS_S3_ACCESS_KEY``
    and ``OPENCTS_S3_SECRET_KEY`` for ``OPENCTS_S3_REGION`` (default REGION). Buckets are the trackers'.
    """
    if settings.storage_url is None:  # inside the data dir, which only the service's user may enter
        root = settings.data_dir / "buckets"
        private_dir(root)
        return LocalStore(root)
    url = settings.storage_url
    if url.startswith("file://"):
        root = Path(url.removeprefix("file://"))
        root.mkdir(parents=True, exist_ok=True)
        return LocalStore(root)
    if url.startswith("s3://"):
        from opencts.archive.s3 import S3Store  # boto3 is a heavy import: only when S3 is used

        host = url.removeprefix("s3://").strip("/")
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        return S3Store(
            endpoint=settings.s3_endpoint or (f"https://{host}" if host else None),
            access_key=settings.s3_access_key,
            secret_key=secret,
            region=settings.s3_region or settings.region,
            timeout=settings.s3_timeout,
        )
    raise StorageError("unavailable", f"OPENCTS_STORAGE_URL {url!r}: use file://DIR or s3://")
