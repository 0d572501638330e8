"""Where ``opencts verify`` reads from, and the keys it trusts; nothing here needs a running service.

A target is a local folder (a copy of one bucket: the folder holding ``CloudTraces/``), a tarball of one
(``.tar``, ``.tar.gz``, ``.tgz``: unpacked into a temporary folder, removed afterwards) or
``s3://BUCKET[/PREFIX]`` read with the ``OPENCTS_S3_*`` settings. The published keys come from the JSON
the signing-keys API returns (``--keys FILE``, what an auditor holds) or, by default, from the local
database the settings name.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencts.archive.digest_format import Verifier
from opencts.archive.layout import ROOT
from opencts.archive.signing_keys import PublishedKey, parse_published, published_keys, verify_signature
from opencts.archive.storage import LocalStore, ObjectStore, open_store
from opencts.config import Settings


class SourceError(ValueError):
    """The target or the keys cannot be read at all (nothing was verified)."""


@dataclass(frozen=True, slots=True)
class Source:
    store: ObjectStore
    bucket: str
    prefix: str
    #: what the user named, for messages
    label: str


@dataclass(slots=True)
class PublishedKeys:
    """The signing keys an auditor trusts: digest keys by fingerprint and their checkpoint note keys."""

    keys: list[PublishedKey] = field(default_factory=list)

    @property
    def fingerprints(self) -> set[str]:
        return {k.fingerprint for k in self.keys}

    @property
    def notes(self) -> list[str]:
        return [k.note_verifier_key for k in self.keys if k.note_verifier_key]

    def verifier(self) -> Verifier:
        def verify(fingerprint: str, data: bytes, signature: bytes) -> bool:
            return verify_signature(self.keys, fingerprint, data, signature)

        return verify


def keys_from_json(doc: Any) -> PublishedKeys:
    """Keys from the signing-keys API's JSON (``{"keys": [...]}`` or the bare list)."""
    try:
        return PublishedKeys(parse_published(doc))
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def load_keys(path: Path | None, settings: Settings) -> PublishedKeys:
    """``--keys FILE``, or the keys the local database publishes."""
    if path is not None:
        try:
            return keys_from_json(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot read keys from {path}: {exc}") from None
    from opencts.store.opening import open_database

    db = open_database(settings)
    try:
        return keys_from_json(db.read_sync(published_keys))
    finally:
        db.close()


@contextmanager
def open_source(target: str, settings: Settings) -> Iterator[Source]:
    """The bucket (copy) ``target`` names, for the duration of the ``with``."""
    if target.startswith("s3://"):
        bucket, _, prefix = target.removeprefix("s3://").partition("/")
        if not bucket:
            raise SourceError("s3:// needs a bucket: s3://BUCKET[/PREFIX]")
        url = settings.storage_url if (settings.storage_url or "").startswith("s3://") else "s3://"
        store = open_store(settings.model_copy(update={"storage_url": url}))
        yield Source(store, bucket, prefix or f"{ROOT}/", target)
        return
    path = Path(target)
    if path.is_dir():
        yield _folder_source(path, target)
        return
    if path.is_file() and tarfile.is_tarfile(path):
        with tempfile.TemporaryDirectory(prefix="opencts-verify-") as tmp:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            yield _folder_source(_bucket_folder(Path(tmp)), target)
        return
    raise SourceError(f"{target}: not a folder, a tarball or s3://BUCKET[/PREFIX]")


def _bucket_folder(root: Path) -> Path:
    """The folder that holds ``CloudTraces/`` in an unpacked tarball (its root or one level down)."""
    if (root / ROOT).is_dir():
        return root
    inner = [p for p in root.iterdir() if (p / ROOT).is_dir()]
    if len(inner) != 1:
        raise SourceError(f"the tarball holds no single bucket (a folder with {ROOT}/)")
    return inner[0]


def _folder_source(path: Path, label: str) -> Source:
    path = path.resolve()
    if not (path / ROOT).is_dir():
        raise SourceError(f"{label}: no {ROOT}/ folder in it (give the bucket's folder)")
    return Source(LocalStore(path.parent), path.name, f"{ROOT}/", label)
